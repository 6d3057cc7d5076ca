# Helpers of the bench sections that apply to a lab (apply.sh, maps.sh):
# timed runs, machine-wide CPU, medians, HAProxy worker pids. Source it
# after lib.sh; the functions use the section's $work (logs/, devices.tsv:
# NAME ADDRESS CONFIG RELOAD per device), $labdir and fail.

# busy_jiffies: machine-wide busy CPU time so far, in clock ticks, from
# /proc/stat (user+nice+system+irq+softirq of all CPUs). It counts every
# process: the controller, the lab's sshd and haproxy, and anyone else.
CLK_TCK=$(getconf CLK_TCK)
busy_jiffies() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8; exit }' /proc/stat; }
# cpu_secs BEFORE AFTER: busy CPU seconds between two busy_jiffies readings.
cpu_secs() { awk -v a="$1" -v b="$2" -v hz="$CLK_TCK" 'BEGIN { printf "%.3f", (b - a) * 1000 / hz / 1000 }'; }

# timed NAME CMD... runs CMD once under GNU time, output to logs/NAME.N.log,
# and sets T to its wall seconds and C to the machine-wide busy CPU seconds
# during the run; on failure it shows the tail of the output and returns
# non-zero. (Not in $(...): it records failures globally.)
declare -A nrun
T=-
C=-
timed() {
	local name=$1; shift
	nrun[$name]=$((${nrun[$name]:-0} + 1))
	local logf=$work/logs/$name.${nrun[$name]}.log rc=0 j0 j1
	T=-
	C=-
	j0=$(busy_jiffies)
	/usr/bin/time -f '%e' -o "$logf.time" "$@" >"$logf" 2>&1 || rc=$?
	j1=$(busy_jiffies)
	if [ $rc != 0 ]; then
		fail "$name: exit $rc: $*"
		tail -n 25 "$logf" | sed 's/^/    /' >&2
		return $rc
	fi
	T=$(tail -n 1 "$logf.time")
	C=$(cpu_secs "$j0" "$j1")
}
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END{if (NR) print a[int((NR+1)/2)]; else print "-"}'; }
# median_run "T:C"...: "T C" of the run with the median wall time (the same
# run median picks), or "- -" when there is none.
median_run() {
	printf '%s\n' "$@" | grep . | sort -t: -k1,1g |
		awk -F: '{t[NR]=$1; c[NR]=$2} END{if (NR) print t[int((NR+1)/2)], c[int((NR+1)/2)]; else print "-", "-"}'
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
