#!/usr/bin/env bash
# weight.sh FILE: the edit of the compile section's one-tenant row. Sets the
# first node weight FILE writes (its first `weight: N`) to 201, or to 202
# when it is 201, so that every run changes one balancer's node weight as a
# user would; compile.sh restores the file at the end.
set -euo pipefail
f=$1
cur=$(grep -om1 'weight: [0-9]*' "$f" | awk 'NR == 1 {print $2}')
[ -n "$cur" ] || { echo "weight.sh: no node weight in $f" >&2; exit 1; }
new=201
[ "$cur" = 201 ] && new=202
sed -i "0,/weight: [0-9]*/s//weight: $new/" "$f"
