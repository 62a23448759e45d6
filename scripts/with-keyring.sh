#!/usr/bin/env bash
# Runs a command inside a private D-Bus session with a throwaway, unlocked gnome-keyring (a
# real Secret Service), so keyring tests exercise the real OS keyring path without touching the
# user's own keyring. Sets ALTIPLANO_TEST_KEYRING=1 for the tests that need it.
set -euo pipefail
if [ -z "${ALTIPLANO_PRIVATE_BUS:-}" ]; then
  exec env ALTIPLANO_PRIVATE_BUS=1 dbus-run-session -- "$0" "$@"
fi
keyring_home="$(mktemp -d)"
trap 'rm -rf "$keyring_home"' EXIT
printf 'altiplano-test' | XDG_DATA_HOME="$keyring_home" gnome-keyring-daemon --unlock --components=secrets >/dev/null
export ALTIPLANO_TEST_KEYRING=1
"$@"
