#!/usr/bin/env bash
# Benchmarks: builds llama.cpp (llama-cpp-python, from source) into bench/.venv, builds the
# altiplano CLI, and runs the comparison; results land in BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/deps.sh app
if [ ! -x bench/.venv/bin/python ] || ! bench/.venv/bin/python -c 'import llama_cpp' 2>/dev/null; then
  echo "==> building llama-cpp-python (compiles llama.cpp; several minutes)"
  python3 -m venv bench/.venv
  # Same SIMD level as our build (x86-64-v3), no OpenMP differences to worry about: native.
  CMAKE_ARGS="-DGGML_NATIVE=ON" bench/.venv/bin/pip install --quiet "llama-cpp-python==0.3.36"
fi
# The workspace build is the one the tests and the app use (same features, so nothing rebuilds).
cargo build --workspace --all-targets
target="${CARGO_TARGET_DIR:-target}"
echo "==> stop latency"
stop_json="$(mktemp)"
"$target/debug/examples/stop_latency" | tail -n1 > "$stop_json"
cat "$stop_json"
echo "==> altiplano chat against llama.cpp"
bench/.venv/bin/python bench/chat_vs_llamacpp.py --altiplano "$target/debug/altiplano" --threads "$(nproc)" \
  --stop-latency "$stop_json" "$@"
