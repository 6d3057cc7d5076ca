#!/usr/bin/env bash
# Section "compile": lbc validate and lbc compile against `cue export ./...`
# on two generated trees of the same 1,000 devices and 10,000 balancers in
# 100 tenant directories: the plain tree (data only) and the idiomatic tree
# (a definition package imported from the tree's cue.mod module, per-tenant
# service lists turned into balancers by a comprehension, devices from an
# index × zone comprehension). Each tree is measured against `cue export
# ./...` of the same files without any schema (the baseline of the
# targets) and with lbc's schema wired in. Targets (DESIGN.md): lbc
# validate and a cold lbc compile take at most half the time and a third of
# the peak memory of the schema-less export; an unchanged tree recompiles
# from a warm cache in 0.3 s; scheduling + rendering take under 10% of a
# cold lbc compile (from lbc compile --timings, same runs).
#
# Every command runs once to warm up, then BENCH_RUNS rounds in which each
# command of the tree runs once, in turn, so that the machine's drift hits
# lbc and cue alike; medians are reported.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

GEN=${BENCH_GEN:-$ROOT/testdata/gen}
GEN_ARGS=${BENCH_GEN_ARGS:--devices 1000 -balancers 10000 -tenants 100}

need_time
CUE=$(need_cue)
have_lbc=1
build_lbc || have_lbc=0

# The schema the peer trees copy: the one lbc embeds (lbc schema), else the
# source file. The trees are regenerated when the schema, the generator or
# its arguments change.
schema=$(mktemp)
work=$(mktemp -d)
restore=()
trap 'for r in "${restore[@]}"; do eval "$r"; done; rm -f "$schema"; rm -rf "$work"' EXIT
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

LBC=$BIN/lbc
# compile must not rewrite the tree's lock file between runs: every run does
# the same work (a first placement of all balancers).
compile_flags=(--no-lock-update)
# The cold rows bypass the cache; the warm row reads it from $work/cache,
# which its warm-up run fills.
export LBC_CACHE=$work/cache

echo "== compile: load average $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) CPUs; median of $RUNS interleaved rounds after one warm-up run of each command"
echo "   lbc takes plain-data instances through a validator generated from its schema instead of CUE's evaluator, and evaluates"
echo "   every other instance alone with CUE (no schema) before that validator; tests check both give what CUE unified with the schema gives."
echo "   warm: an unchanged tree's rendered files are read back from the cache (no load, schedule or render); one weight changed in one tenant: that instance is evaluated, the others read."
for tree in ${BENCH_COMPILE_TREES:-plain idiomatic}; do
	case $tree in
	plain) dir=$GEN ;;
	idiomatic) dir=$GEN/idiomatic ;;
	*) continue ;; # e.g. none: only the L7 part below
	esac
	timings=$work/timings-$tree
	: >"$timings"
	tenant_file=$(ls "$dir"/lbc/balancers/t050/*.cue | head -1)
	cp "$tenant_file" "$work/tenant-$tree"
	restore+=("cp '$work/tenant-$tree' '$tenant_file'")
	base="cue export ./... (no schema)"
	echo
	echo "-- $tree tree ($dir): $(ls "$dir/lbc/balancers" | wc -l) tenant instances$([ $tree = idiomatic ] && echo ', definitions from defs/, comprehensions')"
	{
		printf '%s\t%s\t%s\n' "$base" "$dir/lbc" "$CUE export ./..."
		printf '%s\t%s\t%s\n' "cue export ./... (lbc's schema)" "$dir/cue" "$CUE export ./..."
		if [ $have_lbc = 1 ]; then
			printf '%s\t%s\t%s\n' "lbc validate (no cache)" "$dir/lbc" "$LBC validate --no-cache ."
			# --timings: the phases, one line a run (the warm-up run first),
			# appended to $timings by the command itself.
			printf '%s\t%s\t%s\n' "lbc compile (cold: --no-cache)" "$dir/lbc" "$LBC compile . -o $work/out --no-cache ${compile_flags[*]} --timings 2>>$timings"
			printf '%s\t%s\t%s\n' "lbc compile (warm cache)" "$dir/lbc" "$LBC compile . -o $work/out ${compile_flags[*]}"
			# One tenant directory changed before each run as a user
			# changes it (bench/weight.sh: one balancer's node weight, one
			# more each run, never a value an earlier run had; the file
			# restored at the end): that instance and the tree's result are
			# misses, the other instances are read from the cache, and one
			# device's files change.
			printf '%s\t%s\t%s\n' "lbc compile (warm, one weight changed in one tenant)" "$dir/lbc" "bash -c '$ROOT/bench/weight.sh $tenant_file && exec $LBC compile . -o $work/out ${compile_flags[*]}'"
		fi
	} | measure_rounds | table "$base"
	eval "${restore[-1]}"
	echo "targets: lbc validate and cold compile <= 0.50 of '$base' in time and <= 0.33 in peak memory; warm compile <= 0.30 s, one tenant changed <= 0.50 s"
	phases "$timings"
done

# L7 rules (issue 14): a cold lbc compile of the plain tree, and of the
# same tree with BENCH_L7_RULES rules and one pool on each http balancer
# (gen -rules: every condition kind and action; nothing else differs),
# side by side in the same rounds. Target: the rules make compile at most
# 1.5 times slower.
l7_rules=${BENCH_L7_RULES:-10}
if [ $have_lbc = 1 ] && [ "$l7_rules" -gt 0 ]; then
	GEN_L7=$GEN-l7
	stamp=$(cat "$ROOT"/internal/testkit/gen/*.go <(echo "$GEN_ARGS -rules $l7_rules") | sha256sum | cut -c1-16)
	if [ "$(cat "$GEN_L7/STAMP" 2>/dev/null)" != "$stamp" ]; then
		log "bench: generating $GEN_L7 ($GEN_ARGS -rules $l7_rules)"
		(cd "$ROOT" && go run ./internal/testkit/gen -out "$GEN_L7" -schema "" -rules "$l7_rules" $GEN_ARGS)
		echo "$stamp" >"$GEN_L7/STAMP"
	fi
	base="lbc compile (cold), no rules"
	echo
	echo "-- L7 rules: the plain tree, and the same tree with $l7_rules rules and a pool on each http balancer ($GEN_L7)"
	{
		printf '%s\t%s\t%s\n' "$base" "$GEN/lbc" "$LBC compile . -o $work/out --no-cache ${compile_flags[*]}"
		printf '%s\t%s\t%s\n' "lbc compile (cold), $l7_rules rules" "$GEN_L7/lbc" "$LBC compile . -o $work/out-l7 --no-cache ${compile_flags[*]}"
	} | measure_rounds | table "$base"
	echo "target: the rules make a cold compile at most 1.50 times slower"
fi
echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
