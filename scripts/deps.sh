#!/usr/bin/env bash
# Installs what Altiplano needs to build, run and test, skipping whatever is already present.
# Usage: scripts/deps.sh app|test
#   app:  Debian packages for building the Tauri app, npm packages, the starter model.
#   test: all of the above plus the end-to-end test tools (WebKitWebDriver, Xvfb, tauri-driver).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

want="${1:-app}"
app_packages=(build-essential pkg-config curl wget file cmake libclang-dev libwebkit2gtk-4.1-dev libxdo-dev libssl-dev
  libayatana-appindicator3-dev librsvg2-dev libdbus-1-dev python3 python3-pip)
test_packages=(webkit2gtk-driver xvfb xauth dbus dbus-x11 gnome-keyring imagemagick fonts-wqy-microhei rpm strace python3-venv)

packages=("${app_packages[@]}")
[ "$want" = test ] && packages+=("${test_packages[@]}")

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

missing=()
if command -v dpkg-query >/dev/null; then
  for p in "${packages[@]}"; do
    # python3/pip may come from elsewhere (pyenv); only ask apt when the command is missing.
    case "$p" in
      python3) command -v python3 >/dev/null && continue ;;
      python3-pip) python3 -m pip --version >/dev/null 2>&1 && continue ;;
      python3-venv) python3 -c 'import ensurepip, venv' >/dev/null 2>&1 && continue ;;
    esac
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  command -v node >/dev/null || missing+=(nodejs npm)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

command -v cargo >/dev/null || { echo "Rust is needed: install it from https://rustup.rs and run this again" >&2; exit 1; }

if [ ! -d ui/node_modules ] || [ ui/package-lock.json -nt ui/node_modules/.package-lock.json ]; then
  say "installing npm packages"
  npm --prefix ui ci --no-audit --no-fund
fi

say "starter model"
models/fetch-starter.sh

if [ "$want" = test ] && ! command -v tauri-driver >/dev/null; then
  say "installing tauri-driver"
  cargo install tauri-driver --version 2.1.0 --locked
fi

# The official OpenAI and Anthropic Python clients, which cli/tests/serve.rs points at
# `altiplano serve`; and the `gguf` package (with numpy and safetensors), with which
# scripts/bert-to-gguf.py writes the starter embedding model as GGUF for the llama.cpp
# embedding tests.
openai_version=3.60.0
anthropic_version=2.16.0
gguf_version=0.19.0
safetensors_version=0.8.0
numpy_version=2.4.6
venv="${ALTIPLANO_TEST_VENV:-$HOME/.cache/altiplano-test-venv}"
venv_has() {
  "$venv/bin/python" - "$@" 2>/dev/null <<'PY'
import sys
from importlib.metadata import version
sys.exit(any(version(name) != wanted for name, wanted in (arg.split("==") for arg in sys.argv[1:])))
PY
}
wanted=("openai==$openai_version" "anthropic==$anthropic_version" "gguf==$gguf_version" "safetensors==$safetensors_version" "numpy==$numpy_version")
if [ "$want" = test ] && ! venv_has "${wanted[@]}"; then
  say "test venv with ${wanted[*]} in $venv"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${wanted[@]}"
fi
