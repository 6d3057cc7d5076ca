#!/usr/bin/env bash
# Section "compile": lbc validate and lbc compile against `cue export ./...`
# on the generated tree (1,000 devices, 10,000 balancers in 100 tenant
# directories). Target (DESIGN.md): lbc compile takes at most half the time
# and half the peak memory of cue export.
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
trap 'rm -f "$schema"; rm -rf "${out:-}"' EXIT
if [ $have_lbc = 1 ] && "$BIN/lbc" schema >"$schema" 2>/dev/null && [ -s "$schema" ]; then
	schema_from="lbc schema"
else
	cp "$ROOT/schema/schema.cue" "$schema"
	schema_from="schema/schema.cue"
fi
stamp=$(cat "$schema" "$ROOT"/internal/gen/*.go <(echo "$GEN_ARGS") | sha256sum | cut -c1-16)
if [ "$(cat "$GEN/STAMP" 2>/dev/null)" != "$stamp" ]; then
	log "bench: generating $GEN ($GEN_ARGS, schema from $schema_from)"
	(cd "$ROOT" && go run ./internal/gen -out "$GEN" -schema "$schema" $GEN_ARGS)
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

echo "== compile: $(grep -c '^	"lb-' "$GEN/lbc/devices/devices.cue") devices, $(cat "$GEN"/lbc/balancers/*/*.cue | grep -c '^balancers: "') balancers, $(ls "$GEN/lbc/balancers" | wc -l) instances; median of $RUNS runs; $(nproc) CPUs"
{
	measure "cue export ./... (peer tree)" "$GEN/cue" "$CUE" export ./...
	lbc_measure "lbc validate" "$GEN/lbc" "$LBC" validate .
	lbc_measure "lbc compile -o OUT${compile_flags[*]:+ ${compile_flags[*]}}" "$GEN/lbc" "$LBC" compile . -o "$out" "${compile_flags[@]}"
} | table "cue export ./... (peer tree)"
echo "target: lbc compile <= 0.50 of cue export in time and in peak memory"
