#!/usr/bin/env bash
# Section "apply": lbc apply across 50 lab devices, side by side in one run
# with an Ansible playbook doing the same work (template + validate + reload,
# forks=10) and with the floor, a bare parallel OpenSSH loop doing the same
# steps without any safety, run with OpenSSH's default key exchange and with
# the one lbc negotiates (the ratios use the latter); without a change, the
# loop reads each config and compares it. Targets (DESIGN.md): lbc at least
# 10x faster than Ansible and within 1.5x of the floor.
#
# After every tool the bench checks that the work was really done: every
# device's config file is the expected one, the running HAProxy serves the
# expected server weights, and HTTP requests through a few VIPs reach the
# balancer's own nodes.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/labapply.sh"

LAB=${BENCH_APPLY_LAB:-bapl}            # lab name (namespaces bapl-d1.., bridge lbcbapl)
INDEX=${BENCH_APPLY_INDEX:-21}          # lab subnet index: 198.18.42.0/23
NDEV=${BENCH_APPLY_DEVICES:-50}
NNODE=6
NBAL=${BENCH_APPLY_BALANCERS:-100}      # pinned round-robin: every device gets NBAL/NDEV
NTEN=5                                  # tenant directories
ARUNS=${BENCH_ANSIBLE_RUNS:-$RUNS}      # measured Ansible runs per case (RUNS by default)
LBC=$BIN/lbc
HERE=$ROOT/bench

need_time
if ! command -v ansible-playbook >/dev/null; then
	log "installing ansible-core"
	apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q ansible-core >&2
fi
lab_needs apply

# close_masters: ends Ansible's SSH control masters (ControlPersist).
close_masters() {
	local s
	for s in "$work"/cp/*; do
		[ -S "$s" ] && ssh -F /dev/null -o ControlPath="$s" -O exit x >/dev/null 2>&1
	done
	return 0
}
lab_cleanup_extra() { close_masters; }
LAB_KEEP=(inventory.yml)
lab_start apply "$NNODE" "$NBAL"
mkdir -p "$work/cp"

# Balancer i (1-based): VIP i port 80, pinned to device (i-1)%NDEV, nodes
# i-1, i, i+1 (mod NNODE) with weights 10 20 30; variant b changes the first
# weight to 11, so every balancer, and so every device, changes.
bal_nodes() { local i=$1; echo $(((i - 1) % NNODE)) $((i % NNODE)) $(((i + 1) % NNODE)); }
gen_spec() {
	local dir=$1 variant=$2 i t n w0
	mkdir -p "$dir/devices"
	cp "$LAB_SPEC" "$dir/devices/devices.cue"
	w0=10
	if [ "$variant" = b ]; then w0=11; fi
	for t in $(seq 1 $NTEN); do
		mkdir -p "$dir/balancers/t$t"
		printf 'package spec\n' >"$dir/balancers/t$t/balancers.cue"
	done
	for i in $(seq 1 "$NBAL"); do
		t=$(((i - 1) % NTEN + 1))
		read -r a b c <<<"$(bal_nodes "$i")"
		{
			printf '\nbalancers: "svc-%03d": {\n\ttenant: "t%d"\n' "$i" "$t"
			if [ $((i % 4)) = 0 ]; then
				printf '\tprotocol: "tcp"\n\talgorithm: "leastconn"\n'
				printf '\thealthMonitor: {type: "tcp", interval: "2s", timeout: "1s", rise: 2, fall: 3}\n'
			else
				printf '\tprotocol: "http"\n\talgorithm: "roundrobin"\n'
				printf '\thealthMonitor: {type: "http", path: "/", expect: 200, interval: "2s", timeout: "1s", rise: 2, fall: 3}\n'
			fi
			printf '\tvips: [{address: "%s", port: 80}]\n\tnodes: [\n' "${VIPS[i - 1]}"
			n=0
			for w in $a:$w0 $b:20 $c:30; do
				printf '\t\t{address: "%s", port: %s, weight: %s},\n' "${NODES[${w%%:*}]%:*}" "${NODES[${w%%:*}]##*:}" "${w##*:}"
			done
			printf '\t]\n\tplacement: device: "%s"\n}\n' "${DEVS[(i - 1) % NDEV]}"
		} >>"$dir/balancers/t$t/balancers.cue"
	done
}
gen_spec "$work/spec-a" a
gen_spec "$work/spec-b" b
for v in a b; do
	"$LBC" compile "$work/spec-$v" -o "$work/out-$v" >"$work/logs/compile-$v.log" 2>&1 ||
		{ log "apply: lbc compile spec-$v failed:"; cat "$work/logs/compile-$v.log" >&2; exit 1; }
	for d in "${DEVS[@]}"; do
		[ -s "$work/out-$v/$d/haproxy.cfg" ] || { log "apply: lbc compile put no config on $d"; exit 1; }
	done
done
other() { [ "$1" = a ] && echo b || echo a; }

failed=0
fail() { log "apply: FAILED: $*"; failed=1; }

# running_weights DEVICE: "backend server weight" lines of the running
# HAProxy (stats of the first worker, through the master socket): the rows
# of type 2 (servers), not frontends, backends or listeners.
running_weights() {
	echo "@1 show stat" | socat -t 5 stdio "UNIX-CONNECT:$labdir/$1/state/master.sock" |
		awk -F, '!/^#/ && NF > 32 && $33 == 2 { print $1, $2, $19 }' | sort
}
# rendered_weights FILE: the same lines from a rendered haproxy.cfg.
rendered_weights() {
	awk '
	$1 == "backend" || $1 == "frontend" || $1 == "listen" || $1 == "defaults" || $1 == "global" { px = ($1 == "backend" || $1 == "listen") ? $2 : "" }
	px != "" && $1 == "server" { w = 1; for (i = 3; i < NF; i++) if ($i == "weight") w = $(i+1); print px, $2, w }
	' "$1" | sort
}

# verify TOOL V: every device runs out-V, and traffic through VIPs of the
# first, middle and last balancer reaches that balancer's nodes.
verify() {
	local tool=$1 v=$2 bad=0 name addr cfg reload i was=$failed
	failed=0
	while IFS=$'\t' read -r name addr cfg reload; do
		cmp -s "$cfg" "$work/out-$v/$name/haproxy.cfg" || bad=$((bad + 1))
	done <"$work/devices.tsv"
	[ $bad = 0 ] || fail "$tool: $bad of $NDEV devices do not have the expected haproxy.cfg (spec-$v)"
	for i in 1 $((NBAL / 2 + 1)) "$NBAL"; do
		local dev=${DEVS[(i - 1) % NDEV]} want got body
		want=$(rendered_weights "$work/out-$v/$dev/haproxy.cfg")
		# The floor's and Ansible's reloads are a signal: give HAProxy up
		# to 5 s to start the new worker.
		for _ in $(seq 1 25); do
			got=$(running_weights "$dev") || true
			[ "$want" = "$got" ] && break
			sleep 0.2
		done
		if [ -z "$want" ] || [ "$want" != "$got" ]; then
			fail "$tool: $dev: running server weights differ from out-$v/$dev/haproxy.cfg:"$'\n'"  want: ${want//$'\n'/; }"$'\n'"  got:  ${got//$'\n'/; }"
		fi
		read -r a b c <<<"$(bal_nodes "$i")"
		for _ in 1 2 3; do
			body=$(curl -s --max-time 2 "http://${VIPS[i - 1]}:80/") || { fail "$tool: GET http://${VIPS[i - 1]}/ (svc-$(printf %03d "$i") on $dev): curl exit $?"; break; }
			case " n$((a + 1)) n$((b + 1)) n$((c + 1)) " in
			*" $body "*) ;;
			*) fail "$tool: GET http://${VIPS[i - 1]}/: answered by \"$body\", not one of n$((a + 1)) n$((b + 1)) n$((c + 1))"; break ;;
			esac
		done
	done
	[ $failed = 0 ] && log "apply: verified $tool (spec-$v): configs on $NDEV devices, running weights and traffic through 3 VIPs"
	[ $was = 0 ] || failed=1
}

SSHFLAGS=(--known-hosts "$LAB_KNOWN_HOSTS" --ssh-key "$LAB_KEY" --parallelism 10)
# --adopt: the lab's hosts start with a haproxy.cfg lbc did not write.
lbc_apply() { timed "$1" "$LBC" apply "$work/spec-$2" "${SSHFLAGS[@]}" --adopt; }
# lbc_reload NAME V: lbc apply --reload (today's path before runtime apply).
lbc_reload() { timed "$1" "$LBC" apply "$work/spec-$2" "${SSHFLAGS[@]}" --adopt --reload; }

# --- idle background ------------------------------------------------------
# Busy CPU of the machine while no tool runs (the lab's HAProxy health checks
# and whatever else runs here), so a reader can subtract it from the CPU
# column.
IDLE_SECS=2
idle_background "$IDLE_SECS"
log "apply: idle background: $IDLE_MS_PER_S ms of CPU per second over ${IDLE_SECS} s, of it the lab devices $IDLE_HOST_MS_PER_S ms/s"

# --- lbc, first apply --------------------------------------------------------
log "apply: lbc, first apply"
r_first=
lbc_apply lbc-first a && r_first=$R
verify "lbc apply (first)" a
live=a
lbc_live=a

# --- optional: this lbc against another build, alternating -------------
# BENCH_LBC_BASE=/path/to/an/older/lbc: RUNS pairs of applies with a
# change, the other build and this one taking turns on the same lab, so
# that the machine's drift hits both alike; prints the mean CPU per device.
ab_line=""
if [ -n "${BENCH_LBC_BASE:-}" ]; then
	log "apply: alternating with $BENCH_LBC_BASE"
	cp "$BENCH_LBC_BASE" "$work/lbc-base"
	ab_base=() ab_this=() ab_hbase=() ab_hthis=()
	for r in $(seq 1 "$RUNS"); do
		v=$(other $live)
		timed lbc-base "$work/lbc-base" apply "$work/spec-$v" "${SSHFLAGS[@]}" && ab_base+=("$C") ab_hbase+=("$H")
		live=$v
		v=$(other $live)
		lbc_apply lbc-ab "$v" && ab_this+=("$C") ab_hthis+=("$H")
		live=$v
	done
	verify "lbc apply (alternating)" $live
	lbc_live=$live
	# Machine CPU (anyone's), then host CPU (the lab devices' cgroup, "-"
	# without one).
	ab_line=$(awk -v a="${ab_base[*]}" -v b="${ab_this[*]}" -v ha="${ab_hbase[*]}" -v hb="${ab_hthis[*]}" -v d="$NDEV" 'BEGIN {
		na = split(a, x, " "); nb = split(b, y, " ")
		for (i = 1; i <= na; i++) sa += x[i]; for (i = 1; i <= nb; i++) sb += y[i]
		if (na && nb) printf "alternating %d runs each: base %.1f ms CPU/dev, this lbc %.1f ms CPU/dev (%.2f)", na, sa*1000/na/d, sb*1000/nb/d, (sb/nb)/(sa/na)
		nha = split(ha, x, " "); nhb = split(hb, y, " ")
		for (i = 1; i <= nha; i++) { if (x[i] == "-") nha = 0; sha += x[i] } for (i = 1; i <= nhb; i++) { if (y[i] == "-") nhb = 0; shb += y[i] }
		if (nha && nhb) printf "; host CPU: base %.1f ms/dev, this lbc %.1f ms/dev (%.2f)", sha*1000/nha/d, shb*1000/nhb/d, (shb/nhb)/(sha/nha)
	}')
fi

# --- how Ansible and the floor run --------------------------------------
python3 - "$work/devices.tsv" "$LAB_KEY" "$LAB_KNOWN_HOSTS" >"$work/inventory.yml" <<'EOF'
import json, sys
tsv, key, known = sys.argv[1:4]
hosts = {}
for line in open(tsv):
    name, addr, cfg, reload = line.rstrip("\n").split("\t")
    hosts[name] = {
        "ansible_host": addr, "ansible_user": "root",
        "ansible_ssh_private_key_file": key,
        "ansible_ssh_common_args": f"-o UserKnownHostsFile={known} -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes",
        "haproxy_config": cfg, "haproxy_reload": reload,
    }
json.dump({"lab": {"hosts": hosts}}, sys.stdout, indent=1)
EOF
export ANSIBLE_CONFIG=$HERE/ansible/ansible.cfg ANSIBLE_HOME=$work/ansible-home \
	ANSIBLE_LOCAL_TEMP=$work/ansible-tmp ANSIBLE_SSH_CONTROL_PATH_DIR=$work/cp NO_COLOR=1
# Every measured run starts without connections, as lbc's and the floor's
# do: the control masters of the run before (ControlPersist 60s) are closed
# first, so that each run pays its own 50 SSH connections.
playbook() {
	close_masters
	timed "$1" ansible-playbook -i "$work/inventory.yml" "$HERE/ansible/playbook.yml" -e "out_dir=$work/out-$2"
}
# recap_changed NAME: how many hosts the last run of NAME changed.
recap_changed() { grep -c ' changed=[1-9]' "$work/logs/$1.${nrun[$1]}.log" || true; }
floor() { timed "$1" bash "$HERE/floor/floor.sh" "$work/out-$2" "$LAB_KEY" "$LAB_KNOWN_HOSTS" "$work/devices.tsv"; }
# The key exchange lbc negotiates with the lab's sshd: the first of lbc's
# offers (reconcile/ssh.go: kexAlgorithms) that this OpenSSH has (client
# and lab sshd are the same install). OpenSSH's own default picks
# sntrup761x25519 on 9.2, which x/crypto/ssh does not offer; the loop runs
# both ways, and the ratios take the run with lbc's key exchange.
FAIR_KEX=${BENCH_FLOOR_KEX:-}
if [ -z "$FAIR_KEX" ]; then
	for k in mlkem768x25519-sha256 ecdh-sha2-nistp256 curve25519-sha256; do
		if ssh -Q kex | grep -qx "$k"; then FAIR_KEX=$k; break; fi
	done
fi
floor_kex() { FLOOR_KEX=$FAIR_KEX floor "$@"; }
# floor_nochange NAME V: the loop's no-change run: per device, one session
# that reads the config and compares it with V's (cmp); fails on a change.
floor_nochange() { FLOOR_KEX=$FAIR_KEX FLOOR_MODE=compare floor "$@"; }

# --- measured rounds ----------------------------------------------------------
# Every round runs each tool once with a change (each flips the lab to the
# other spec), one after another, and checks its work: the machine drifts
# by 10-15 % over the minutes a bench takes (Ansible alone took 21 to 28 s
# in runs of one afternoon), and interleaving lets the drift hit every tool
# alike instead of whichever ran in a slow minute. lbc and the floor run in
# RUNS rounds, Ansible in the first ARUNS.
log "apply: $RUNS rounds with a change (Ansible in $ARUNS)"
t_change=() a_change=() a_default=() f_runs=() fk_runs=() r_change=() w_runtime=() w_reload=()
for r in $(seq 1 "$(( RUNS > ARUNS ? RUNS : ARUNS ))"); do
	if [ "$r" -le "$RUNS" ]; then
		v=$(other $live)
		p0=$(worker_pids)
		lbc_apply lbc-change "$v" && t_change+=("$R")
		w_runtime+=("$(new_workers "$p0" "$(worker_pids)")")
		grep -q "at runtime, no reload" "$work/logs/lbc-change.${nrun[lbc-change]}.log" || fail "lbc apply (change): no device applied at runtime"
		live=$v
		lbc_live=$v
		verify "lbc apply (change)" $live
		# The same change by reload (--reload), side by side.
		v=$(other $live)
		p0=$(worker_pids)
		lbc_reload lbc-reload "$v" && r_change+=("$R")
		w_reload+=("$(new_workers "$p0" "$(worker_pids)")")
		live=$v
		lbc_live=$v
		verify "lbc apply --reload (change)" $live
	fi
	if [ "$r" -le "$ARUNS" ]; then
		v=$(other $live)
		if playbook ansible-change "$v"; then
			a_change+=("$R")
			c=$(recap_changed ansible-change)
			[ "$c" = "$NDEV" ] || fail "ansible (change): changed $c hosts, want $NDEV"
		fi
		live=$v
		verify "ansible (change)" $live
		# The playbook's ansible.cfg turns SSH pipelining on (a tuned
		# setup); the issue's setup names forks and ControlPersist only.
		# Once more with Ansible's default (pipelining off: a temporary
		# file on the host per task), so that both figures are on the
		# table.
		v=$(other $live)
		if ANSIBLE_PIPELINING=False playbook ansible-default "$v"; then
			a_default+=("$R")
			c=$(recap_changed ansible-default)
			[ "$c" = "$NDEV" ] || fail "ansible (pipelining off, change): changed $c hosts, want $NDEV"
		fi
		live=$v
		verify "ansible (pipelining off, change)" $live
	fi
	if [ "$r" -le "$RUNS" ]; then
		v=$(other $live)
		floor floor "$v" && f_runs+=("$R")
		live=$v
		verify "floor" $live
		v=$(other $live)
		floor_kex floor-kex "$v" && fk_runs+=("$R")
		live=$v
		verify "floor ($FAIR_KEX)" $live
	fi
done

# The floor and Ansible pushed the very files lbc rendered: once the hosts
# run lbc's last spec again, lbc must see nothing to do.
if [ $live != $lbc_live ]; then floor floor-restore $lbc_live || true; fi
live=$lbc_live
prc=0
"$LBC" plan "$work/spec-$lbc_live" --known-hosts "$LAB_KNOWN_HOSTS" --ssh-key "$LAB_KEY" --detailed-exitcode >"$work/logs/plan-after.log" 2>&1 || prc=$?
[ $prc = 0 ] || { fail "lbc plan after the other tools pushed lbc's own files: exit $prc, want 0 (no changes)"; tail -n 20 "$work/logs/plan-after.log" | sed 's/^/    /' >&2; }

# --- where the hosts' CPU goes ---------------------------------------------------
# One more runtime apply and one more --reload apply (not in the medians),
# each under `perf record -a -G CG_HOSTS`: cpu-clock samples of the lab
# devices' processes only, by command name, in ms per device. "haproxy
# running" is the master and the workers that run before or after (a
# reload's re-executed master and new worker included); "haproxy -c" is
# every other haproxy process: the check of the staged file.
# BENCH_APPLY_PROFILE=0 leaves it out.
prof_rows=()
PF=997
if [ "${BENCH_APPLY_PROFILE:-1}" = 1 ] && [ -n "$CG_HOSTS" ] && command -v perf >/dev/null; then
	log "apply: profiling one runtime and one --reload apply (perf record -G ${CG_HOSTS#"$CG2"/})"
	for mode in runtime reload; do
		v=$(other $live)
		masters=$(for d in "${DEVS[@]}"; do cat "$labdir/$d/state/haproxy.pid"; done)
		p0=$(worker_pids)
		extra=()
		[ $mode = reload ] && extra=(--reload)
		if ! perf record -q -o "$work/perf-$mode.data" -e cpu-clock -F $PF -a -G "${CG_HOSTS#"$CG2"/}" -- \
			"$LBC" apply "$work/spec-$v" "${SSHFLAGS[@]}" --adopt "${extra[@]}" >"$work/logs/lbc-profile-$mode.log" 2>&1; then
			fail "lbc apply (profiled, $mode) failed"
			tail -n 20 "$work/logs/lbc-profile-$mode.log" | sed 's/^/    /' >&2
			break
		fi
		p1=$(worker_pids)
		live=$v
		lbc_live=$v
		verify "lbc apply (profiled, $mode)" $live
		prof_rows+=("$(perf script -i "$work/perf-$mode.data" -F comm,pid 2>/dev/null |
			awk -v run="$masters $p0 $p1" -v f=$PF -v d="$NDEV" -v mode="$mode" '
			BEGIN { n = split(run, r, /[ \n]+/); for (i = 1; i <= n; i++) if (r[i] != "") keep[r[i]] = 1 }
			NF >= 2 { c = $1; if (c == "haproxy") c = ($2 in keep) ? "haproxy-running" : "haproxy-c"; s[c]++; all++ }
			END { printf "%s %.1f", mode, all * 1000 / f / d; for (c in s) printf " %s=%.1f", c, s[c] * 1000 / f / d; printf "\n" }')")
	done
fi

# --- rounds without a change ---------------------------------------------------
# lbc writes state.json last before these (an unmeasured apply), so that
# its runs find nothing to do; Ansible's template finds every file equal.
log "apply: $RUNS rounds without a change (Ansible in $ARUNS)"
v=$(other $live)
lbc_apply lbc-settle "$v" || true
live=$v
t_nochange=() a_nochange=() f_nochange=()
for r in $(seq 1 "$(( RUNS > ARUNS ? RUNS : ARUNS ))"); do
	if [ "$r" -le "$RUNS" ]; then
		lbc_apply lbc-nochange $live && t_nochange+=("$R")
		floor_nochange floor-nochange $live && f_nochange+=("$R")
	fi
	if [ "$r" -le "$ARUNS" ] && playbook ansible-nochange $live; then
		a_nochange+=("$R")
		c=$(recap_changed ansible-nochange)
		[ "$c" = 0 ] || fail "ansible (no change): changed $c hosts, want 0"
	fi
done
verify "lbc apply and ansible (no change)" $live

# --- table ---------------------------------------------------------------
read -r L_FIRST LC_FIRST LH_FIRST LK_FIRST < <(median_run "$r_first")
read -r L_CHANGE LC_CHANGE LH_CHANGE LK_CHANGE < <(median_run "${t_change[@]}")
read -r L_NOCHANGE LC_NOCHANGE LH_NOCHANGE LK_NOCHANGE < <(median_run "${t_nochange[@]}")
read -r R_CHANGE RC_CHANGE RH_CHANGE RK_CHANGE < <(median_run "${r_change[@]}")
read -r A_CHANGE AC_CHANGE AH_CHANGE AK_CHANGE < <(median_run "${a_change[@]}")
read -r A_NOCHANGE AC_NOCHANGE AH_NOCHANGE AK_NOCHANGE < <(median_run "${a_nochange[@]}")
read -r A_DEFAULT AC_DEFAULT AH_DEFAULT AK_DEFAULT < <(median_run "${a_default[@]}")
read -r F FC FH FK_ < <(median_run "${f_runs[@]}")
read -r FK FKC FKH FKK < <(median_run "${fk_runs[@]}")
read -r FN FNC FNH FNK < <(median_run "${f_nochange[@]}")
echo "== apply: $NDEV lab devices, $NBAL balancers ($((NBAL / NDEV)) a device), $NNODE nodes; medians of $RUNS interleaved rounds (Ansible: $ARUNS); $(nproc) CPUs"
cpu_columns
cpu_header
cpu_row "lbc apply, first (configs + $NBAL VIPs added)" "$L_FIRST" "$LC_FIRST" "$LH_FIRST" "$LK_FIRST"
cpu_row "lbc apply, one weight changed in every balancer" "$L_CHANGE" "$LC_CHANGE" "$LH_CHANGE" "$LK_CHANGE"
cpu_row "lbc apply --reload, the same change by reload" "$R_CHANGE" "$RC_CHANGE" "$RH_CHANGE" "$RK_CHANGE"
cpu_row "lbc apply, no change" "$L_NOCHANGE" "$LC_NOCHANGE" "$LH_NOCHANGE" "$LK_NOCHANGE"
cpu_row "ansible-playbook, template+validate+reload, change" "$A_CHANGE" "$AC_CHANGE" "$AH_CHANGE" "$AK_CHANGE"
cpu_row "ansible-playbook, no change" "$A_NOCHANGE" "$AC_NOCHANGE" "$AH_NOCHANGE" "$AK_NOCHANGE"
cpu_row "ansible-playbook, change, pipelining off (Ansible default)" "$A_DEFAULT" "$AC_DEFAULT" "$AH_DEFAULT" "$AK_DEFAULT"
cpu_row "floor: ssh cat>tmp, haproxy -c, mv, reload (xargs -P 10)" "$F" "$FC" "$FH" "$FK_"
cpu_row "floor, as above, -o KexAlgorithms=$FAIR_KEX (lbc's)" "$FK" "$FKC" "$FKH" "$FKK"
cpu_row "floor, no change: ssh cmp CONFIG - ($FAIR_KEX)" "$FN" "$FNC" "$FNH" "$FNK"
cpu_ratio "ansible / lbc, change" "$A_CHANGE" "$L_CHANGE" ">=" 10
cpu_ratio "ansible / lbc, no change" "$A_NOCHANGE" "$L_NOCHANGE" ">=" 10
cpu_ratio "ansible (pipelining off) / lbc, change" "$A_DEFAULT" "$L_CHANGE" ">=" 10
cpu_ratio "lbc --reload / lbc (runtime), change, wall" "$R_CHANGE" "$L_CHANGE" ">=" 2
cpu_ratio "lbc (runtime) / lbc --reload, change, host CPU" "$LH_CHANGE" "$RH_CHANGE" "<=" 0.333
cpu_ratio "lbc (runtime) / lbc --reload, change, controller CPU" "$LK_CHANGE" "$RK_CHANGE" "<=" 1
cpu_ratio "lbc (runtime) / lbc --reload, change, machine CPU" "$LC_CHANGE" "$RC_CHANGE" "<=" 0.333
echo "devices whose HAProxy worker changed, per round: runtime $(printf '%s ' "${w_runtime[@]}")(target 0) | --reload $(printf '%s ' "${w_reload[@]}")(of $NDEV)"
cpu_ratio "lbc / floor ($FAIR_KEX), change" "$L_CHANGE" "$FK" "<=" 1.5
cpu_ratio "lbc / floor ($FAIR_KEX), no change" "$L_NOCHANGE" "$FN" "<=" 1.5
cpu_ratio "lbc / floor (OpenSSH's default kex), change" "$L_CHANGE" "$F" "<=" 1.5
echo "every round's wall (s): lbc $(walls "${t_change[@]}")| ansible $(walls "${a_change[@]}")| ansible, pipelining off $(walls "${a_default[@]}")| floor $(walls "${f_runs[@]}")| floor, $FAIR_KEX $(walls "${fk_runs[@]}")"
echo "no change, every round's wall (s): lbc $(walls "${t_nochange[@]}")| ansible $(walls "${a_nochange[@]}")| floor $(walls "${f_nochange[@]}")"
# The ratio within each round (the runs of one round are minutes apart at
# most), for the spread behind the medians.
echo "ansible / lbc, change, round by round: $(awk -v l="$(walls "${t_change[@]}")" -v a="$(walls "${a_change[@]}")" 'BEGIN {
	n = split(l, x, " "); m = split(a, y, " ")
	for (i = 1; i <= n && i <= m; i++) printf "%.2f ", y[i] / x[i]
}')"
[ -z "$ab_line" ] || echo "$ab_line"
for p in "${prof_rows[@]}"; do
	# "MODE TOTAL comm=ms...": the commands by CPU, largest first.
	read -r mode total rest <<<"$p"
	echo "host CPU by command, one $mode apply (perf, ms/device, total $total): $(tr ' ' '\n' <<<"$rest" | sort -t= -k2,2gr | tr '\n' ' ')"
done
echo "checked after each tool: haproxy.cfg on all $NDEV devices, running weights (master CLI) and HTTP through 3 VIPs; lbc plan after the floor: exit $prc"
exit $failed
