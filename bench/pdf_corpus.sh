#!/usr/bin/env bash
# PDF corpus for the text-extraction benchmark: real-world PDFs that Debian (bookworm) documentation
# packages ship, written by nobody on this team, from many producers (pdfTeX, XeTeX/xdvipdfmx, LuaTeX,
# dvips + Acrobat Distiller or Ghostscript, groff's gropdf, ReportLab, Apache FOP, LibreOffice, cairo,
# iText, ImageMagick), in several scripts (Latin, Cyrillic, Arabic, CJK, Thai).
#
# Usage: bench/pdf_corpus.sh [CORPUS_DIR]   (default ${TMPDIR:-/tmp}/altiplano-pdf-corpus)
# Installs poppler-utils (pdfinfo, pdftotext: the baseline) and poppler-data (CJK mappings; without it
# pdftotext reports errors on fontspec.pdf) when missing and running as root. The
# documentation packages are not installed: their .debs are fetched with `apt-get download` (cached in
# CORPUS_DIR/.debs) and unpacked with `dpkg-deb -x`, so none of their dependencies (texlive-base, cups...)
# come along. Each chosen PDF is copied to CORPUS_DIR/<package>/<name>.pdf (.pdf.gz are decompressed);
# CORPUS_DIR/manifest.tsv lists pages, bytes, package=version, producer and file; a summary is printed.
# Versions follow the archive (point releases), so the manifest records which ones were used.
set -euo pipefail
corpus="${1:-${TMPDIR:-/tmp}/altiplano-pdf-corpus}"

# package | extended regex on the path inside the package (only regular files ending in .pdf or .pdf.gz).
# Skipped on purpose: R's refman.pdf (same as fullrefman.pdf), octave-doc (more texinfo/pdfTeX, 1200
# pages), most of texlive-latex-recommended-doc (~190 more pdfTeX manuals), cups' five near-identical
# one-page banners.
selection=(
  "r-doc-pdf|/(R-[A-Za-z]+|fullrefman)\.pdf$"                 # texinfo/LaTeX manuals, incl. a 2415-page reference
  "gnuplot-doc|\.pdf$"                                        # LaTeX, 311 pages
  "asymptote-doc|\.pdf$"                                      # texinfo + LaTeX; pixel.pdf is an ImageMagick image
  "maxima-doc|\.pdf\.gz$"                                     # pdfTeX 1.10b (2004), shipped gzipped
  "python-reportlab-doc|\.pdf$"                               # ReportLab
  "ghostscript-doc|\.pdf$"                                    # MiKTeX, image-heavy (6.6 MB for 42 pages)
  "groff|\.pdf\.gz$"                                          # groff's gropdf, Ghostscript; gzipped
  "fop-doc|\.pdf$"                                            # Apache FOP, CID fonts
  "cups-filters|/(default|default-testpage|form_english|form_russian|classified)\.pdf$"  # LibreOffice, cairo, Ghostscript
  "texlive-fonts-recommended-doc|\.pdf$"                      # incl. dvips + Acrobat Distiller 4.05
  "texlive-latex-recommended-doc|/(example-(arabic|chinese|japanese|korean|thai)|polyglossia|fontspec|unimath-symbols|fancyvrb-doc|mdwtab|lineno|setpage-example|beamerexample-conference-talk|caption|xkeyval|dummy-l|mathspec|metalogo|microtype)\.pdf$"
)

as_root() { [ "$(id -u)" = 0 ] || { echo "need root to run: $*" >&2; return 1; }; "$@"; }
updated=
apt_update_once() { [ -n "$updated" ] || { as_root apt-get update -qq; updated=1; }; }

# The baseline tools.
if ! command -v pdftotext >/dev/null || ! dpkg -s poppler-data >/dev/null 2>&1; then
  as_root apt-get install -y -qq --no-install-recommends poppler-utils poppler-data \
    || { apt_update_once && as_root apt-get install -y -qq --no-install-recommends poppler-utils poppler-data; }
fi

mkdir -p "$corpus/.debs"
corpus="$(cd "$corpus" && pwd)"
unpacked="$(mktemp -d)"
trap 'rm -rf "$unpacked"' EXIT
printf 'pages\tbytes\tpackage\tproducer\tfile\n' >"$corpus/manifest.tsv"

for entry in "${selection[@]}"; do
  pkg="${entry%%|*}" pattern="${entry#*|}"
  # Fetch the .deb once (a stale package list gives a 404: refresh it and retry).
  deb="$(ls "$corpus/.debs/${pkg}"_*.deb 2>/dev/null | head -n1 || true)"
  if [ -z "$deb" ]; then
    (cd "$corpus/.debs" && { apt-get download -qq "$pkg" 2>/dev/null || { apt_update_once && apt-get download -qq "$pkg"; }; })
    deb="$(ls "$corpus/.debs/${pkg}"_*.deb | head -n1)"
  fi
  version="$(dpkg-deb -f "$deb" Version)"
  rm -rf "${unpacked:?}/$pkg" && dpkg-deb -x "$deb" "$unpacked/$pkg"
  rm -rf "${corpus:?}/$pkg" && mkdir -p "$corpus/$pkg"
  # Regular files only: symlinks in these packages point at copies already taken.
  (cd "$unpacked/$pkg" && find . -type f \( -name '*.pdf' -o -name '*.pdf.gz' \) | grep -E "$pattern" | sort) |
  while read -r path; do
    src="$unpacked/$pkg/$path" name="$(basename "${path%.gz}")"
    [ ! -e "$corpus/$pkg/$name" ] || { echo "duplicate name $pkg/$name" >&2; exit 1; }
    case "$path" in *.gz) gzip -dc "$src" >"$corpus/$pkg/$name" ;; *) cp "$src" "$corpus/$pkg/$name" ;; esac
    info="$(pdfinfo "$corpus/$pkg/$name" 2>/dev/null | tr -d '\0')"
    pages="$(awk '/^Pages:/ {print $2}' <<<"$info")"
    producer="$(awk -F': *' '/^Producer:/ {print $2}' <<<"$info")"
    printf '%s\t%s\t%s\t%s\t%s\n' "${pages:-?}" "$(stat -c %s "$corpus/$pkg/$name")" "$pkg=$version" \
      "${producer:-none}" "$pkg/$name" >>"$corpus/manifest.tsv"
  done
done

column -t -s $'\t' "$corpus/manifest.tsv"
awk -F'\t' 'NR > 1 {n++; p += $1; b += $2} END {printf "%d PDFs, %d pages, %.1f MB in %s\n", n, p, b / 1e6, dir}' \
  dir="$corpus" "$corpus/manifest.tsv"
