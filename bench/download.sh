#!/usr/bin/env bash
# Download throughput: `altiplano models pull` against curl, fetching the same 2 GiB file from
# the fake Hugging Face server (altiplano-testhub) on 127.0.0.1 in the same run. Results land in
# BENCHMARKS.md. Usage: bench/download.sh [--size-mib N] [--repeat N]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v curl >/dev/null || scripts/deps.sh app
# The workspace build is the one the tests and the app use (same features, so nothing rebuilds).
cargo build --workspace --all-targets
target="${CARGO_TARGET_DIR:-target}"
python3 bench/download.py --altiplano "$target/debug/altiplano" --testhub "$target/debug/altiplano-testhub" "$@"
