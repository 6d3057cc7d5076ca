#!/usr/bin/env bash
# Section "watch": how long `lbc watch` takes to re-plan after a one-file
# edit in the generated tree (1,000 devices, 10,000 balancers in 100 tenant
# directories). Target (DESIGN.md): under 200 ms.
#
# lbc watch runs offline (no hosts) on a copy of the tree, with -o into a
# temporary directory. Each of BENCH_WATCH_EDITS edits changes one node
# weight in one tenant file (alternating between two tenants), written in
# place; the latency is the time from just before the write to the moment
# the line "... file(s) changed ..." appears in lbc's stdout (polled every
# ~2 ms with bash builtins only, clock $EPOCHREALTIME), so it includes the
# debounce (lbc's default 100 ms), the reload of the one instance, the
# merge and checks of the whole tree, the recompile (only what the edit
# changed is rendered again), writing OUT and printing the diff. Each edit's diff must
# show the new weight. The run is repeated with --debounce 20ms to show what
# the debounce costs.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

GEN=${BENCH_GEN:-$ROOT/testdata/gen}
GEN_ARGS=${BENCH_GEN_ARGS:--devices 1000 -balancers 10000 -tenants 100}
EDITS=${BENCH_WATCH_EDITS:-5}
START_TIMEOUT=${BENCH_WATCH_START_TIMEOUT:-180} # seconds for the initial compile
EDIT_TIMEOUT=10                                 # seconds for one edit's line

if ! build_lbc; then
	echo "== watch: not available (lbc does not build)"
	exit 0
fi
LBC=$BIN/lbc

work=$(mktemp -d /tmp/lbc-bench-watch.XXXXXX)
wpid=
cleanup() {
	set +e
	if [ -n "$wpid" ]; then
		kill "$wpid" 2>/dev/null
		wait "$wpid" 2>/dev/null
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The tree: generated as bench/compile.sh does (same stamp, same place), so
# the two sections share it; watched as a copy, so that the edits never touch it.
"$LBC" schema >"$work/schema.cue"
stamp=$(cat "$work/schema.cue" "$ROOT"/internal/testkit/gen/*.go <(echo "$GEN_ARGS") | sha256sum | cut -c1-16)
if [ "$(cat "$GEN/STAMP" 2>/dev/null)" != "$stamp" ]; then
	log "bench: generating $GEN ($GEN_ARGS, schema from lbc schema)"
	(cd "$ROOT" && go run ./internal/testkit/gen -out "$GEN" -schema "$work/schema.cue" $GEN_ARGS)
	echo "$stamp" >"$GEN/STAMP"
fi
cp -r "$GEN/lbc" "$work/tree"
tenants=("$(ls "$work/tree/balancers" | sed -n 11p)" "$(ls "$work/tree/balancers" | sed -n 61p)")

# A sleep without a fork: read with a timeout on a descriptor that never has data.
exec {sleepfd}<> <(:)
nap() { read -t "$1" -u "$sleepfd" || true; }

now_us() { local t=${EPOCHREALTIME/[.,]/}; echo "$t"; }

# count_changed FILE prints how many "file(s) changed" lines FILE holds.
count_changed() {
	local n=0 line
	while IFS= read -r line; do
		[[ $line == *" file(s) changed ("* ]] && n=$((n + 1))
	done <"$1"
	echo "$n"
}

# run_watch LABEL FLAGS... starts lbc watch, makes EDITS edits and prints
# LABEL<TAB>median ms<TAB>max ms<TAB>median of lbc's own "compiled in" ms.
run_watch() {
	local label=$1; shift
	local out=$work/out-$RANDOM log=$work/watch.out err=$work/watch.err
	"$LBC" watch "$work/tree" -o "$out" "$@" >"$log" 2>"$err" &
	wpid=$!
	local t0 deadline
	t0=$(now_us)
	deadline=$((t0 + START_TIMEOUT * 1000000))
	until grep -q '^watching ' "$log"; do
		if grep -q ' invalid specs: ' "$log" || ! kill -0 "$wpid" 2>/dev/null || [ "$(now_us)" -gt "$deadline" ]; then
			log "bench: watch $label: no 'watching' line: $(head -c 300 "$err") $(head -c 300 "$log")"
			printf '%s\t-\t-\t-\n' "$label"
			kill "$wpid" 2>/dev/null; wait "$wpid" 2>/dev/null; wpid=
			return 0
		fi
		nap 0.05
	done
	log "bench: watch $label: $(grep '^watching ' "$log")"
	# lbc writes OUT, then prints the line: every device's files are there
	local ndev
	ndev=$(grep -c '^	"lb-' "$work/tree/devices/devices.cue")
	if [ "$(find "$out" -name haproxy.cfg 2>/dev/null | wc -l)" -lt "$ndev" ] || [ "$(find "$out" -name vips.json | wc -l)" -lt "$ndev" ]; then
		log "bench: watch $label: OUT incomplete when the watching line was printed: $(ls "$out" 2>/dev/null | wc -l) of $ndev devices"
	fi
	local i lat=() took=() seen=0 ok=1
	for i in $(seq 1 "$EDITS"); do
		nap 0.5 # let the previous burst settle: each edit is its own burst
		local f=$work/tree/balancers/${tenants[$((i % 2))]}/balancers.cue
		local old new w content
		content=$(<"$f")
		# the first node weight of the file: w → w+1 (or back when it was raised)
		[[ $content =~ weight:\ ([0-9]+) ]] || { log "bench: watch: no weight in $f"; ok=0; break; }
		w=${BASH_REMATCH[1]}
		if [ "$w" -ge 256 ]; then new=$((w - 1)); else new=$((w + 1)); fi
		content=${content/weight: $w/weight: $new}
		seen=$(count_changed "$log")
		local size
		size=$(stat -c %s "$log")
		t0=$(now_us)
		printf '%s\n' "$content" >"$f"
		deadline=$((t0 + EDIT_TIMEOUT * 1000000))
		local t1=
		while :; do
			if [ "$(count_changed "$log")" -gt "$seen" ]; then
				t1=$(now_us)
				break
			fi
			if [ "$(now_us)" -gt "$deadline" ] || ! kill -0 "$wpid" 2>/dev/null; then
				break
			fi
			nap 0.002
		done
		if [ -z "$t1" ]; then
			log "bench: watch $label: edit $i: no 'file(s) changed' line within ${EDIT_TIMEOUT}s; stderr: $(tail -c 300 "$err")"
			ok=0
			break
		fi
		lat+=($(((t1 - t0) / 1000)))
		local line
		line=$(grep ' file(s) changed (' "$log" | tail -1)
		[[ $line =~ compiled\ in\ ([0-9]+)\ ms ]] && took+=("${BASH_REMATCH[1]}")
		if ! tail -c +"$((size + 1))" "$log" | grep -q "^+    server .* weight $new\b"; then
			log "bench: watch $label: edit $i: the diff lacks the new weight $new: $line"
			ok=0
		fi
	done
	kill -INT "$wpid" 2>/dev/null
	wait "$wpid" 2>/dev/null
	wpid=
	if ! grep -q '^watch: stopped$' "$err"; then
		log "bench: watch $label: no 'watch: stopped' after SIGINT"
	fi
	if [ $ok = 0 ] || [ ${#lat[@]} = 0 ]; then
		printf '%s\t-\t-\t-\n' "$label"
		return 0
	fi
	local med max tmed
	med=$(printf '%s\n' "${lat[@]}" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
	max=$(printf '%s\n' "${lat[@]}" | sort -n | tail -1)
	tmed=$(printf '%s\n' "${took[@]:-}" | sort -n | awk 'NF{a[++n]=$1} END{print n ? a[int((n+1)/2)] : "-"}')
	log "bench: watch $label: latencies (ms): ${lat[*]}; lbc compiled in (ms): ${took[*]:-}"
	printf '%s\t%s\t%s\t%s\n' "$label" "$med" "$max" "$tmed"
}

echo "== watch: $(grep -c '^	"lb-' "$work/tree/devices/devices.cue") devices, $(cat "$work/tree"/balancers/*/*.cue | grep -c '^balancers: "') balancers, $(ls "$work/tree/balancers" | wc -l) instances; $EDITS one-weight edits in ${tenants[*]}; $(nproc) CPUs"
{
	run_watch "lbc watch -o OUT (default debounce 100ms)"
	run_watch "lbc watch -o OUT --debounce 20ms" --debounce 20ms
} | awk -F'\t' '
	BEGIN { printf "%-44s %12s %9s %24s\n", "command", "median (ms)", "max (ms)", "lbc: compiled in (ms)" }
	{
		if ($2 == "-") { printf "%-44s %12s\n", $1, "not available"; bad = 1; next }
		printf "%-44s %12d %9d %24s\n", $1, $2, $3, $4
		if (NR == 1) first = $2
	}
	END {
		verdict = (first != "" && first < 200) ? "met" : "MISSED"
		printf "target: edit to printed re-plan < 200 ms with the default debounce: %s\n", verdict
		exit bad
	}'
