#!/usr/bin/env bash
# One command runs the app: installs what is missing, builds, and opens Altiplano with the
# starter model loaded (or the last model you chose). Extra arguments go to the app.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
scripts/deps.sh app
echo "==> building the front end"
npm --prefix ui run build
# The same build as the tests (same features), so running and testing share one build.
echo "==> building the app (the first build takes a while: mistral.rs is large)"
cargo build --workspace --all-targets
export ALTIPLANO_STARTER_MODEL="${ALTIPLANO_STARTER_MODEL:-$PWD/models/starter/SmolLM2-135M-Instruct.Q4_1.gguf}"
exec "${CARGO_TARGET_DIR:-target}/debug/altiplano-app" "$@"
