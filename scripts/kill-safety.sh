#!/usr/bin/env bash
# Kill safety, measured: the CLI killed with SIGKILL at KILLS random moments (default 100) of
# chat replies, document answers, summaries, indexing and downloads, with the figures the README
# reports (cli/tests/kill_safety.rs; the test run does 20). Usage: scripts/kill-safety.sh [KILLS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/altiplano-target}"
ALTIPLANO_KILLS="${1:-100}" cargo test --workspace --test kill_safety -- --nocapture 2>&1 | grep -E "kill safety|test result|panicked|FAILED"
