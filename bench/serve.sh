#!/usr/bin/env bash
# Benchmark: what `altiplano serve`'s HTTP layer costs against the same model in-process
# (decode tokens/s, in turn, same run), and the total tokens/s 1, 2 and 4 clients at once get.
# Usage: bench/serve.sh [MODEL.gguf] [TOKENS] [ROUNDS]   (default: the starter, 128, 7)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# The build the tests and CI use (`.ci/run`), so nothing builds twice.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/altiplano-target}"
scripts/deps.sh app
cargo build --workspace --all-targets
model="${1:-models/starter/SmolLM2-135M-Instruct.Q4_1.gguf}"
echo "==> $model: in-process against served, then 1, 2 and 4 clients ($(nproc) threads)"
"$CARGO_TARGET_DIR/debug/examples/serve_bench" "$model" "$(nproc)" "${2:-128}" "${3:-7}"
