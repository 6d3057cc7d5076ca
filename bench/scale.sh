#!/usr/bin/env bash
# Section "scale": the controller's own cost as the fleet grows. Plan and
# apply of a one-weight change on every host of a simulated fleet of 100,
# 300, 1,000 and 3,000 hosts (internal/testkit/fleetsim: in-process SSH
# servers on loopback, one a host, each host a directory; the commands lbc
# sends run in the real sh; HAProxy's check is `test -s` and its reload a
# small sh+awk stand-in, so a host costs less than a real one, and the
# controller's share is what this measures). Targets (issue 17): plan of
# 1,000 hosts <= 20 s, apply <= 60 s, controller memory <= 300 MB at 1,000,
# per-host controller CPU at 3,000 within 1.2x of that at 100.
#
# Per size: start the fleet (simctl), a first apply of every host (not
# measured), change the weight of one node of every balancer, then under
# GNU time `lbc plan --detailed-exitcode` (wall, user+sys CPU, peak RSS of
# the lbc process alone; the simulated hosts run in simctl and their
# shells), then `lbc apply`. simctl counts the SSH connections open at once.
# After the apply every host's haproxy.cfg must carry the new weight.
# BENCH_SCALE_SWEEP (e.g. "5 10 20 40") then applies one more weight change
# per value with that --parallelism, BENCH_SCALE_SWEEP_ROUNDS times in
# turn, and prints them in a second table.
# Bounded: every lbc run is stopped after BENCH_SCALE_TIMEOUT seconds (1800),
# the simulator after 60 s once its stdin is closed; everything is stopped
# and the work directory removed on exit.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SIZES=${BENCH_SCALE_SIZES:-100 300 1000 3000}
PAR=${BENCH_SCALE_PARALLELISM:-}   # --parallelism for plan and apply; lbc's default when empty
SWEEP=${BENCH_SCALE_SWEEP:-}       # --parallelism values of the extra applies (none when empty)
SWEEP_ROUNDS=${BENCH_SCALE_SWEEP_ROUNDS:-1}
LIMIT=${BENCH_SCALE_TIMEOUT:-1800} # seconds an lbc run may take

need_time
if ! build_lbc; then
	echo "== scale: not available (lbc does not build)"
	exit 0
fi
command -v flock >/dev/null || { echo "== scale: not available (flock, util-linux, is missing)"; exit 0; }
LBC=$BIN/lbc
work=$(mktemp -d /tmp/lbc-bench-scale.XXXXXX)
sim_pid=
cleanup() {
	set +e
	exec 3>&- 2>/dev/null
	[ -n "$sim_pid" ] && { kill "$sim_pid" 2>/dev/null; stop_sim; }
	rm -rf "$work"
}
trap cleanup EXIT
(cd "$ROOT" && go build -o "$work/simctl" ./internal/testkit/fleetsim/simctl) || { echo "== scale: not available (simctl does not build)"; exit 0; }
par=()
[ -n "$PAR" ] && par=(--parallelism "$PAR")

# stop_sim: waits up to 60 s for the simulator to end (its stdin closed or
# signalled), then kills it.
stop_sim() {
	local i
	for i in $(seq 600); do kill -0 "$sim_pid" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$sim_pid" 2>/dev/null || true
	wait "$sim_pid" 2>/dev/null || true
	sim_pid=
}
# timed OUT CMD...: runs CMD under GNU time, stopped after $LIMIT seconds
# (exit 124); OUT gets "wall user sys maxrss_kb exit".
timed() {
	local out=$1; shift
	local rc=0
	/usr/bin/time -f '%e %U %S %M' -o "$out.t" timeout -k 10 "$LIMIT" "$@" >"$out.log" 2>&1 || rc=$?
	printf '%s %s\n' "$(tail -1 "$out.t")" "$rc" >"$out"
}
# calc EXPR: floating point arithmetic (awk).
calc() { awk "BEGIN { print $* }"; }
# peak: the most SSH connections open at once since the last call.
peak() {
	rm -f "$d/stats.json"
	kill -USR1 "$sim_pid"
	local i
	for i in $(seq 100); do [ -s "$d/stats.json" ] && break; sleep 0.05; done
	sed -n 's/.*"PeakConnections":\([0-9]*\).*/\1/p' "$d/stats.json"
}

printf '%-6s | %-40s | %-40s\n' "" "plan (one weight changed on every host)" "apply (the same change)"
printf '%-6s | %7s %7s %8s %6s %7s | %7s %7s %8s %6s %7s\n' hosts "wall s" "cpu s" "cpu/host" "MB" "conns" "wall s" "cpu s" "cpu/host" "MB" "conns"
first_cpu=; last_cpu=
for n in $SIZES; do
	d=$work/fleet-$n
	mkfifo "$work/stdin-$n"
	"$work/simctl" -n "$n" -dir "$d" <"$work/stdin-$n" >"$work/simctl-$n.log" 2>&1 &
	sim_pid=$!
	exec 3>"$work/stdin-$n"
	for i in $(seq 600); do grep -q '^ready$' "$work/simctl-$n.log" 2>/dev/null && break; sleep 0.1; done
	grep -q '^ready$' "$work/simctl-$n.log" || { log "scale: simctl -n $n did not start: $(head -3 "$work/simctl-$n.log")"; exit 1; }
	flags=(--known-hosts "$d/known_hosts" --ssh-key "$d/id_ed25519" "${par[@]}")
	timed "$work/init-$n" "$LBC" apply "${flags[@]}" "$d/specs"
	read -r iw _ _ _ irc <"$work/init-$n"
	[ "$irc" = 0 ] || { log "scale: first apply to $n hosts failed (exit $irc): $(tail -3 "$work/init-$n.log")"; exit 1; }
	log "scale: $n hosts: first apply ${iw}s"
	sed -i 's/weight: 1}/weight: 2}/' "$d/specs/balancers/sim.cue"
	peak >/dev/null
	timed "$work/plan-$n" "$LBC" plan --detailed-exitcode "${flags[@]}" "$d/specs"
	pconns=$(peak)
	# --reload: the simulated stats socket answers show info and show
	# servers state only (no runtime operations); this section measures
	# the controller's cost of the reload transaction, as before.
	timed "$work/apply-$n" "$LBC" apply --reload "${flags[@]}" "$d/specs"
	aconns=$(peak)
	read -r pw pu ps pm prc <"$work/plan-$n"
	read -r aw au as am arc <"$work/apply-$n"
	[ "$prc" = 2 ] || { log "scale: plan of $n hosts: exit $prc, want 2: $(tail -3 "$work/plan-$n.log")"; exit 1; }
	[ "$arc" = 0 ] || { log "scale: apply to $n hosts: exit $arc: $(tail -3 "$work/apply-$n.log")"; exit 1; }
	done_hosts=$(grep -l ' weight 2 check$' "$d"/h*/haproxy.cfg | wc -l)
	[ "$done_hosts" = "$n" ] || { log "scale: only $done_hosts of $n hosts run the new weight"; exit 1; }
	pc=$(calc "$pu + $ps"); ac=$(calc "$au + $as")
	printf '%-6s | %7.2f %7.2f %6.2fms %6.0f %7s | %7.2f %7.2f %6.2fms %6.0f %7s\n' "$n" \
		"$pw" "$pc" "$(calc "1000 * $pc / $n")" "$(calc "$pm / 1024")" "$pconns" \
		"$aw" "$ac" "$(calc "1000 * $ac / $n")" "$(calc "$am / 1024")" "$aconns"
	[ -z "$first_cpu" ] && first_cpu=$(calc "$ac / $n") first_plan_cpu=$(calc "$pc / $n") first_n=$n
	last_plan_cpu=$(calc "$pc / $n")
	last_cpu=$(calc "$ac / $n") last_n=$n
	# The sweep: one more weight change a value of BENCH_SCALE_SWEEP.
	w=2
	for r in $(seq "$SWEEP_ROUNDS"); do
		for sp in $SWEEP; do
			sed -i "s/weight: $w}/weight: $((w + 1))}/" "$d/specs/balancers/sim.cue"
			w=$((w + 1))
			peak >/dev/null
			timed "$work/sweep" "$LBC" apply --reload --known-hosts "$d/known_hosts" --ssh-key "$d/id_ed25519" --parallelism "$sp" "$d/specs"
			sconns=$(peak)
			read -r sw su ss sm src <"$work/sweep"
			[ "$src" = 0 ] || { log "scale: apply to $n hosts with --parallelism $sp: exit $src: $(tail -3 "$work/sweep.log")"; exit 1; }
			done_hosts=$(grep -l " weight $w check\$" "$d"/h*/haproxy.cfg | wc -l)
			[ "$done_hosts" = "$n" ] || { log "scale: only $done_hosts of $n hosts run weight $w"; exit 1; }
			sc=$(calc "$su + $ss")
			printf '%-6s %11s | %7.2f %7.2f %6.2fms %6.0f %7s %s\n' "$n" "$sp" "$sw" "$sc" "$(calc "1000 * $sc / $n")" \
				"$(calc "$sm / 1024")" "$sconns" "$(cut -d' ' -f1 /proc/loadavg)" >>"$work/sweep.rows"
		done
	done
	exec 3>&-
	stop_sim
	rm -rf "$d"
done
printf 'apply CPU per host at %s hosts / at %s: %.2f (target <= 1.2)\n' "$last_n" "$first_n" "$(calc "$last_cpu / $first_cpu")"
printf 'plan CPU per host at %s hosts / at %s: %.2f\n' "$last_n" "$first_n" "$(calc "$last_plan_cpu / $first_plan_cpu")"
printf 'parallelism: %s; MB: peak RSS of the lbc process; conns: most SSH connections open at once (simctl)\n' "${PAR:-lbc default}"
if [ -s "$work/sweep.rows" ]; then
	echo
	printf '%-6s %11s | %-48s\n' "" "" "apply of a weight change with --parallelism P"
	printf '%-6s %11s | %7s %7s %8s %6s %7s %s\n' hosts parallelism "wall s" "cpu s" "cpu/host" "MB" "conns" "load"
	cat "$work/sweep.rows"
fi
