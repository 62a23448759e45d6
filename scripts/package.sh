#!/usr/bin/env bash
# Builds Altiplano's Linux packages, a .deb and an .rpm, with Tauri's bundler.
#
#   scripts/package.sh           release build (cargo build --release), then the packages
#   scripts/package.sh --debug   packages the debug build that ./run.sh and ./test.sh make
#                                (seconds: no second build; what the tests install)
#
# The packages land in $CARGO_TARGET_DIR/<release|debug>/bundle/{deb,rpm}/ and hold:
#   /usr/bin/altiplano-app            the app (with a desktop entry and icons)
#   /usr/bin/altiplano                the command line
#   /usr/lib/altiplano/               llama.cpp's libraries: libllama, libggml and one
#                                     libggml-cpu-* per CPU family, the best picked at run time
#   /usr/share/altiplano/models/      the starter model, so the app answers at first start, and
#                                     the starter embedding model (all-MiniLM-L6-v2/), so code
#                                     search is hybrid from the start
# Features pass through: scripts/package.sh --features cuda (or vulkan) builds for a GPU.
#
# Other systems build on their own machines: macOS (.dmg, .app) with Xcode's command line tools
# and `npm --prefix ui exec tauri -- build --bundles dmg` there (llama.cpp's libraries go in
# Contents/Frameworks, the starter model in Contents/Resources; signing needs an Apple
# Developer ID); Windows (.msi, .exe) with Visual Studio's C++ tools, WiX 3 or NSIS, and
# `... tauri build --bundles msi,nsis` (the libraries beside altiplano-app.exe). Neither is
# built or tested here.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

profile=release
features=()
while [ $# -gt 0 ]; do
  case "$1" in
    --debug) profile=debug ;;
    --features) features=(--features "$2"); shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "package.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
target="$(cd "${CARGO_TARGET_DIR:-target}" 2>/dev/null && pwd || echo "$PWD/target")"
out="$target/$profile"
starter="models/starter/SmolLM2-135M-Instruct.Q4_1.gguf"

if [ "$profile" = release ]; then
  scripts/deps.sh app
  say "building the front end"
  npm --prefix ui run build
  say "building the app and the command line (release: this takes a while)"
  cargo build --release -p altiplano-app -p altiplano-cli "${features[@]}"
fi
for program in altiplano-app altiplano; do
  [ -x "$out/$program" ] || { echo "package.sh: $out/$program is missing; build it first (./run.sh or cargo build --workspace)" >&2; exit 1; }
done
embedder="models/starter/all-MiniLM-L6-v2"
[ -f "$starter" ] && [ -f "$embedder/model.safetensors" ] || models/fetch-starter.sh

# Every file the packages carry besides the app itself, as Tauri's `files` map (package path →
# file here). The libraries are copied under their sonames (what the binaries ask for).
files="$(python3 - "$out" "$PWD/$starter" "$PWD/$embedder" <<'EOF'
import json, os, sys
out, starter, embedder = sys.argv[1], sys.argv[2], sys.argv[3]
files = {"/usr/bin/altiplano": os.path.join(out, "altiplano")}
names = sorted(os.listdir(out))
for name in names:
    path = os.path.join(out, name)
    soname = name.startswith(("libllama.so.", "libggml.so.", "libggml-base.so.")) and name.count(".") == 2
    if soname or (name.startswith("libggml-") and name.endswith(".so") and "base" not in name):
        files["/usr/lib/altiplano/" + name] = os.path.realpath(path)
if not any(k.startswith("/usr/lib/altiplano/libggml-cpu-") for k in files):
    sys.exit(f"package.sh: no libggml-cpu-* in {out}: llama.cpp was not built with its dynamic backends")
files["/usr/share/altiplano/models/" + os.path.basename(starter)] = starter
for name in ("config.json", "tokenizer.json", "model.safetensors", "sentence_bert_config.json"):
    files["/usr/share/altiplano/models/all-MiniLM-L6-v2/" + name] = os.path.join(embedder, name)
print(json.dumps({"bundle": {"linux": {"deb": {"files": files}, "rpm": {"files": files}}}}))
EOF
)"

say "packaging the $profile build (.deb and .rpm)"
flags=(--bundles deb,rpm --config "$files" --ci)
[ "$profile" = debug ] && flags+=(--debug)
(cd src-tauri && ../ui/node_modules/.bin/tauri bundle "${flags[@]}" "${features[@]}")
ls -l "$out"/bundle/deb/*.deb "$out"/bundle/rpm/*.rpm
