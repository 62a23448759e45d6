#!/usr/bin/env bash
# Fuzzes the readers of untrusted bytes (altiplano-formats) with cargo-fuzz / libFuzzer: each
# target in fuzz/fuzz_targets runs for SECONDS (default 60) from the hostile-file seeds in
# fuzz/seeds/<target>/ (the working corpus goes to a temporary folder, so the repo holds only
# the seeds). A crash or timeout is copied to fuzz/regressions/<target>/ — commit it: the
# corpus test (formats/tests/corpus.rs) then replays it on every test run — and fails the run.
# Prints one line per target: executions, coverage, findings.
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET…]     (test.sh runs it for a few seconds per target)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds="${1:-60}"
shift || true
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(gguf_header safetensors_header hub_listing hub_headers document openai_stream)

if ! command -v cargo-fuzz >/dev/null; then
  echo "==> installing cargo-fuzz"
  cargo install cargo-fuzz --version 0.13.2 --locked
fi
# cargo-fuzz passes nightly-only compiler flags (the sanitizer); the stable compiler takes them
# when told to, so no second toolchain is needed.
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${ALTIPLANO_FUZZ_TARGET_DIR:-$HOME/.cache/altiplano-fuzz-target}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "==> building the fuzz targets (release, with libFuzzer's instrumentation and AddressSanitizer)"
if ! cargo fuzz build --fuzz-dir fuzz --sanitizer address >"$work/build.log" 2>&1; then
  tail -n 40 "$work/build.log" >&2
  echo "the fuzz targets failed to build" >&2
  exit 1
fi

failed=0
for target in "${targets[@]}"; do
  mkdir -p "$work/$target" "$work/artifacts/$target"
  log="$work/$target.log"
  set +e
  cargo fuzz run --fuzz-dir fuzz --sanitizer address "$target" "$work/$target" "fuzz/seeds/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=262144 \
    -artifact_prefix="$work/artifacts/$target/" -print_final_stats=1 >"$log" 2>&1
  status=$?
  set -e
  runs="$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -n 1)"
  cov="$(grep -oE 'cov: [0-9]+' "$log" | tail -n 1 | grep -oE '[0-9]+')"
  found="$(find "$work/artifacts/$target" -type f | wc -l)"
  printf '%-20s %12s executions  %6s edges  %s finding(s)  (%s s)\n' "$target" "${runs:-?}" "${cov:-?}" "$found" "$seconds"
  if [ "$found" -gt 0 ] || [ "$status" -ne 0 ]; then
    mkdir -p "fuzz/regressions/$target"
    cp "$work/artifacts/$target/"* "fuzz/regressions/$target/" 2>/dev/null || true
    echo "  $target failed (exit $status); its inputs are in fuzz/regressions/$target/. Last lines:" >&2
    tail -n 25 "$log" >&2
    failed=1
  fi
done
exit "$failed"
