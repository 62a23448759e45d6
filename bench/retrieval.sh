#!/usr/bin/env bash
# Retrieval benchmark: recall@5, MRR and query latency of BM25 alone, vectors alone and
# hybrid, on question sets written from the sources of real crates the tests never use
# (bench/retrieval/code-*.json; each names its crate, version and the .crate file's sha256)
# and from real PDFs (bench/retrieval/pdf-*.json: follow-up page search; each names the Debian
# package, version, path and sha256 of its PDF, or of its .pdf.gz), with the starter embedding model
# (models/fetch-starter.sh). Crates come from static.crates.io, PDFs from Debian's archive
# (apt-get download), into ${ALTIPLANO_BENCH_CACHE:-$HOME/.cache/altiplano-bench}, checked
# against the sha256 in the set.
#
#   bench/retrieval.sh            all sets; one JSON line per set, then a Markdown table
#
# The embedding model runs where search runs it (the starter: from its GGUF copy on llama.cpp);
# ALTIPLANO_EMBEDDING_ENGINE=candle runs it on candle instead (the engine column says which).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
target="${CARGO_TARGET_DIR:-target}"
cache="${ALTIPLANO_BENCH_CACHE:-$HOME/.cache/altiplano-bench}/crates"
mkdir -p "$cache"
models/fetch-starter.sh >/dev/null
cargo build --workspace --all-targets >/dev/null
results="$(mktemp)"
for set in bench/retrieval/code-*.json; do
  read -r name version url sha < <(python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["source"]; print(s["name"], s["version"], s["url"], s["sha256"])' "$set")
  crate="$cache/$name-$version.crate"
  if [ ! -f "$crate" ] || [ "$(sha256sum "$crate" | cut -d' ' -f1)" != "$sha" ]; then
    curl -fsSL -o "$crate.partial" "$url"
    [ "$(sha256sum "$crate.partial" | cut -d' ' -f1)" = "$sha" ] || { echo "retrieval.sh: $url has the wrong sha256" >&2; exit 1; }
    mv "$crate.partial" "$crate"
  fi
  src="$cache/$name-$version"
  [ -d "$src" ] || tar -xzf "$crate" -C "$cache"
  "$target/debug/examples/retrieval_eval" "$set" "$src" | tee -a "$results"
done
docs="${ALTIPLANO_BENCH_CACHE:-$HOME/.cache/altiplano-bench}/debs"
mkdir -p "$docs"
for set in bench/retrieval/pdf-*.json; do
  read -r package version path sha < <(python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["source"]; print(s["package"], s["version"], s["path"], s["sha256"])' "$set")
  pdf="$docs/$package-$version/$path"
  if [ ! -f "$pdf" ] || [ "$(sha256sum "$pdf" | cut -d' ' -f1)" != "$sha" ]; then
    (cd "$docs" && apt-get download "$package=$version" >/dev/null)
    dpkg-deb -x "$docs/${package}_${version}"_*.deb "$docs/$package-$version"
    [ "$(sha256sum "$pdf" | cut -d' ' -f1)" = "$sha" ] || { echo "retrieval.sh: $path from $package $version has the wrong sha256" >&2; exit 1; }
  fi
  # Some manuals ship compressed (flex.pdf.gz): read the PDF inside.
  case "$pdf" in *.gz) [ -f "${pdf%.gz}" ] || gunzip -k "$pdf"; pdf="${pdf%.gz}" ;; esac
  "$target/debug/examples/retrieval_eval" "$set" "$pdf" | tee -a "$results"
done
python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| set | questions | chunks (passages) | engine | embed chunks/s | BM25 R@5 / MRR | dense R@5 / MRR | hybrid R@5 / MRR | hybrid query p50 / p90 ms |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for r in rows:
    f = lambda k: f"{r[k]['recall_at_5']:.2f} / {r[k]['mrr']:.2f}"
    name = f"{r['set']} {r['version']}" + (f" ({r['file']}, {r['pages']} pages)" if r.get('file') else "")
    print(f"| {name} | {r['questions']} | {r['chunks']} | {r['engine']} | {r['chunks_per_second']:.1f} | {f('bm25')} | {f('dense')} | {f('hybrid')} | {r['hybrid']['query_ms_p50']:.1f} / {r['hybrid']['query_ms_p90']:.1f} |")
PY
