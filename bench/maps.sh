#!/usr/bin/env bash
# Section "maps": a 100-entry host-table change applied to 50 lab devices,
# at runtime (lbc apply: prepare/add/commit map on the stats socket, no
# reload) against the same change by reload (lbc apply --reload), side by
# side in one run: wall time, CPU per device (host, controller, machine), and how many
# devices got a new HAProxy worker (runtime: 0 is the point).
#
# Every device carries one balancer with pools a and b and a host table of
# HOSTS entries; variant b moves hosts 0..99 from pool a to pool b. Each
# round applies a → b at runtime, then b → a by reload (the same 100
# entries, back), so both move the same entries on the same lab. After
# every apply the bench checks that every device's map file is the
# rendered one, that the running map of a few devices (show map through
# the master socket) holds the moved entries, and that requests for a
# moved host and an unmoved one through their VIPs reach the right node.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/labapply.sh"

LAB=${BENCH_MAPS_LAB:-bmap}             # lab name (namespaces bmap-d1.., bridge lbcbmap)
INDEX=${BENCH_MAPS_INDEX:-25}           # lab subnet index: 198.18.50.0/23
NDEV=${BENCH_MAPS_DEVICES:-50}
HOSTS=${BENCH_MAPS_HOSTS:-1000}         # entries of each device's host table
MOVED=100

need_time
lab_needs maps

failed=0
fail() { log "maps: FAILED: $*"; failed=1; }
lab_start maps 2 "$NDEV"

# Balancer i (1-based) on device i: VIP i, pool a = node 1, pool b = node
# 2, hosts hK.bI.example.com → a (variant b: K < MOVED → b).
gen_spec() {
	local dir=$1 variant=$2 i
	mkdir -p "$dir/devices" "$dir/balancers"
	cp "$LAB_SPEC" "$dir/devices/devices.cue"
	for i in $(seq 1 "$NDEV"); do
		{
			printf 'package spec\n\nbalancers: "web-%02d": {\n\ttenant: "t"\n\tprotocol: "http"\n' "$i"
			printf '\tvips: [{address: "%s", port: 80}]\n' "${VIPS[i - 1]}"
			printf '\tnodes: [{address: "%s", port: %s}]\n' "${NODES[0]%:*}" "${NODES[0]##*:}"
			printf '\tpools: {\n'
			printf '\t\ta: {nodes: [{address: "%s", port: %s}]}\n' "${NODES[0]%:*}" "${NODES[0]##*:}"
			printf '\t\tb: {nodes: [{address: "%s", port: %s}]}\n' "${NODES[1]%:*}" "${NODES[1]##*:}"
			printf '\t}\n\tplacement: device: "%s"\n\thosts: {\n' "${DEVS[i - 1]}"
			awk -v n="$HOSTS" -v m="$MOVED" -v v="$variant" -v b="$i" 'BEGIN {
				for (k = 0; k < n; k++) printf "\t\t\"h%d.b%d.example.com\": \"%s\"\n", k, b, (v == "b" && k < m) ? "b" : "a"
			}'
			printf '\t}\n}\n'
		} >"$dir/balancers/web-$(printf %02d "$i").cue"
	done
}
gen_spec "$work/spec-a" a
gen_spec "$work/spec-b" b
for v in a b; do
	"$LBC" compile "$work/spec-$v" -o "$work/out-$v" >"$work/logs/compile-$v.log" 2>&1 ||
		{ log "maps: lbc compile spec-$v failed:"; cat "$work/logs/compile-$v.log" >&2; exit 1; }
done
other() { [ "$1" = a ] && echo b || echo a; }

# node_of V: the node name that answers for a moved host in variant V.
node_of() { [ "$1" = b ] && echo n2 || echo n1; }

# verify TOOL V: every device has out-V's host table; the running map of
# the first, middle and last device holds HOSTS entries with V's pool for
# host 0; requests for host 0 (moved) and host MOVED (never moved) through
# those devices' VIPs reach the right node.
verify() {
	local tool=$1 v=$2 bad=0 name cfg i was=$failed
	failed=0
	for i in $(seq 1 "$NDEV"); do
		name=${DEVS[i - 1]}
		cfg=$(awk -F'\t' -v d="$name" '$1 == d { print $3 }' "$work/devices.tsv")
		cmp -s "$(dirname "$cfg")/lbc-hosts-web-$(printf %02d "$i").map" "$work/out-$v/$name/lbc-hosts-web-$(printf %02d "$i").map" || bad=$((bad + 1))
	done
	[ $bad = 0 ] || fail "$tool: $bad of $NDEV devices do not have the expected host table (spec-$v)"
	for i in 1 $((NDEV / 2 + 1)) "$NDEV"; do
		local dev=${DEVS[i - 1]} cfg map got body want
		cfg=$(awk -F'\t' -v d="$dev" '$1 == d { print $3 }' "$work/devices.tsv")
		map=$(dirname "$cfg")/lbc-hosts-web-$(printf %02d "$i").map
		want="be_web-$(printf %02d "$i"):$( [ "$v" = b ] && echo b || echo a)"
		got=$(echo "@1 show map $map" | socat -t 5 stdio "UNIX-CONNECT:$labdir/$dev/state/master.sock" |
			awk -v h="h0.b$i.example.com" '$2 != "" { n++ } $2 == h { v = $3 } END { print n + 0, v }')
		[ "$got" = "$HOSTS $want" ] || fail "$tool: $dev: running map: \"$got\", want \"$HOSTS $want\""
		body=$(curl -s --max-time 2 -H "Host: h0.b$i.example.com" "http://${VIPS[i - 1]}:80/") || true
		[ "$body" = "$(node_of "$v")" ] || fail "$tool: $dev: h0.b$i.example.com answered by \"$body\", want $(node_of "$v")"
		body=$(curl -s --max-time 2 -H "Host: h$MOVED.b$i.example.com" "http://${VIPS[i - 1]}:80/") || true
		[ "$body" = n1 ] || fail "$tool: $dev: h$MOVED.b$i.example.com answered by \"$body\", want n1"
	done
	[ $failed = 0 ] && log "maps: verified $tool (spec-$v): host tables on $NDEV devices, running maps and traffic through 3 VIPs"
	[ $was = 0 ] || failed=1
}

SSHFLAGS=(--known-hosts "$LAB_KNOWN_HOSTS" --ssh-key "$LAB_KEY" --parallelism 10)
lbc_apply() { timed "$1" "$LBC" apply "$work/spec-$2" "${SSHFLAGS[@]}" --adopt "${@:3}"; }

log "maps: lbc, first apply (spec-a, by reload)"
lbc_apply lbc-first a --reload || exit 1
live=a
# Pools' first health checks: give HAProxy a moment before the first check.
sleep 3
verify "lbc apply (first)" a

log "maps: $RUNS rounds: $MOVED of $HOSTS entries moved on $NDEV devices, at runtime, then back by reload"
rt=() rl=() w_rt=() w_rl=()
for r in $(seq 1 "$RUNS"); do
	v=$(other $live)
	p0=$(worker_pids)
	lbc_apply lbc-runtime "$v" && rt+=("$R")
	w_rt+=("$(new_workers "$p0" "$(worker_pids)")")
	n=$(grep -c "at runtime, no reload" "$work/logs/lbc-runtime.${nrun[lbc-runtime]}.log" || true)
	[ "$n" = "$NDEV" ] || fail "lbc apply (runtime): $n of $NDEV devices applied at runtime"
	live=$v
	verify "lbc apply (runtime)" $live
	v=$(other $live)
	p0=$(worker_pids)
	lbc_apply lbc-reload "$v" --reload && rl+=("$R")
	w_rl+=("$(new_workers "$p0" "$(worker_pids)")")
	live=$v
	verify "lbc apply --reload" $live
done

idle_background 2
echo "== maps: $MOVED of $HOSTS host-table entries moved on each of $NDEV lab devices; medians of $RUNS interleaved rounds; $(nproc) CPUs"
runtime_vs_reload "lbc apply (runtime: prepare/add/commit map)" "lbc apply --reload (the same change by reload)"
exit $failed
