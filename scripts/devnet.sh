#!/usr/bin/env bash
# The main job on its embedded default: set up, build in release, and run a local devnet —
# four validators as separate processes on loopback, the example challenges registered
# through consensus, a synthetic miner load — for five committed epochs. Flags go to
# `platform devnet` (e.g. `--epochs 0` runs until Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --locked -p platform-node
exec ./target/release/platform devnet --epochs 5 "$@"
