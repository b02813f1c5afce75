#!/usr/bin/env bash
# The test command: set up, then run every test in the workspace (unit tests, the hostile
# module suite, the determinism corpus, the artifact-cache test).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# CI must not skip the independent verifiers: a missing environment is a failure.
export PLATFORM_REQUIRE_VERIFIERS=1
cargo test --workspace --locked "$@"
