# Helpers of the bench sections that apply to a lab (apply.sh, maps.sh,
# tls.sh): timed runs, machine-wide CPU and the cgroup v2 host/controller
# split, medians, table rows, HAProxy worker pids. Source it
# after lib.sh; the functions use the section's $work (logs/, devices.tsv:
# NAME ADDRESS CONFIG RELOAD per device), $labdir and fail.

# busy_jiffies: machine-wide busy CPU time so far, in clock ticks, from
# /proc/stat (user+nice+system+irq+softirq of all CPUs). It counts every
# process: the controller, the lab's sshd and haproxy, and anyone else.
CLK_TCK=$(getconf CLK_TCK)
busy_jiffies() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8; exit }' /proc/stat; }
# cpu_secs BEFORE AFTER: busy CPU seconds between two busy_jiffies readings.
cpu_secs() { awk -v a="$1" -v b="$2" -v hz="$CLK_TCK" 'BEGIN { printf "%.3f", (b - a) * 1000 / hz / 1000 }'; }

# CPU accounting, hosts apart from the controller (cgroup v2): lab_cgroups
# LAB makes two groups; lab_cg_hosts DEVICE... moves every process of the
# lab's devices (each one's sshd and whatever its sessions run: shells,
# haproxy -c, nc, awk; its haproxy master and workers) into CG_HOSTS, and
# timed runs every measured tool (lbc; ansible-playbook with its ssh clients
# and control masters; the floor's ssh clients) in CG_CTL. A process's
# children stay in its group, so a group's cpu.stat usage_usec counts all
# of them. The lab's backend nodes are in neither. Without a writable
# cgroup v2 hierarchy both stay empty and the columns say "-".
CG2= CG_HOSTS= CG_CTL=
IN_CTL=() # the words that run a command in CG_CTL (none without it)
lab_cgroups() {
	CG2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
	if [ -n "$CG2" ] && [ -w "$CG2" ] && mkdir -p "$CG2/lbc-bench-$1-hosts" "$CG2/lbc-bench-$1-ctl" 2>/dev/null; then
		CG_HOSTS=$CG2/lbc-bench-$1-hosts
		CG_CTL=$CG2/lbc-bench-$1-ctl
		IN_CTL=(sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$CG_CTL")
	else
		log "$1: no writable cgroup v2 hierarchy: host and controller CPU are not measured"
	fi
}
# lab_cg_hosts DEVICE...: moves the processes of the devices' network
# namespaces into CG_HOSTS.
lab_cg_hosts() {
	[ -n "$CG_HOSTS" ] || return 0
	local d p
	for d in "$@"; do
		for p in $(ip netns pids "$d"); do echo "$p" >"$CG_HOSTS/cgroup.procs" 2>/dev/null || true; done
	done
	log "$(wc -l <"$CG_HOSTS/cgroup.procs") lab device processes (sshd, haproxy) in $CG_HOSTS"
}
# cg_usage GROUP: its CPU time so far in microseconds ("-" without it).
cg_usage() { if [ -n "$1" ]; then awk '$1 == "usage_usec" { print $2 }' "$1/cpu.stat"; else echo -; fi; }
# cg_remove: removes both groups (their processes are gone by then).
cg_remove() {
	local g
	for g in "$CG_HOSTS" "$CG_CTL"; do [ -n "$g" ] && [ -d "$g" ] && rmdir "$g" 2>/dev/null; done
	return 0
}
# usec_secs BEFORE AFTER: seconds between two cg_usage readings ("-"
# without them).
usec_secs() { if [ "$1" = - ]; then echo -; else awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b - a) / 1e6 }'; fi; }

# timed NAME CMD... runs CMD once under GNU time, in CG_CTL, output to
# logs/NAME.N.log, and sets T to its wall seconds, C to the machine-wide
# busy CPU seconds during the run, H to the CPU seconds of the lab's
# devices (CG_HOSTS) and K to the controller's (CG_CTL); on failure it
# shows the tail of the output and returns non-zero. (Not in $(...): it
# records failures globally.) R is "T:C:H:K" for median_run.
declare -A nrun
T=- C=- H=- K=- R=
timed() {
	local name=$1; shift
	nrun[$name]=$((${nrun[$name]:-0} + 1))
	local logf=$work/logs/$name.${nrun[$name]}.log rc=0 j0 j1 h0 h1 k0 k1
	T=- C=- H=- K=- R=
	j0=$(busy_jiffies) h0=$(cg_usage "$CG_HOSTS") k0=$(cg_usage "$CG_CTL")
	/usr/bin/time -f '%e' -o "$logf.time" "${IN_CTL[@]}" "$@" >"$logf" 2>&1 || rc=$?
	j1=$(busy_jiffies) h1=$(cg_usage "$CG_HOSTS") k1=$(cg_usage "$CG_CTL")
	if [ $rc != 0 ]; then
		fail "$name: exit $rc: $*"
		tail -n 25 "$logf" | sed 's/^/    /' >&2
		return $rc
	fi
	T=$(tail -n 1 "$logf.time")
	C=$(cpu_secs "$j0" "$j1")
	H=$(usec_secs "$h0" "$h1")
	K=$(usec_secs "$k0" "$k1")
	R=$T:$C:$H:$K
}
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END{if (NR) print a[int((NR+1)/2)]; else print "-"}'; }
# median_run "T:C:H:K"...: "T C H K" of the run with the median wall time
# (the same run median picks), or "- - - -" when there is none.
median_run() {
	printf '%s\n' "$@" | grep . | sort -t: -k1,1g |
		awk -F: '{r[NR]=$1 " " $2 " " $3 " " $4} END{if (NR) print r[int((NR+1)/2)]; else print "- - - -"}'
}
# idle_background SECS: sets IDLE_MS_PER_S (the machine's busy CPU while no
# tool runs: the lab's HAProxy health checks and whatever else runs here)
# and IDLE_HOST_MS_PER_S (the lab devices' part of it).
idle_background() {
	local j0 j1 h0 h1
	j0=$(busy_jiffies) h0=$(cg_usage "$CG_HOSTS")
	sleep "$1"
	j1=$(busy_jiffies) h1=$(cg_usage "$CG_HOSTS")
	IDLE_MS_PER_S=$(awk -v a="$j0" -v b="$j1" -v hz="$CLK_TCK" -v s="$1" 'BEGIN { printf "%.0f", (b - a) * 1000 / hz / s }')
	IDLE_HOST_MS_PER_S=$(if [ "$h0" = - ]; then echo -; else awk -v a="$h0" -v b="$h1" -v s="$1" 'BEGIN { printf "%.1f", (b - a) / 1000 / s }'; fi)
}
# cpu_columns: what the host, ctl and machine columns of cpu_row count
# (after idle_background).
cpu_columns() {
	echo "CPU columns, per device: host = the lab devices' processes (cgroup v2: their sshd and what its sessions run, haproxy master and workers; the hosts' own background of $IDLE_HOST_MS_PER_S ms/s, health checks, included); controller = the tool's processes (cgroup v2: lbc, or ansible-playbook and its ssh, or the floor's ssh); machine = busy time of the whole machine from /proc/stat (every process, anyone else's too; idle background $IDLE_MS_PER_S ms/s)"
}
# cpu_header / cpu_row NAME WALL MACHINE-CPU HOST-CPU CONTROLLER-CPU: a
# table row, the CPU seconds of the run divided by the section's NDEV.
cpu_header() { printf '%-58s %9s %9s %9s %9s\n' "command" "time (s)" "host ms" "ctl ms" "machine"; }
cpu_row() {
	if [ "$2" = - ]; then printf '%-58s %9s\n' "$1" "failed"; return; fi
	awk -v n="$1" -v t="$2" -v c="$3" -v h="$4" -v k="$5" -v d="$NDEV" 'BEGIN {
		printf "%-58s %9.2f %9s %9s %9.1f\n", n, t,
			(h == "-") ? "-" : sprintf("%.1f", h * 1000 / d), (k == "-") ? "-" : sprintf("%.1f", k * 1000 / d), c * 1000 / d
	}'
}
# walls "T:C:H:K"...: the wall times of the runs, space-separated.
walls() { printf '%s\n' "$@" | grep . | cut -d: -f1 | tr '\n' ' '; }
# runtime_vs_reload RUNTIME-ROW RELOAD-ROW: the table of a section that
# applies the same change at runtime and by --reload, from its arrays rt
# and rl (timed's R of each run) and w_rt and w_rl (new workers per
# round): both rows, the ratios, every round's wall and the new workers.
runtime_vs_reload() {
	local RT RTC RTH RTK RL RLC RLH RLK
	read -r RT RTC RTH RTK < <(median_run "${rt[@]}")
	read -r RL RLC RLH RLK < <(median_run "${rl[@]}")
	cpu_columns
	cpu_header
	cpu_row "$1" "$RT" "$RTC" "$RTH" "$RTK"
	cpu_row "$2" "$RL" "$RLC" "$RLH" "$RLK"
	cpu_ratio "--reload / runtime, wall" "$RL" "$RT"
	cpu_ratio "runtime / --reload, host CPU" "$RTH" "$RLH"
	cpu_ratio "runtime / --reload, controller CPU" "$RTK" "$RLK"
	cpu_ratio "runtime / --reload, machine CPU" "$RTC" "$RLC"
	echo "every round's wall (s): runtime $(walls "${rt[@]}")| --reload $(walls "${rl[@]}")"
	echo "devices whose HAProxy worker changed, per round: runtime $(printf '%s ' "${w_rt[@]}")(target 0) | --reload $(printf '%s ' "${w_rl[@]}")(of $NDEV)"
}
# cpu_ratio NAME A B [TARGET-OP TARGET]: A/B, and whether it meets the target.
cpu_ratio() {
	if [ "$2" = - ] || [ "$3" = - ]; then printf '%-58s %9s\n' "$1" "-"; return; fi
	awk -v n="$1" -v a="$2" -v b="$3" -v op="${4:-}" -v t="${5:-}" 'BEGIN {
		r = (b > 0) ? a / b : 0
		if (op == "") { printf "%-58s %9.2f\n", n, r; exit }
		ok = (op == ">=") ? r >= t : r <= t
		printf "%-58s %9.2f   target %s %s: %s\n", n, r, op, t, ok ? "met" : "MISSED"
	}'
}

# worker_pids: every device's HAProxy worker pid (`show info` of the
# first worker, through the master socket), one a line, in device order.
worker_pids() {
	local name addr cfg reload
	while IFS=$'\t' read -r name addr cfg reload; do
		echo "@1 show info" | socat -t 5 stdio "UNIX-CONNECT:$labdir/$name/state/master.sock" | awk '$1 == "Pid:" { print $2 }'
	done <"$work/devices.tsv"
}
# new_workers BEFORE AFTER: how many devices run another worker now.
new_workers() { paste -d' ' <(printf '%s\n' "$1") <(printf '%s\n' "$2") | awk '$1 != $2 { n++ } END { print n + 0 }'; }

# lab_devices_tsv SPEC: NAME ADDRESS CONFIG RELOAD per device (tab-separated),
# from the lab's spec (labctl's LAB_SPEC).
lab_devices_tsv() {
	awk '
	function val(s) { sub(/^[^"]*"/, "", s); sub(/"[^"]*$/, "", s); return s }
	/^devices: "/         { name = val($0); sect = "" }
	/^\taddress: /        { addr = val($0) }
	/^\thaproxy: \{/      { sect = "haproxy" }
	/^\tkeepalived: \{/   { sect = "keepalived" }
	sect == "haproxy" && /^\t\tconfig: / { cfg = val($0) }
	sect == "haproxy" && /^\t\treload: / { rl = val($0) }
	/^}/                  { print name "\t" addr "\t" cfg "\t" rl }
	' "$1"
}

# lab_needs SECTION: installs socat and curl when missing, and ends the
# section (saying why, exit 0) when it cannot run: not root (the lab), or
# bin/lbc does not build.
lab_needs() {
	command -v socat >/dev/null || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q socat >&2; }
	command -v curl >/dev/null || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q curl >&2; }
	if [ "$(id -u)" != 0 ]; then
		echo "== $1: not available (the lab needs root)"
		exit 0
	fi
	if ! build_lbc; then
		echo "== $1: not available (lbc does not build)"
		exit 0
	fi
}

# lab_start SECTION NODES VIPS: the section's lab, torn down whatever
# happens. Makes $work (logs/, a private copy of lbc as $LBC: bin/lbc may
# be rebuilt by someone else during the run) and the cgroups, starts a lab
# of $NDEV devices named $LAB on subnet index $INDEX with NODES nodes and
# VIPS VIPs, moves the devices' processes into CG_HOSTS and writes
# devices.tsv; sets labdir, DEVS, NODES, VIPS and the lab's LAB_* variables.
# The EXIT trap runs the section's lab_cleanup_extra first when it defines
# one, keeps logs/ and the files of LAB_KEEP (relative to $work) of a failed
# run, stops the lab and removes the cgroups and $work.
LAB_KEEP=()
lab_start() {
	local section=$1 nodes=$2 vips=$3
	LAB_SECTION=$section
	work=$(mktemp -d "/tmp/lbc-bench-$section.XXXXXX")
	labdir=$work/lab
	lab_cgroups "$LAB"
	trap lab_cleanup EXIT
	trap 'exit 130' INT TERM
	mkdir -p "$work/logs"
	cp "$BIN/lbc" "$work/lbc"
	LBC=$work/lbc
	(cd "$ROOT" && go build -o "$work/labctl" ./internal/testkit/lab/labctl)
	log "$section: lab $LAB up: $NDEV devices, $nodes nodes"
	"$work/labctl" up -name "$LAB" -index "$INDEX" -devices "$NDEV" -nodes "$nodes" \
		-dir "$labdir" -vips "$vips" >"$work/lab.env"
	source "$work/lab.env"
	read -ra DEVS <<<"$LAB_DEVICE_NAMES"
	read -ra NODES <<<"$LAB_NODES"
	read -ra VIPS <<<"$LAB_VIPS"
	lab_cg_hosts "${DEVS[@]}"
	lab_devices_tsv "$LAB_SPEC" >"$work/devices.tsv"
	[ "$(wc -l <"$work/devices.tsv")" = "$NDEV" ] || { log "$section: devices.tsv: want $NDEV devices"; exit 1; }
}
lab_cleanup() {
	set +e
	declare -F lab_cleanup_extra >/dev/null && lab_cleanup_extra
	[ -x "$work/labctl" ] && "$work/labctl" down -name "$LAB" -dir "$labdir" >&2 || true
	cg_remove
	if [ "${failed:-0}" != 0 ] && [ -d "$work/logs" ]; then
		local keep f
		keep=$(mktemp -d "/tmp/lbc-bench-$LAB_SECTION-logs.XXXXXX")
		cp -r "$work/logs" "$keep/" 2>/dev/null
		for f in "${LAB_KEEP[@]}"; do cp -r "$work/$f" "$keep/" 2>/dev/null; done
		log "$LAB_SECTION: logs of the failed run kept in $keep"
	fi
	rm -rf "$work"
}
