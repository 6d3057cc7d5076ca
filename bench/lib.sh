# Helpers shared by the bench sections. Source it; it sets ROOT, BIN, RUNS
# and defines the functions below. Every section is a script that sources
# this file and prints its own table.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$ROOT/bin
RUNS=${BENCH_RUNS:-3}           # measured runs per command (median is reported)
CUE_VERSION=v0.17.1             # the version in go.mod
export PATH="$PATH:/usr/local/go/bin"

log() { printf '%s\n' "$*" >&2; }

# need_time makes sure GNU time is at /usr/bin/time (Debian package "time").
need_time() {
	if [ ! -x /usr/bin/time ]; then
		log "installing GNU time"
		apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q time >&2
	fi
}

# need_cue prints the path of a cue binary of CUE_VERSION, installing it into
# $BIN when there is none.
need_cue() {
	local c v
	for c in "$BIN/cue" "$(command -v cue || true)"; do
		# The output is read whole, not piped to head: under pipefail, cue
		# killed by SIGPIPE when head exits made the check fail at random,
		# and cue was installed again on most runs.
		[ -n "$c" ] && [ -x "$c" ] || continue
		v=$("$c" version 2>/dev/null) || continue
		if [ "${v%%$'\n'*}" = "cue version $CUE_VERSION" ]; then
			echo "$c"
			return
		fi
	done
	log "installing cue $CUE_VERSION into $BIN"
	(cd "$ROOT" && GOBIN=$BIN go install "cuelang.org/go/cmd/cue@$CUE_VERSION") >&2
	echo "$BIN/cue"
}

# build_lbc builds bin/lbc; it returns non-zero (and says why) when the
# command does not build yet.
build_lbc() {
	local err
	if ! err=$(cd "$ROOT" && go build -o "$BIN/lbc" ./cmd/lbc 2>&1); then
		log "bench: lbc does not build:"
		log "$(printf '%s\n' "$err" | head -5)"
		return 1
	fi
}

# measure LABEL DIR CMD... runs CMD in DIR once to warm up (and to see that
# it works), then RUNS times under GNU time, and prints one line:
#   LABEL<TAB>median seconds<TAB>median peak RSS in KB
# or LABEL<TAB>-<TAB>- plus the reason on stderr when CMD fails.
measure() {
	local label=$1 dir=$2; shift 2
	local tmp; tmp=$(mktemp -d)
	local rc=0
	(cd "$dir" && "$@") >/dev/null 2>"$tmp/err" || rc=$?
	if [ $rc != 0 ]; then
		log "bench: $label: not available (exit $rc): $(head -c 300 "$tmp/err" | head -3)"
		printf '%s\t-\t-\n' "$label"
		rm -rf "$tmp"
		return 0
	fi
	local i
	for i in $(seq 1 "$RUNS"); do
		if ! (cd "$dir" && /usr/bin/time -f '%e %M' -o "$tmp/t$i" "$@") >/dev/null 2>"$tmp/err"; then
			log "bench: $label: run $i failed: $(head -3 "$tmp/err")"
			printf '%s\t-\t-\n' "$label"
			rm -rf "$tmp"
			return 0
		fi
	done
	local secs kb
	secs=$(for i in $(seq 1 "$RUNS"); do awk 'END{print $1}' "$tmp/t$i"; done | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
	kb=$(for i in $(seq 1 "$RUNS"); do awk 'END{print $2}' "$tmp/t$i"; done | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
	rm -rf "$tmp"
	printf '%s\t%s\t%s\n' "$label" "$secs" "$kb"
}

# table BASELINE_LABEL prints the measure lines read from stdin as a table,
# with time and memory as ratios to the line labelled BASELINE_LABEL.
table() {
	awk -F'\t' -v base="$1" '
	{ label[NR]=$1; t[NR]=$2; m[NR]=$3; if ($1==base) { bt=$2; bm=$3 } }
	END {
		printf "%-44s %9s %11s %9s %9s\n", "command", "time (s)", "peak (MB)", "time/" base0(base), "mem/" base0(base)
		for (i=1; i<=NR; i++) {
			if (t[i]=="-") { printf "%-44s %9s\n", label[i], "not available"; continue }
			rt = (bt>0) ? sprintf("%.2f", t[i]/bt) : "-"
			rm = (bm>0) ? sprintf("%.2f", m[i]/bm) : "-"
			printf "%-44s %9.2f %11.0f %9s %9s\n", label[i], t[i], m[i]/1024, rt, rm
		}
	}
	function base0(b) { split(b, w, " "); return w[1] }'
}

# measure_rounds reads lines "LABEL<TAB>DIR<TAB>COMMAND" (COMMAND is a
# shell command line, run with bash -c in DIR), runs each command once to
# warm up (and to see that it works), then RUNS rounds in which each command
# runs once, in the order given, under GNU time; it prints one line per
# command, in that order:
#   LABEL<TAB>median seconds<TAB>median peak RSS in KB
# or LABEL<TAB>-<TAB>- plus the reason on stderr when COMMAND fails.
measure_rounds() {
	local labels=() dirs=() cmds=() label dir cmd i r
	while IFS=$'\t' read -r label dir cmd; do
		labels+=("$label"); dirs+=("$dir"); cmds+=("$cmd")
	done
	local tmp; tmp=$(mktemp -d)
	local ok=()
	for i in "${!cmds[@]}"; do
		ok[$i]=1
		if ! (cd "${dirs[$i]}" && bash -c "${cmds[$i]}") >/dev/null 2>"$tmp/err"; then
			log "bench: ${labels[$i]}: not available: $(head -c 300 "$tmp/err" | head -3)"
			ok[$i]=0
		fi
	done
	for r in $(seq 1 "$RUNS"); do
		for i in "${!cmds[@]}"; do
			[ "${ok[$i]}" = 1 ] || continue
			if ! (cd "${dirs[$i]}" && /usr/bin/time -f '%e %M' -o "$tmp/t$i.$r" bash -c "exec ${cmds[$i]}") >/dev/null 2>"$tmp/err"; then
				log "bench: ${labels[$i]}: round $r failed: $(head -3 "$tmp/err")"
				ok[$i]=0
			fi
		done
	done
	for i in "${!cmds[@]}"; do
		if [ "${ok[$i]}" != 1 ]; then
			printf '%s\t-\t-\n' "${labels[$i]}"
			continue
		fi
		local secs kb
		secs=$(for r in $(seq 1 "$RUNS"); do awk 'END{print $1}' "$tmp/t$i.$r"; done | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
		kb=$(for r in $(seq 1 "$RUNS"); do awk 'END{print $2}' "$tmp/t$i.$r"; done | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
		printf '%s\t%s\t%s\n' "${labels[$i]}" "$secs" "$kb"
	done
	rm -rf "$tmp"
}

# phases FILE prints the median phases of the `lbc compile --timings` lines
# in FILE (the first line, the warm-up run's, is dropped) and the share of
# scheduling + rendering in lbc's total (lbc's own clock, from the start of
# the command to the end of writing).
phases() {
	grep '^timings: ' "$1" 2>/dev/null | tail -n +2 | awk '
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
		for (p = 1; p <= 6; p++) { for (i = 1; i <= n; i++) a[i] = v[ph[p], i]; m[ph[p]] = med(a, n) }
		printf "cold lbc compile phases (ms, median of %d runs): load %.0f, schedule %.0f, render %.0f, write %.0f (files %.0f), total %.0f\n",
			n, m["load"], m["schedule"], m["render"], m["write"], m["files"], m["total"]
		s = med(share, n)
		printf "scheduler + rendering: %.1f%% of a cold lbc compile (median of the runs; target < 10%%) %s\n", s, (s < 10 ? "" : "MISSED")
	}'
}
