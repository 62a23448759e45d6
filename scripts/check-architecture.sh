#!/usr/bin/env bash
# The architecture invariants that a script can check (ARCHITECTURE.md, "Invariants"):
# the core depends on no face's libraries, only core::engine names the engine crates, only
# altiplano-formats names the document parsers, and only ui/src/lib/api reaches the backend.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
failed=0

# The core's direct dependencies (normal ones: its examples may use anything).
direct="$(cargo tree -p altiplano-core -e normal --depth 1 --prefix none --format '{p}' | awk '{print $1}' | sort -u)"
for forbidden in tauri clap anyhow indicatif rpassword; do
  if grep -qx "$forbidden" <<<"$direct"; then
    echo "altiplano-core depends on $forbidden, a face's library: move the code that needs it to cli/ or src-tauri/" >&2
    failed=1
  fi
done
if ! grep -qx mistralrs <<<"$direct"; then
  echo "check-architecture.sh could not read the core's dependencies" >&2
  failed=1
fi

# Engine crates named outside the engine.
if hits="$(grep -rnE '\b(mistralrs|llama_cpp_2|llama_cpp_sys_2)::' core/src cli/src src-tauri/src --include='*.rs' \
  | grep -v '^core/src/engine/')"; then
  echo "only core::engine may name mistralrs or llama-cpp-2:" >&2
  echo "$hits" >&2
  failed=1
fi

# Untrusted bytes are parsed in altiplano-formats, which the fuzz targets drive: the document
# parsers are named nowhere else.
if hits="$(grep -rnE '\b(pdf_oxide|office_oxide|html2text)::' core/src cli/src src-tauri/src --include='*.rs')"; then
  echo "only altiplano-formats (formats/) may name the document parsers; the fuzz targets cover it:" >&2
  echo "$hits" >&2
  failed=1
fi

# The UI reaches the backend through one door: only ui/src/lib/api imports Tauri's API or the
# generated bindings (tests may mock the IPC).
if hits="$(grep -rnE "from '@tauri-apps/api|/api/bindings'" ui/src --include='*.ts' --include='*.svelte' \
  | grep -v -e '^ui/src/lib/api/' -e '\.test\.ts:')"; then
  echo "only ui/src/lib/api may import @tauri-apps/api or the generated bindings:" >&2
  echo "$hits" >&2
  failed=1
fi
[ "$failed" = 0 ] && echo "architecture invariants hold"
exit "$failed"

