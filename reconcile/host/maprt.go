package host

import (
	"fmt"
	"strings"
)

// Runtime map loads: a host table (a map file, IsMapFile) whose entries
// change is loaded into the running HAProxy from the file itself, on the
// host, as one new version of the map (HAProxy 2.6's `prepare map`, `add
// map @VER MAP <<` with the entries as payload, `commit map @VER MAP`):
// the switch from the old entries to the new ones is atomic, and 10,000
// entries go in about 30 connections to the stats socket, not 10,000.
//
// A map load is named by its path only (Runtime.Maps): the entries never
// travel in the script, no spec text becomes a shell word, and the
// payload is built by awk from the file the transaction swapped into
// place, refusing any line that is not "HOST be_BACKEND" (lower-case host
// name, lbc's backend name) or a comment. The undo in txn.sh runs after
// the files are restored, so the same load puts the old entries back.
// The controller then reads `show map PATH` (Runtime.ReadBack) and
// compares it with the file.

// MapQuery is the query whose answer lists the live entries of the map
// at path ("0xID KEY VALUE" a line).
func MapQuery(path string) string { return "show map " + path }

// mapFunc defines lbc_map SOCKET MAP: it asks the stats socket for a new
// version of map MAP, adds the entries of the file MAP to that version,
// one `add map @VER MAP <<` a connection with at most 12,000 bytes of
// entries as its payload (HAProxy takes a command and its payload only
// when they fit in one buffer, tune.bufsize, 16384 bytes by default),
// each answer checked to be empty, and commits the version. awk checks
// every line of the file first (a comment, or an entry lbc writes) and
// prints the line ranges of the chunks; sed cuts each out. On any
// failure it prints the command and at most 300 bytes of the answer on
// stderr and fails; an uncommitted version is left unused (the next
// commit drops it).
//
// One connection a chunk, not one interactive session: HAProxy 2.6 let
// go of the rest of a session's input once the client had ended its side
// (the last add of 10,000 entries lost without a final quit), and, with
// one, of some answers under load, so that no answer proved every add.
const mapFunc = `lbc_map() { lbc_s=$1; lbc_m=$2
  lbc_v=$(lbc_cli "$lbc_s" 2>&1 <<LBC_RT
prepare map $lbc_m
LBC_RT
) || lbc_v="(no answer: $lbc_v)"
  case $lbc_v in
  "New version created: "[0-9]*) lbc_v=${lbc_v#New version created: }; lbc_v=${lbc_v%%[!0-9]*} ;;
  *) printf 'stats socket: prepare map %s: %.300s\n' "$lbc_m" "$lbc_v" >&2; return 1 ;;
  esac
  lbc_r=$(awk -v m="$lbc_m" '
    /^#/ || /^$/ { if (n > 0) print from, FNR - 1; n = 0; next }
    length($0) > 400 || $0 !~ /^[a-z0-9][a-z0-9.-]* be_[a-z0-9][a-z0-9._-]*(:[a-z0-9][a-z0-9._-]*)?$/ { bad = FNR; exit 1 }
    { if (n == 0) { from = FNR; size = 0 } n++; size += length($0) + 1
      if (size > 12000) { print from, FNR; n = 0 } }
    END { if (bad) { printf "map %s: line %d is not an entry lbc writes\n", m, bad > "/dev/stderr"; exit 1 }
      if (n > 0) print from, FNR }' "$lbc_m") || return 1
  while read -r lbc_f lbc_t; do
    [ -n "$lbc_f" ] || continue
    lbc_p=$(sed -n "$lbc_f,$lbc_t"p "$lbc_m") || return 1
    lbc_rt "$lbc_s" "add map @$lbc_v $lbc_m" "$lbc_p" || return 1
  done <<LBC_MAP
$lbc_r
LBC_MAP
  lbc_rt "$lbc_s" "commit map @$lbc_v $lbc_m" ''; }
`

// mapLoadCall is the call of lbc_map for the map at path.
func mapLoadCall(h Host, path string) string {
	return "lbc_map " + q(h.SocketPath()) + " " + q(path)
}

// checkMaps refuses a map path that is not a host table lbc renders, as
// an absolute path of lbc's own characters (it becomes a CLI word).
func checkMaps(paths []string) error {
	for _, p := range paths {
		if !IsMapFile(p) || !strings.HasPrefix(p, "/") || len(p) > 1000 {
			return fmt.Errorf("runtime map %.80q: not a host table lbc writes", p)
		}
		for i := 0; i < len(p); i++ {
			if !pathByte(p[i]) {
				return fmt.Errorf("runtime map %.80q: character %q is not allowed", p, p[i])
			}
		}
	}
	return nil
}

// mapLoads is the part of the runtime step that loads r.Maps, each call
// joined to what comes before by " &&".
func mapLoads(h Host, r *Runtime) string {
	var b strings.Builder
	for _, p := range r.Maps {
		b.WriteString(" &&\n  " + mapLoadCall(h, p))
	}
	return b.String()
}

// mapUndo is the part of txn.sh that loads r.Maps again from the restored
// files; a refused load makes txn.sh reload (urc).
func mapUndo(h Host, r *Runtime) string {
	var b strings.Builder
	for _, p := range r.Maps {
		fmt.Fprintf(&b, "%s || urc=1\n", mapLoadCall(h, p))
	}
	return b.String()
}
