#!/usr/bin/env bash
# weight.sh FILE: the edit of the compile section's one-tenant row. Adds 1
# to the first node weight FILE writes (its first `weight: N`; 256 wraps
# to 1), so that every run changes one balancer's node weight as a user
# would, to a value no earlier run of the section had: with two values in
# turn, the third run found the whole tree's result of the first in the
# cache. compile.sh restores the file at the end.
set -euo pipefail
f=$1
cur=$(grep -om1 'weight: [0-9]*' "$f" | awk 'NR == 1 {print $2}')
[ -n "$cur" ] || { echo "weight.sh: no node weight in $f" >&2; exit 1; }
sed -i "0,/weight: [0-9]*/s//weight: $((cur % 256 + 1))/" "$f"
