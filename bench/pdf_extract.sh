#!/usr/bin/env bash
# PDF extraction speed and agreement against pdftotext on real-world PDFs (Debian documentation).
# Usage: bench/pdf_extract.sh   -> prints a Markdown table (see bench/pdf_extract.py)
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
corpus="${TMPDIR:-/tmp}/altiplano-pdf-corpus"
bench/pdf_corpus.sh "$corpus" >/dev/null
cargo build --workspace --all-targets   # the same feature set as the tests: no second build of mistral.rs
nproc_info="$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "machine: $nproc_info; pdftotext $(pdftotext -v 2>&1 | head -1 | awk '{print $3}')"
python3 bench/pdf_extract.py "$target/debug/altiplano" "$corpus"
