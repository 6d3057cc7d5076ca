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
	local c
	for c in "$BIN/cue" "$(command -v cue || true)"; do
		if [ -n "$c" ] && [ -x "$c" ] && "$c" version 2>/dev/null | head -1 | grep -q "cue version $CUE_VERSION\$"; then
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
