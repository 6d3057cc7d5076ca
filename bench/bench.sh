#!/usr/bin/env bash
# lbc benchmarks (make bench). Runs each section in order and prints its
# table; a section that cannot run yet says so and the others go on.
#
#   bash bench/bench.sh            all sections
#   bash bench/bench.sh compile    only the named sections
#
# Sections are the scripts bench/<name>.sh listed in SECTIONS; to add one,
# write bench/<name>.sh (source bench/lib.sh, print a table) and list it here.
set -uo pipefail
cd "$(dirname "$0")"
SECTIONS=(compile apply maps watch scale tls)

want=("$@")
[ ${#want[@]} -eq 0 ] && want=("${SECTIONS[@]}")
rc=0
for s in "${want[@]}"; do
	if [ ! -f "$s.sh" ]; then
		echo "== $s: not available (bench/$s.sh not written yet)"
		echo
		continue
	fi
	bash "$s.sh" || { echo "== $s: failed (exit $?)"; rc=1; }
	echo
done
exit $rc
