#!/usr/bin/env bash
# Section "tls": a certificate rotation on 50 lab devices, side by side in
# one run: lbc's runtime path (the renewed bundle staged, checked, swapped,
# then set ssl cert + commit ssl cert on the stats socket, no reload)
# against the same rotation by reload (lbc apply --reload). Wall time and
# CPU per device (host, controller, whole machine), and how many devices got
# a new HAProxy worker; the CPU is split into the lab devices' own (cgroup v2: sshd, what
# its sessions run, haproxy) and the controller's, as in the apply section.
# Every run is checked: the new certificate (its serial) is served
# through the VIPs of 3 devices (openssl s_client), and an HTTPS request
# through each (curl --cacert --resolve) is answered by a node.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/labapply.sh"

LAB=${BENCH_TLS_LAB:-btls}       # lab name (namespaces btls-d1.., bridge lbcbtls)
INDEX=${BENCH_TLS_INDEX:-25}     # lab subnet index: 198.18.50.0/23
NDEV=${BENCH_TLS_DEVICES:-50}
NNODE=2
HOSTNAME_TLS=www.example.com

need_time
command -v openssl >/dev/null || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q openssl >&2; }
lab_needs tls

failed=0
fail() { log "tls: FAILED: $*"; failed=1; }
lab_start tls "$NNODE" "$NDEV"
mkdir -p "$work/certs" "$work/ca"
chmod 700 "$work/certs"

# A CA (P-256) and, per rotation, a certificate "site" for HOSTNAME_TLS with
# a new key and serial N, in the certificate source directory (site.pem,
# site.key).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj "/CN=lbc bench CA" \
	-keyout "$work/ca/ca.key" -out "$work/ca/ca.pem" 2>"$work/logs/ca.log"
new_cert() {
	local n=$1
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$HOSTNAME_TLS" \
		-keyout "$work/certs/site.key" -out "$work/ca/site.csr" 2>"$work/logs/csr.log"
	openssl x509 -req -in "$work/ca/site.csr" -CA "$work/ca/ca.pem" -CAkey "$work/ca/ca.key" -set_serial "$n" -days 30 \
		-extfile <(printf 'subjectAltName=DNS:%s\n' "$HOSTNAME_TLS") -out "$work/certs/site.pem" 2>"$work/logs/x509.log"
	chmod 600 "$work/certs/site.key"
	SERIAL=$(openssl x509 -in "$work/certs/site.pem" -noout -serial | sed 's/^serial=//')
}

# The spec: the lab's devices, balancer i on VIP i port 443 with TLS
# (certificate "site"), pinned to device i, both nodes.
mkdir -p "$work/spec/devices" "$work/spec/balancers"
cp "$LAB_SPEC" "$work/spec/devices/devices.cue"
{
	printf 'package spec\n'
	for i in $(seq 1 "$NDEV"); do
		printf '\nbalancers: "tls-%03d": {\n\ttenant: "t"\n\tprotocol: "http"\n' "$i"
		printf '\tvips: [{address: "%s", port: 443, tls: certificates: [{name: "site", sni: ["%s"]}]}]\n' "${VIPS[i - 1]}" "$HOSTNAME_TLS"
		printf '\tnodes: [{address: "%s", port: %s}, {address: "%s", port: %s}]\n' \
			"${NODES[0]%:*}" "${NODES[0]##*:}" "${NODES[1]%:*}" "${NODES[1]##*:}"
		printf '\tplacement: device: "%s"\n}\n' "${DEVS[i - 1]}"
	done
} >"$work/spec/balancers/tls.cue"

# verify TOOL: the certificate of serial SERIAL is served through the VIPs
# of the first, middle and last device, and an HTTPS request through each
# is answered by a node.
verify() {
	local tool=$1 i vip got body was=$failed
	failed=0
	for i in 1 $((NDEV / 2 + 1)) "$NDEV"; do
		vip=${VIPS[i - 1]}
		got=
		for _ in $(seq 1 25); do # a reload is a signal: up to 5 s
			got=$(timeout 5 openssl s_client -connect "$vip:443" -servername "$HOSTNAME_TLS" </dev/null 2>/dev/null |
				openssl x509 -noout -serial 2>/dev/null | sed 's/^serial=//') || true
			[ "$got" = "$SERIAL" ] && break
			sleep 0.2
		done
		[ "$got" = "$SERIAL" ] || fail "$tool: $vip serves serial '$got', want $SERIAL"
		body=$(curl -s --max-time 3 --cacert "$work/ca/ca.pem" --resolve "$HOSTNAME_TLS:443:$vip" "https://$HOSTNAME_TLS/") ||
			{ fail "$tool: curl https://$HOSTNAME_TLS/ via $vip: exit $?"; continue; }
		case "$body" in n1 | n2) ;; *) fail "$tool: https via $vip answered \"$body\", not n1 or n2" ;; esac
	done
	[ $failed = 0 ] && log "tls: verified $tool: serial $SERIAL served through 3 VIPs, HTTPS answered by the nodes"
	[ $was = 0 ] || failed=1
}

PFLAGS=(--cert-dir "$work/certs" --known-hosts "$LAB_KNOWN_HOSTS" --ssh-key "$LAB_KEY" --parallelism 10)
FLAGS=("${PFLAGS[@]}" --adopt) # the lab's hosts start with a haproxy.cfg lbc did not write
serial=1
new_cert $serial
log "tls: lbc, first apply"
timed lbc-first "$LBC" apply "$work/spec" "${FLAGS[@]}"
verify "lbc apply (first)"

log "tls: $RUNS rounds of a rotation each way"
rt=() rl=() w_rt=() w_rl=()
for _ in $(seq 1 "$RUNS"); do
	serial=$((serial + 1))
	new_cert $serial
	p0=$(worker_pids)
	if timed lbc-runtime "$LBC" apply "$work/spec" "${FLAGS[@]}"; then
		rt+=("$R")
		grep -q "at runtime, no reload" "$work/logs/lbc-runtime.${nrun[lbc-runtime]}.log" || fail "lbc apply (rotation): no device rotated at runtime"
	fi
	w_rt+=("$(new_workers "$p0" "$(worker_pids)")")
	verify "lbc apply (runtime rotation)"
	serial=$((serial + 1))
	new_cert $serial
	p0=$(worker_pids)
	timed lbc-reload "$LBC" apply "$work/spec" "${FLAGS[@]}" --reload && rl+=("$R")
	w_rl+=("$(new_workers "$p0" "$(worker_pids)")")
	verify "lbc apply --reload (rotation)"
done
idle_background 2
prc=0
"$LBC" plan "$work/spec" "${PFLAGS[@]}" --detailed-exitcode >"$work/logs/plan-end.log" 2>&1 || prc=$?
[ $prc = 0 ] || fail "lbc plan after the rotations: exit $prc, want 0 (no changes)"

echo "== tls: a certificate rotation on $NDEV lab devices (one TLS VIP each); medians of $RUNS interleaved rounds; $(nproc) CPUs"
runtime_vs_reload "lbc apply, rotation at runtime (set/commit ssl cert)" "lbc apply --reload, the same rotation by reload"
echo "checked after each apply: the new serial through 3 VIPs (openssl s_client), HTTPS answered by a node (curl --cacert --resolve); lbc plan at the end: exit $prc"
exit $failed
