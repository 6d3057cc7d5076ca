#!/usr/bin/env bash
# Counts the processes an `lbc apply DIR` starts on a changed host: a lab
# of one device, one balancer applied, then one server weight changed and
# applied with strace following the device's sshd (every process of the
# apply on the host descends from it). Prints each program run and how
# many times, then the total, for RUNS applies (default 3). Needs root and
# strace; not part of `make bench` (a single device, no peer to compare).
#
#   bash bench/procs.sh [LBC]     # LBC: the binary to measure (default bin/lbc)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LBC=${1:-$ROOT/bin/lbc}
RUNS=${RUNS:-3}
LAB=${PROCS_LAB:-procs} INDEX=${PROCS_INDEX:-23}
[ "$(id -u)" = 0 ] || { echo "procs: needs root (the lab)" >&2; exit 1; }
command -v strace >/dev/null || { echo "procs: needs strace" >&2; exit 1; }
work=$(mktemp -d /tmp/lbc-procs.XXXXXX)
cleanup() { set +e; [ -x "$work/labctl" ] && "$work/labctl" down -name "$LAB" -dir "$work/lab" >&2; rm -rf "$work"; }
trap cleanup EXIT
(cd "$ROOT" && go build -o "$work/labctl" ./internal/testkit/lab/labctl)
"$work/labctl" up -name "$LAB" -index "$INDEX" -devices 1 -nodes 2 -vips 1 -dir "$work/lab" >"$work/lab.env"
source "$work/lab.env"
read -ra NODES <<<"$LAB_NODES"
mkdir -p "$work/specs/devices" "$work/specs/balancers"
cp "$LAB_SPEC" "$work/specs/devices/devices.cue"
spec() {
	cat >"$work/specs/balancers/web.cue" <<EOT
package spec

balancers: "web": {
	protocol:  "http"
	algorithm: "roundrobin"
	vips: [{address: "$LAB_VIPS", port: 80}]
	nodes: [{address: "${NODES[0]%:*}", port: ${NODES[0]##*:}, weight: $1}, {address: "${NODES[1]%:*}", port: ${NODES[1]##*:}}]
	healthMonitor: {type: "http", path: "/", expect: 200}
}
EOT
}
SSH=(--known-hosts "$LAB_KNOWN_HOSTS" --ssh-key "$LAB_KEY")
spec 3
# The lab's own first config is not lbc's: the first apply adopts it.
"$LBC" apply "$work/specs" "${SSH[@]}" --adopt >/dev/null
# The device's sshd: the one process of the namespace named sshd whose
# parent is not an sshd.
sshd=
for p in $(ip netns pids "$LAB_NAME-d1"); do
	[ "$(cat /proc/$p/comm 2>/dev/null)" = sshd ] || continue
	pp=$(awk '{print $4}' "/proc/$p/stat")
	[ "$(cat /proc/$pp/comm 2>/dev/null)" = sshd ] || sshd=$p
done
[ -n "$sshd" ] || { echo "procs: no sshd in $LAB_NAME-d1" >&2; exit 1; }
for run in $(seq 1 "$RUNS"); do
	spec $((3 + run))
	strace -f -qq -e trace=execve,fork,vfork,clone,clone3 -e signal=none -o "$work/trace" -p "$sshd" &
	st=$!
	sleep 0.5
	"$LBC" apply "$work/specs" "${SSH[@]}" >/dev/null
	sleep 0.5
	kill -INT $st; wait $st || true
	echo "== run $run: programs started on the host (execve), by name"
	grep -E 'execve\(' "$work/trace" | grep -v ' = -1 ' | sed -E 's/.*execve\("([^"]*)".*/\1/' | xargs -n1 basename | sort | uniq -c | sort -rn
	echo "total: $(grep -E 'execve\(' "$work/trace" | grep -vc ' = -1 ')"
	# A fork: a clone that makes a process, not a thread.
	echo "forks: $(grep -E '(clone3?|v?fork)\(' "$work/trace" | grep -v CLONE_THREAD | grep -v ' = -1 ' | grep -vc resumed)"
done
