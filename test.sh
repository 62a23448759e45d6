#!/usr/bin/env bash
# One command runs every test: installs what is missing, checks formatting, the architecture
# invariants, clippy and rustdoc (warnings are errors), then runs the Rust tests (engine,
# store, chat, CLI with the real starter model, downloads against a local HTTP server, the
# keyring in a private Secret Service, the hostile-file corpus, kills at random moments), a
# short fuzzing run of every reader of untrusted bytes, the UI tests, and the end-to-end tests
# of the real app under Xvfb (XSS payloads, offline mode under a connection log). Exits
# non-zero if anything fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
scripts/deps.sh test

# Every process this run starts inherits this mark, so whatever outlives its test (a daemon that
# D-Bus started, holding the run's output open) is found and stopped when the run ends.
export ALTIPLANO_RUN_MARK="altiplano-test-$$-$(date +%s%N)"
installed_here=""
cleanup() {
  scripts/reap.sh "$ALTIPLANO_RUN_MARK"
  if [ -n "$installed_here" ]; then $installed_here dpkg -r altiplano >/dev/null || true; fi
}
trap cleanup EXIT

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "formatting"
if cargo fmt --version >/dev/null 2>&1; then cargo fmt --all --check; else echo "rustfmt not installed; skipped"; fi

step "architecture invariants (ARCHITECTURE.md)"
scripts/check-architecture.sh

step "UI: type check and unit tests"
npm --prefix ui run check
npm --prefix ui test

step "UI: build (the app embeds it)"
npm --prefix ui run build

# After the UI build: the app crate embeds ui/dist, so clippy compiles it only once it exists.
step "lints: clippy and rustdoc, warnings are errors"
if cargo clippy --version >/dev/null 2>&1; then
  cargo clippy --workspace --all-targets -- -D warnings
else
  echo "clippy not installed (rustup component add clippy); skipped" >&2
fi
RUSTDOCFLAGS=-Dwarnings cargo doc --workspace --no-deps

step "Rust tests (real model, real SQLite, real processes, a real HTTP server, a real keyring)"
scripts/with-keyring.sh cargo test --workspace --no-fail-fast

step "fuzzing: each reader of untrusted bytes from the hostile-file seeds (scripts/fuzz.sh; longer runs by hand)"
scripts/fuzz.sh "${ALTIPLANO_FUZZ_SECONDS:-10}"

step "generated TypeScript bindings match the Rust commands and types"
# The app's `bindings` test writes ui/src/lib/api/bindings.ts (tauri-specta), checks the
# capability file grants exactly its commands and that no stale generated file is left.
if git rev-parse --git-dir >/dev/null 2>&1; then
  if ! git diff --exit-code -- ui/src/lib/api || [ -n "$(git ls-files --others --exclude-standard ui/src/lib/api)" ]; then
    echo "ui/src/lib/api/bindings.ts changed: commit the regenerated file" >&2
    exit 1
  fi
fi

step "end to end: the real app under Xvfb (screenshots go to tests/artifacts/)"
cargo build --workspace --all-targets
export ALTIPLANO_APP_BINARY="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/debug/altiplano-app"
# A private bus with an unlocked throwaway keyring already running (the app's keyring calls
# activate and prompt nothing), and a time limit so a hang fails instead of stalling the run.
timeout --kill-after=30 1800 \
  xvfb-run -a -s "-screen 0 1280x800x24" \
  scripts/with-keyring.sh node --test --test-concurrency=1 tests/e2e/

step "the installed app: package the debug build (.deb, .rpm), install the .deb, start it from /usr/bin"
scripts/package.sh --debug
export ALTIPLANO_DEB ALTIPLANO_RPM
ALTIPLANO_DEB="$(ls -t "${CARGO_TARGET_DIR:-target}"/debug/bundle/deb/*.deb | head -1)"
ALTIPLANO_RPM="$(ls -t "${CARGO_TARGET_DIR:-target}"/debug/bundle/rpm/*.rpm | head -1)"
as_root=""
[ "$(id -u)" -ne 0 ] && as_root="sudo -n"
if dpkg-query -W -f='${Status}' altiplano 2>/dev/null | grep -q "install ok installed"; then
  echo "Altiplano is installed on this machine; the test does not replace it: installed-app test skipped" >&2
elif ! $as_root true 2>/dev/null; then
  echo "installing a package needs root (or sudo without a password): installed-app test skipped" >&2
else
  $as_root dpkg -i "$ALTIPLANO_DEB"
  installed_here="${as_root:-env}"
  timeout --kill-after=30 600 \
    xvfb-run -a -s "-screen 0 1280x800x24" \
    scripts/with-keyring.sh node --test --test-concurrency=1 tests/installed/
  $as_root dpkg -r altiplano
  installed_here=""
fi
