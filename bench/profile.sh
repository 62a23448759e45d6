#!/usr/bin/env bash
# Where the time goes on mistral.rs: samples `altiplano --engine mistralrs chat` on the starter
# model with perf and prints the hottest symbols. Needs `perf` (Debian: linux-perf) and a kernel
# that allows sampling.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo build --workspace --all-targets
data="$(mktemp -d)"
trap 'rm -rf "$data"' EXIT
# A first run writes the starter's Q8_0 copy (engine/repack.rs), so the profile is of chat alone.
ALTIPLANO_DATA_DIR="$data" "$target/debug/altiplano" --engine mistralrs chat --model models/starter/SmolLM2-135M-Instruct.Q4_1.gguf \
  --greedy --max-tokens 1 "Hi" >/dev/null
ALTIPLANO_DATA_DIR="$data" perf record -q -F 999 -g -o "$data/perf.data" "$target/debug/altiplano" --engine mistralrs chat \
  --model models/starter/SmolLM2-135M-Instruct.Q4_1.gguf --greedy --max-tokens 128 \
  "Write a short story about a llama who climbs a mountain." >/dev/null
perf report -i "$data/perf.data" --no-children --sort symbol --stdio -g none 2>/dev/null \
  | grep -E '^ +[0-9]+\.[0-9]+%' | head -n "${TOP:-15}"
