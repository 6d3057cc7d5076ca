#!/usr/bin/env bash
# push.sh OUT KEY KNOWN_HOSTS LINE: the floor's work for one device, with
# nothing but OpenSSH and no safety at all (no lock, no state, no rollback,
# no check that the reload worked). LINE is "NAME<TAB>ADDRESS<TAB>CONFIG<TAB>RELOAD".
# One SSH session: upload OUT/NAME/haproxy.cfg to a temp file beside the
# config, haproxy -c it, mv it over the config, run the reload command.
set -euo pipefail
out=$1 key=$2 known=$3
IFS=$'\t' read -r name addr cfg reload <<<"$4"
q() { printf "'%s'" "${1//\'/\'\\\'\'}"; }
tmp=$cfg.floor-tmp
exec ssh -F /dev/null -i "$key" -o IdentitiesOnly=yes -o BatchMode=yes \
	-o UserKnownHostsFile="$known" -o StrictHostKeyChecking=yes \
	-o ConnectTimeout=10 -o ControlMaster=no "root@$addr" \
	"cat >$(q "$tmp") && haproxy -c -q -f $(q "$tmp") && mv $(q "$tmp") $(q "$cfg") && $reload" \
	<"$out/$name/haproxy.cfg"
