#!/usr/bin/env bash
# Benchmarks: builds llama.cpp (llama-cpp-python, from source) into bench/.venv, builds the
# workspace, generates a Llama-shaped 1B model, and compares both engines with llama.cpp's
# Python binding on the same files; results land in BENCHMARKS.md.
# Extra arguments go to bench/engines.py (e.g. --repeat 3, or --model FILE to add a model).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# The build the tests and CI use (`.ci/run`), so nothing builds twice.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/altiplano-target}"
scripts/deps.sh app
if [ ! -x bench/.venv/bin/python ] || ! bench/.venv/bin/python -c 'import llama_cpp, gguf, numpy' 2>/dev/null; then
  echo "==> building llama-cpp-python (compiles llama.cpp; several minutes)"
  python3 -m venv bench/.venv
  # Built for this very CPU (AVX-512 and VNNI where present): the strongest peer there is.
  CMAKE_ARGS="-DGGML_NATIVE=ON" bench/.venv/bin/pip install --quiet "llama-cpp-python==0.3.36" "gguf==0.19.0" numpy
fi
# The workspace build is the one the tests and the app use (same features, so nothing rebuilds).
cargo build --workspace --all-targets
target="$CARGO_TARGET_DIR"
echo "==> a Llama-shaped 1B model (random weights, the starter's tokenizer), quantized by llama.cpp"
bench/.venv/bin/python bench/make_llama_gguf.py Q4_K_M Q8_0
echo "==> stop latency, each engine"
for engine in llamacpp mistralrs; do
  ALTIPLANO_ENGINE=$engine "$target/debug/examples/stop_latency" | tail -n1 > "bench/.venv/stop-$engine.json"
  cat "bench/.venv/stop-$engine.json"
done
echo "==> both engines against llama-cpp-python"
bench/.venv/bin/python bench/engines.py --bench "$target/debug/examples/engine_bench" --threads "$(nproc)" \
  --model models/starter/SmolLM2-135M-Instruct.Q4_1.gguf \
  --model models/bench/llama-shaped-1b.Q4_K_M.gguf \
  --model models/bench/llama-shaped-1b.Q8_0.gguf \
  --stop-latency bench/.venv/stop-llamacpp.json --stop-latency bench/.venv/stop-mistralrs.json "$@"
