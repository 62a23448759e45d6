#!/usr/bin/env bash
# PDF extraction speed and agreement against pdftotext on real-world PDFs (Debian documentation
# packages, see bench/pdf_corpus.sh), both tools on the same files in the same run. Writes its
# section of BENCHMARKS.md (between the pdf-extract markers) and prints it.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
corpus="${TMPDIR:-/tmp}/altiplano-pdf-corpus"
bench/pdf_corpus.sh "$corpus" >/dev/null
cargo build --workspace --all-targets   # the same feature set as the tests: no second build of mistral.rs
table="$(python3 bench/pdf_extract.py "$target/debug/altiplano" "$corpus")"
python3 - "$table" "$(git rev-parse --short HEAD)" "$(pdftotext -v 2>&1 | head -1 | awk '{print $3}')" "$corpus/manifest.tsv" <<'PY'
import os, re, sys, time
table, commit, poppler, manifest = sys.argv[1:5]
rows = [l.rstrip("\n").split("\t") for l in open(manifest)][1:]
packages = sorted({r[2] for r in rows})
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown CPU")
section = f"""<!-- pdf-extract:start -->
## PDF text: `altiplano extract` against `pdftotext`

Command: `bench/pdf_extract.sh`. Measured {time.strftime('%Y-%m-%d')} at commit `{commit}` on {cpu}, {os.cpu_count()} cores;
poppler `pdftotext` {poppler}. Corpus (`bench/pdf_corpus.sh`): the {len(rows)} PDFs ({sum(int(r[0]) for r in rows)} pages) that these
Debian bookworm documentation packages ship, written by nobody here with a dozen producers (pdfTeX, XeTeX, LuaTeX,
Distiller, Ghostscript, gropdf, ReportLab, FOP, LibreOffice, cairo): {', '.join(packages)}.
Both tools run as a fresh process per file, one file at a time; altiplano's time includes starting its isolated
reader process, the clean-up (NFKC, de-hyphenation, header/footer removal) and writing JSON. Word agreement compares,
page by page, the words (NFKC, lower case) of the two outputs as multisets.

{table}
<!-- pdf-extract:end -->"""
path = "BENCHMARKS.md"
text = open(path).read()
pattern = re.compile(r"<!-- pdf-extract:start -->.*?<!-- pdf-extract:end -->", re.S)
text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
open(path, "w").write(text)
print(section)
PY
