#!/usr/bin/env bash
# The test command: set up, then run every test in the workspace (unit tests, the hostile
# module suite, the determinism corpus, the artifact-cache test, the devnet and
# observability end-to-end tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# CI must not skip the independent verifiers or the Prometheus tools: a missing environment
# is a failure.
export PLATFORM_REQUIRE_VERIFIERS=1
export PLATFORM_REQUIRE_PROMETHEUS=1
cargo test --workspace --locked "$@"
