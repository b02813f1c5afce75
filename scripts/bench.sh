#!/usr/bin/env bash
# The main job on its embedded default: set up, build in release, and run the engine
# benchmark on the example challenges (pooled sharded engine vs naive path vs native).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo run --release --locked -p platform-bench --bin bench -- engine "$@"
