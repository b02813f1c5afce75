#!/usr/bin/env bash
# One-time setup on a fresh machine with rustup: the wasm32 target the example challenges
# compile to, and the components CI uses. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: cargo not found; install Rust with rustup (https://rustup.rs) first" >&2
    exit 1
fi
rustup target add wasm32-unknown-unknown
rustup component add clippy rustfmt >/dev/null 2>&1 || echo "setup: clippy/rustfmt not installable; lint steps will be skipped" >&2

# glommio needs io_uring (kernel >= 5.8) and locked memory for its rings.
if [ "$(ulimit -l)" != "unlimited" ] && [ "$(ulimit -l)" -lt 1024 ]; then
    echo "setup: warning: ulimit -l is $(ulimit -l) KiB; glommio shards need at least 1024 KiB" >&2
fi

# Independent verifiers (Python packages from PyPI) for the chain crate's tests, in a
# virtual environment inside the checkout (ignored by git).
if command -v python3 >/dev/null 2>&1; then
    if [ ! -x .venv/bin/python ]; then
        python3 -m venv .venv
    fi
    .venv/bin/pip install --quiet --disable-pip-version-check -r chain/tests/verifiers/requirements.txt
    # The Python miner client (and the bittensor-wallet it pins), for the devnet test.
    .venv/bin/pip install --quiet --disable-pip-version-check ./clients/python
else
    echo "setup: python3 not found; the chain verifier tests will be skipped" >&2
fi

# Prometheus tooling for the observability tests: `promtool check metrics` on a live node and
# a real Prometheus server scraping a devnet (Debian's `prometheus` package ships both).
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
    if command -v apt-get >/dev/null 2>&1; then
        $SUDO apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null \
            || echo "setup: could not install prometheus; the observability test will fail under CI" >&2
        # The package may start a system service; the tests run their own server.
        $SUDO systemctl stop prometheus >/dev/null 2>&1 || true
    else
        echo "setup: apt-get not found; install promtool and prometheus for the observability test" >&2
    fi
fi
