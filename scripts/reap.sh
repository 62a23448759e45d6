#!/usr/bin/env bash
# Stops every process that carries `ALTIPLANO_RUN_MARK=MARK` in its environment, except the
# caller. test.sh marks its run this way: a daemon that D-Bus started for a test (a keyring, an
# accessibility bus) can outlive the test and hold the run's output open, and a runner waiting
# for that output to end would wait forever.
set -uo pipefail
mark="${1:?usage: reap.sh MARK}"
spare=" $$ $PPID "
found=()
for environ in /proc/[0-9]*/environ; do
  pid="${environ#/proc/}"
  pid="${pid%/environ}"
  [[ "$spare" == *" $pid "* ]] && continue
  if grep -qxzF "ALTIPLANO_RUN_MARK=$mark" "$environ" 2>/dev/null; then
    found+=("$pid")
  fi
done
[ "${#found[@]}" -eq 0 ] && exit 0
for pid in "${found[@]}"; do
  printf 'stopping a leftover process %s: %s\n' "$pid" "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" >&2
done
kill -TERM "${found[@]}" 2>/dev/null
sleep 2
kill -KILL "${found[@]}" 2>/dev/null
exit 0
