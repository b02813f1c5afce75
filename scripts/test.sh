#!/usr/bin/env bash
# The test command: set up, then run every test in the workspace (unit tests, the hostile
# module suite, the determinism corpus, the artifact-cache test, the devnet and
# observability end-to-end tests), and the Python miner client's unit tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# CI must not skip the independent verifiers or the Prometheus tools: a missing environment
# is a failure.
export PLATFORM_REQUIRE_VERIFIERS=1
export PLATFORM_REQUIRE_PROMETHEUS=1
# The Python miner client's own unit tests (layouts, signatures with the real
# bittensor-wallet, HTTP answers, the command line) in the venv setup made.
if [ -x .venv/bin/python ]; then
    (cd clients/python && ../../.venv/bin/python -m unittest discover -s tests)
else
    echo "test: .venv missing: the Python client's tests cannot run" >&2
    exit 1
fi
cargo test --workspace --locked "$@"
