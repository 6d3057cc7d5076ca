#!/usr/bin/env bash
# floor.sh OUT KEY KNOWN_HOSTS DEVICES_TSV: the bare parallel OpenSSH loop the
# apply bench measures lbc against: every device of DEVICES_TSV (lines
# "NAME<TAB>ADDRESS<TAB>CONFIG<TAB>RELOAD"), 10 at a time, gets
# OUT/NAME/haproxy.cfg with push.sh (FLOOR_KEX and FLOOR_MODE: see there).
# Exits non-zero when any device failed.
set -euo pipefail
[ $# = 4 ] || { echo "usage: floor.sh OUT KEY KNOWN_HOSTS DEVICES_TSV" >&2; exit 2; }
xargs -d '\n' -P 10 -n 1 bash "$(dirname "$0")/push.sh" "$1" "$2" "$3" <"$4"
