package host

import (
	"fmt"
)

// HAProxy's server-state file (<stateDir>/server-state, named by the
// rendered config's server-state-file and loaded by every backend through
// load-server-state-from-file global) carries the servers' health across
// a reload: without it a new process starts every server UP, and sends
// requests to a dead node until `fall` checks have failed.
//
// HAProxy loads the file at every start and reload, whoever triggers it,
// and matches its lines by backend and server name (2.4 and later); a
// server it loads as DOWN needs `rise` good checks in the new process
// before it gets traffic again. So the file must hold the state of the
// process running just before lbc's reload, and nothing older:
//
//   - save-server-state writes a fresh dump, or, when the dump fails,
//     leaves only the version line: a reload must never load the states of
//     an earlier apply (a node DOWN then, healthy now, would be kept out of
//     the backend until its checks rise again, and be the only one there
//     after an apply that leaves it alone: 503 for every request);
//   - write-state, once the new process is verified, leaves only the
//     version line too, so that a reload lbc does not make (systemctl
//     reload or restart, a reboot) starts from the config, as HAProxy does
//     without a file, instead of from states hours old.
//
// A rollback reloads with the dump of its own transaction, which describes
// the config being restored.

// serverStateEmpty is a server-state file with its version line only:
// HAProxy loads no state from it and, unlike a missing or empty file,
// prints no notice.
const serverStateEmpty = `1\n`

// saveServerStateCmd dumps `show servers state` into the server-state file
// for the process the reload starts. It writes the file in place (no
// rename: one process fewer), under the device lock; only a reload that
// lbc does not make, at that very moment, could read it half written, and
// HAProxy skips a line it cannot parse. When the dump fails or does not
// start with the version line, it leaves the version-only file and fails,
// so the step's warning is shown. The version line is checked with the
// shell's read: no process.
//
// The dump goes through stateKeepHealth (awk), which drops what the
// runtime API set: HAProxy 2.6 gives a server the dumped user weight when
// its configured weight equals the dumped initial weight, and keeps a
// forced maintenance whatever the config says. After a runtime apply (the
// process started with weight 10, runs 11 as its file now says) a reload
// to a file that says 10 again would otherwise run 11. Only health (the
// operational and check columns) crosses the reload; weights and admin
// states come from the file.
//
// It also drops the whole line of a server whose dumped address or port
// differs from the one the staged file gives it (issue 12 item 6, haproxy
// #2103): HAProxy 2.6.12 takes the port of a state line over the
// config's (measured: a server set to another address and port on the
// socket comes back from a reload with the file's address and the
// socket's port), so an address set by hand, or by a runtime change that
// the file moved on from, would outlive lbc's reload.
func saveServerStateCmd(h Host) string {
	f := h.ServerStatePath()
	// As statsCmd, with the here-document on lbc_cli, before the pipe; its
	// body follows the line that holds the whole list.
	line := fmt.Sprintf("lbc_cli %s <<'LBC_CLI' | %s %s - > %s", q(h.SocketPath()), stateKeepHealth, q(staged(h.Config)), q(f))
	doc := "show servers state\nLBC_CLI\n"
	return fmt.Sprintf("%s{ %s && read -r lbc_l < %s && [ \"$lbc_l\" = 1 ]; } || { %s; false; }\n%s",
		cliFunc, line, q(f), clearServerStateCmd(h), doc)
}

// stateKeepHealth reads the staged haproxy.cfg (its first argument), then
// the `show servers state` dump (version 1: field 2 be_name, 4 srv_name,
// 5 srv_addr, 7 srv_admin_state, 8 srv_uweight, 9 srv_iweight, 19
// srv_port). From the file it keeps each server's address and port, by
// backend (a line that starts a section names it: backend or listen; any
// other section has none) and name; "[v6]:port" loses its brackets as the
// dump writes it. A dump line of a server whose address or port differs
// from the file's is dropped. In every other server line the user weight
// becomes the initial one, and the forced maintenance (0x01) and forced
// drain (0x08) bits of the admin state are cleared; the maintenance a
// config's `disabled` sets (0x04) stays, HAProxy compares it with the new
// config. mawk has no bit operators, hence the arithmetic. It is one
// line: the here-document of lbc_cli starts after it.
const stateKeepHealth = `awk 'FILENAME == ARGV[1] { if ($0 ~ /^[^ \t#]/) b = ($1 == "backend" || $1 == "listen") ? $2 : ""; else if ($1 == "server" && b != "" && NF >= 3) { a = $3; p = a; sub(/:[0-9]+$/, "", a); sub(/^.*:/, "", p); gsub(/^\[|\]$/, "", a); srv[b "/" $2] = a " " p }; next } FNR > 1 && $0 !~ /^#/ && NF >= 9 { k = $2 "/" $4; if ((k in srv) && srv[k] != $5 " " $19) next; a = $7 + 0; if (int(a / 8) % 2) a -= 8; if (a % 2) a -= 1; $7 = a; $8 = $9 } { print }'`

// clearServerStateCmd replaces the server-state file by the version-only
// one with a redirection (no process); it never fails. HAProxy reads the
// file only when it starts or reloads, which no step does meanwhile. It
// is one braced command: after `a && ` its `|| :` must not make a
// failure of a succeed (write-state once reported a state.json it could
// not write as committed, and the holder then rolled the host back).
func clearServerStateCmd(h Host) string {
	f := h.ServerStatePath()
	return fmt.Sprintf("{ { printf '%s' > %s; } 2>/dev/null || rm -f %s || :; }", serverStateEmpty, q(f), q(f))
}
