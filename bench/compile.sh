#!/usr/bin/env bash
# Section "compile": lbc validate and lbc compile against `cue export ./...`
# on the generated tree (1,000 devices, 10,000 balancers in 100 tenant
# directories). Target (DESIGN.md): lbc compile takes at most half the time
# and half the peak memory of cue export, and scheduling + rendering take
# under 10% of lbc compile's time (from lbc compile --timings, same runs).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

GEN=${BENCH_GEN:-$ROOT/testdata/gen}
GEN_ARGS=${BENCH_GEN_ARGS:--devices 1000 -balancers 10000 -tenants 100}

need_time
CUE=$(need_cue)
have_lbc=1
build_lbc || have_lbc=0

# The schema the peer tree copies: the one lbc embeds (lbc schema), else the
# source file. The tree is regenerated when the schema, the generator or its
# arguments change.
schema=$(mktemp)
trap 'rm -f "$schema" "${timings:-}"; rm -rf "${out:-}"' EXIT
if [ $have_lbc = 1 ] && "$BIN/lbc" schema >"$schema" 2>/dev/null && [ -s "$schema" ]; then
	schema_from="lbc schema"
else
	cp "$ROOT/schema/schema.cue" "$schema"
	schema_from="schema/schema.cue"
fi
stamp=$(cat "$schema" "$ROOT"/internal/testkit/gen/*.go <(echo "$GEN_ARGS") | sha256sum | cut -c1-16)
if [ "$(cat "$GEN/STAMP" 2>/dev/null)" != "$stamp" ]; then
	log "bench: generating $GEN ($GEN_ARGS, schema from $schema_from)"
	(cd "$ROOT" && go run ./internal/testkit/gen -out "$GEN" -schema "$schema" $GEN_ARGS)
	echo "$stamp" >"$GEN/STAMP"
fi

out=$(mktemp -d)
LBC=$BIN/lbc
lbc_measure() { # like measure, but "not available" without a built lbc
	if [ $have_lbc = 1 ]; then measure "$@"; else printf '%s\t-\t-\n' "$1"; fi
}
# compile must not rewrite the tree's lock file between runs: every run does
# the same work (a first placement of all balancers).
compile_flags=()
if [ $have_lbc = 1 ] && "$BIN/lbc" help compile 2>&1 | grep -q -- 'no-lock-update'; then
	compile_flags+=(--no-lock-update)
fi
# --timings makes lbc print its phases to stderr: the compile row runs
# through a wrapper that execs lbc with stderr appended to $timings (one
# line a run, the warm-up run first), so the phases come from the very runs
# the row measures.
timings=$(mktemp)
timed=()
if [ $have_lbc = 1 ] && "$BIN/lbc" help compile 2>&1 | grep -q -- '-timings'; then
	compile_flags+=(--timings)
	timed=(bash -c 'exec "$@" 2>>"$0"' "$timings")
fi

echo "== compile: load average $(cut -d' ' -f1-3 /proc/loadavg); $(grep -c '^	"lb-' "$GEN/lbc/devices/devices.cue") devices, $(cat "$GEN"/lbc/balancers/*/*.cue | grep -c '^balancers: "') balancers, $(ls "$GEN/lbc/balancers" | wc -l) instances; median of $RUNS runs; $(nproc) CPUs"
{
	measure "cue export ./... (peer tree)" "$GEN/cue" "$CUE" export ./...
	lbc_measure "lbc validate" "$GEN/lbc" "$LBC" validate .
	lbc_measure "lbc compile -o OUT${compile_flags[*]:+ ${compile_flags[*]}}" "$GEN/lbc" "${timed[@]}" "$LBC" compile . -o "$out" "${compile_flags[@]}"
} | table "cue export ./... (peer tree)"
echo "target: lbc compile <= 0.50 of cue export in time and in peak memory"

# The phases of lbc compile: median of the measured runs (the warm-up run's
# line is dropped), and the share of scheduling + rendering in lbc's total
# (lbc's own clock, from the start of the command to the end of writing).
if [ ${#timed[@]} -gt 0 ]; then
	grep '^timings: ' "$timings" | tail -n +2 | awk '
	function med(a, n,   i, j, t) { # sorts a[1..n] in place, returns the median
		for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j+1] = a[j]; a[j+1] = t }
		return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
	}
	{
		# timings: load X ms, schedule Y ms, render Z ms, write W ms (files F ms), total T ms
		line = $0; gsub(/[(),]/, " ", line); k = split(line, f, " ")
		n++
		for (i = 2; i < k; i++) if (f[i+1] ~ /^[0-9.]+$/) v[f[i], n] = f[i+1]
		share[n] = 100 * (v["schedule", n] + v["render", n]) / v["total", n]
	}
	END {
		if (n == 0) { print "phases: not available (no timings line)"; exit }
		split("load schedule render write files total", ph, " ")
		out = ""
		for (p = 1; p <= 6; p++) { for (i = 1; i <= n; i++) a[i] = v[ph[p], i]; m[ph[p]] = med(a, n) }
		printf "lbc compile phases (ms, median of %d runs): load %.0f, schedule %.0f, render %.0f, write %.0f (files %.0f), total %.0f\n",
			n, m["load"], m["schedule"], m["render"], m["write"], m["files"], m["total"]
		s = med(share, n)
		printf "scheduler + rendering: %.1f%% of lbc compile (median of the runs) %s\n", s, (s < 10 ? "" : "MISSED")
		print "target: scheduler + rendering < 10% of lbc compile"
	}'
fi
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
