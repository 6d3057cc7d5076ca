#!/usr/bin/env bash
# lbc in under a minute (make demo; needs root, and bin/lbc from make build).
#
# Starts a lab of 3 real HAProxy hosts and 4 backend nodes in network
# namespaces, writes a spec tree for it (the lab's devices and 3 balancers
# of two tenants), then runs lbc validate, plan, apply, sends traffic
# through every VIP and counts which node answered, and plans again to show
# that nothing is left to do. The lab is torn down at the end, also on
# failure or Ctrl-C. Any failing step fails the demo (non-zero exit).
set -euo pipefail
start=$SECONDS

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LBC=${LBC:-$ROOT/bin/lbc}
GO=${GO:-go}
LAB=demo   # lab name: namespaces demo-d1.., bridge lbcdemo
INDEX=7    # lab subnet 198.18.14.0/23, VIPs in 198.18.15.0/24
export PATH="$PATH:/usr/local/go/bin"

if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then B=$'\033[1m' G=$'\033[32m' R=$'\033[31m' N=$'\033[0m'; else B= G= R= N=; fi
section() { printf '\n%s== %s%s  [%ds]\n' "$B" "$*" "$N" $((SECONDS - start)); }
die() { printf '%sdemo: %s%s\n' "$R" "$*" "$N" >&2; exit 1; }
# show CMD...: print the command as a user would type it, then run it.
show() {
	local s="$*"
	s=${s//"$ROOT/"/}
	printf '%s$ %s%s\n' "$B" "${s//"$work"/\$WORK}" "$N"
	"$@"
}

[ "$(id -u)" = 0 ] || die "the lab needs root (network namespaces): run as root"
[ -x "$LBC" ] || die "$LBC not found: run make build first"

work=$(mktemp -d /tmp/lbc-demo.XXXXXX)
labdir=$work/lab
cleanup() {
	local rc=$?
	set +e
	if [ -x "$work/labctl" ]; then
		section "Lab down"
		"$work/labctl" down -name "$LAB" -dir "$labdir" && echo "namespaces, bridge and processes of lab $LAB removed"
	fi
	rm -rf "$work"
	if [ $rc = 0 ]; then printf '\n%sdemo done%s\n' "$G" "$N"; else printf '\n%sdemo FAILED (exit %d)%s\n' "$R" "$rc" "$N" >&2; fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

section "1. A lab: 3 HAProxy hosts and 4 backend nodes, each in its own network namespace"
(cd "$ROOT" && "$GO" build -o "$work/labctl" ./internal/testkit/lab/labctl)
"$work/labctl" up -name "$LAB" -index "$INDEX" -devices 3 -nodes 4 -vips 3 -dir "$labdir" >"$work/lab.env"
source "$work/lab.env"
read -ra DEVS <<<"$LAB_DEVICE_NAMES"
read -ra ADDRS <<<"$LAB_DEVICES"
read -ra NODES <<<"$LAB_NODES"
read -ra VIPS <<<"$LAB_VIPS"
for i in "${!DEVS[@]}"; do
	printf '  device %-8s %-14s sshd + haproxy (master-worker), config %s\n' "${DEVS[i]}" "${ADDRS[i]}" "\$WORK/lab/${DEVS[i]}/haproxy.cfg"
done
for i in "${!NODES[@]}"; do
	printf '  node   %-8s %-20s answers every HTTP request with its name\n' "n$((i + 1))" "${NODES[i]}"
done
echo "  VIPs come from $LAB_VIP_NETWORK (every device's vipNetworks); lab up in ${LAB_STARTUP_MS} ms"

section "2. The spec tree: the lab's devices, 3 balancers of tenants shop and blog"
spec=$work/specs
mkdir -p "$spec/devices" "$spec/balancers/shop" "$spec/balancers/blog"
cp "$LAB_SPEC" "$spec/devices/devices.cue"
node() { local a=${NODES[$1 - 1]}; printf '{address: "%s", port: %s' "${a%:*}" "${a##*:}"; }
cat >"$spec/balancers/shop/web.cue" <<EOF
package spec

// The shop's web site: HTTP, 70/30 between two nodes, checked over HTTP.
balancers: "shop-web": {
	tenant:    "shop"
	protocol:  "http"
	algorithm: "roundrobin"
	vips: [{address: "${VIPS[0]}", port: 80}]
	nodes: [
		$(node 1), weight: 7},
		$(node 2), weight: 3},
	]
	healthMonitor: {type: "http", path: "/", expect: 200, interval: "2s", timeout: "1s", rise: 2, fall: 3}
}
EOF
cat >"$spec/balancers/shop/api.cue" <<EOF
package spec

// The shop's API: plain TCP, spread evenly over three nodes, TCP-checked.
balancers: "shop-api": {
	tenant:    "shop"
	protocol:  "tcp"
	algorithm: "roundrobin"
	vips: [{address: "${VIPS[1]}", port: 8080}]
	nodes: [
		$(node 2), weight: 1},
		$(node 3), weight: 1},
		$(node 4), weight: 1},
	]
	healthMonitor: {type: "tcp", interval: "2s", timeout: "1s", rise: 2, fall: 3}
}
EOF
cat >"$spec/balancers/blog/blog.cue" <<EOF
package spec

// The blog: HTTP, node n4 gets four times the requests of n3.
balancers: "blog": {
	tenant:    "blog"
	protocol:  "http"
	algorithm: "roundrobin"
	vips: [{address: "${VIPS[2]}", port: 80}]
	nodes: [
		$(node 3), weight: 1},
		$(node 4), weight: 4},
	]
	healthMonitor: {type: "none"}
}
EOF
(cd "$spec" && find . -name '*.cue' | sort | sed 's|^\./|  |')
echo
sed 's/^/    /' "$spec/balancers/shop/web.cue"

SSH=(--known-hosts "$LAB_KNOWN_HOSTS" --ssh-key "$LAB_KEY")

section "3. lbc validate: schema and semantic checks"
show "$LBC" validate "$spec"

section "4. lbc plan: what would change on each host (nothing applied yet)"
rc=0
show "$LBC" plan "$spec" "${SSH[@]}" --detailed-exitcode || rc=$?
[ $rc = 2 ] || die "lbc plan --detailed-exitcode: exit $rc, want 2 (changes)"

section "5. lbc apply: one atomic transaction per host"
# The lab's hosts start with a hand-written haproxy.cfg (plan shows it as
# "not managed by lbc"): --adopt lets this first apply replace it.
show "$LBC" apply "$spec" "${SSH[@]}" --adopt

section "6. Traffic through every VIP: 10 requests each, which node answered"
# count VIP PORT NODE...: 10 requests; every answer must be one of NODE...
count() {
	local vip=$1 port=$2; shift 2
	local want=" $* " body i
	declare -A n=()
	for i in $(seq 1 10); do
		body=$(curl -s --max-time 2 "http://$vip:$port/") || die "GET http://$vip:$port/: curl exit $?"
		case $want in *" $body "*) ;; *) die "GET http://$vip:$port/: answered \"$body\", not one of $*" ;; esac
		n[$body]=$((${n[$body]:-0} + 1))
	done
	local out=
	for i in "$@"; do [ -n "${n[$i]:-}" ] && out+="${out:+, }$i x${n[$i]}"; done
	printf '  vip %s:%s → %s\n' "$vip" "$port" "$out"
}
count "${VIPS[0]}" 80 n1 n2       # shop-web, weights 7:3
count "${VIPS[1]}" 8080 n2 n3 n4  # shop-api, weights 1:1:1
count "${VIPS[2]}" 80 n3 n4       # blog, weights 1:4

section "7. lbc plan again: the hosts run exactly what the specs say"
rc=0
show "$LBC" plan "$spec" "${SSH[@]}" --detailed-exitcode || rc=$?
[ $rc = 0 ] || die "lbc plan --detailed-exitcode after apply: exit $rc, want 0 (no changes)"

echo
echo "all steps passed in $((SECONDS - start)) s"
