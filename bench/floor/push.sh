#!/usr/bin/env bash
# push.sh OUT KEY KNOWN_HOSTS LINE: the floor's work for one device, with
# nothing but OpenSSH and no safety at all (no lock, no state, no rollback,
# no check that the reload worked). LINE is "NAME<TAB>ADDRESS<TAB>CONFIG<TAB>RELOAD".
# One SSH session: upload OUT/NAME/haproxy.cfg to a temp file beside the
# config, haproxy -c it, mv it over the config, run the reload command.
#
# FLOOR_KEX, when set, is passed as -o KexAlgorithms= (the key exchange lbc
# negotiates, for a like-with-like comparison; unset: OpenSSH's default).
# FLOOR_MODE=compare makes it the loop's no-change run: the session reads
# the config and compares it with OUT/NAME/haproxy.cfg (cmp), and fails
# when they differ.
set -euo pipefail
out=$1 key=$2 known=$3
IFS=$'\t' read -r name addr cfg reload <<<"$4"
q() { printf "'%s'" "${1//\'/\'\\\'\'}"; }
tmp=$cfg.floor-tmp
kex=()
[ -z "${FLOOR_KEX:-}" ] || kex=(-o "KexAlgorithms=$FLOOR_KEX")
if [ "${FLOOR_MODE:-push}" = compare ]; then
	remote="cmp -s $(q "$cfg") -"
else
	remote="cat >$(q "$tmp") && haproxy -c -q -f $(q "$tmp") && mv $(q "$tmp") $(q "$cfg") && $reload"
fi
exec ssh -F /dev/null -i "$key" -o IdentitiesOnly=yes -o BatchMode=yes \
	-o UserKnownHostsFile="$known" -o StrictHostKeyChecking=yes \
	-o ConnectTimeout=10 -o ControlMaster=no "${kex[@]}" "root@$addr" \
	"$remote" <"$out/$name/haproxy.cfg"
