package host

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	"lbc/internal/shquote"
)

// q quotes one word: every value lbc puts into a remote command (paths,
// addresses, interface names, file contents) goes through it. The
// device's own reload and check commands are the one thing run as
// written: they are the operator's, and the schema keeps quotes, $, #,
// backslashes and control characters out of them.
var q = shquote.Quote

// mkdirCmd makes directory d (and its parents) unless it exists; the test
// is a builtin, so the common case runs no process.
func mkdirCmd(d string) string { return fmt.Sprintf("{ [ -d %s ] || mkdir -p %s; }", q(d), q(d)) }

// checkCmd runs a device's check command with the file appended, quoted.
// The command itself comes from the validated spec.
func checkCmd(check, file string) string { return check + " " + q(file) }

// writeFileCmd writes data to path with the shell's printf (no process),
// in pieces of at most 64 KiB each quoted as one word. A shell word cannot
// hold a NUL byte, and no file lbc writes has one.
func writeFileCmd(path, data string) (string, error) {
	if strings.IndexByte(data, 0) >= 0 {
		return "", fmt.Errorf("write %s: the file has a NUL byte", path)
	}
	const piece = 64 << 10
	var b strings.Builder
	b.WriteString("{ :")
	for len(data) > 0 {
		n := min(len(data), piece)
		b.WriteString("; printf '%s' ")
		b.WriteString(q(data[:n]))
		data = data[n:]
	}
	fmt.Fprintf(&b, "; } > %s", q(path))
	return b.String(), nil
}

func swapCmd(p string) string { return fmt.Sprintf("mv -f %s %s", q(staged(p)), q(p)) }

func removeCmd(paths ...string) string { return "rm -f " + shquote.Join(paths...) }

// VIP is one address lbc manages, written "addr/prefix dev iface" in plans
// and state.json.
type VIP struct {
	Prefix netip.Prefix
	Iface  string
}

var ifaceRE = regexp.MustCompile(`^[A-Za-z0-9_.:@-]{1,15}$`)

// ParseVIP reads "addr/prefix dev iface", refusing an interface name that
// is not one.
func ParseVIP(s string) (VIP, error) {
	a, iface, ok := strings.Cut(s, " dev ")
	if !ok {
		return VIP{}, fmt.Errorf("vip %q: want \"addr/prefix dev iface\"", s)
	}
	p, err := netip.ParsePrefix(a)
	if err != nil {
		return VIP{}, fmt.Errorf("vip %q: %w", s, err)
	}
	if !ifaceRE.MatchString(iface) {
		return VIP{}, fmt.Errorf("vip %q: bad interface name", s)
	}
	return VIP{p, iface}, nil
}

// VIPString writes a VIP as ParseVIP reads it.
func VIPString(addr netip.Addr, prefix int, iface string) string {
	return fmt.Sprintf("%s/%d dev %s", addr, prefix, iface)
}

// addVIPCmd adds addresses; `ip addr replace` is idempotent.
func addVIPCmd(h Host, vips []string) (string, error) {
	var cmds []string
	for _, s := range vips {
		v, err := ParseVIP(s)
		if err != nil {
			return "", err
		}
		cmds = append(cmds, fmt.Sprintf("%s addr replace %s dev %s", h.ip(), q(v.Prefix.String()), q(v.Iface)))
	}
	return strings.Join(cmds, " && "), nil
}

// delVIPCmd removes addresses; one already gone (ip exits 2) is fine.
func delVIPCmd(h Host, vips []string) (string, error) {
	var cmds []string
	for _, s := range vips {
		v, err := ParseVIP(s)
		if err != nil {
			return "", err
		}
		cmds = append(cmds, fmt.Sprintf("{ %s addr del %s dev %s || [ $? -eq 2 ]; }", h.ip(), q(v.Prefix.String()), q(v.Iface)))
	}
	return strings.Join(cmds, " && "), nil
}

// subnetSized reports whether any of vips has a prefix shorter than its
// address: deleting such an address may delete others of its subnet.
func subnetSized(vips []string) bool {
	for _, s := range vips {
		if v, err := ParseVIP(s); err != nil || v.Prefix.Bits() < v.Prefix.Addr().BitLen() {
			return true
		}
	}
	return false
}

// cliFunc defines lbc_cli SOCKET, which sends its stdin to HAProxy's
// stats socket and prints the answer, bounded by a 2 s timeout. It uses
// OpenBSD's netcat (Debian's netcat-openbsd) when the host has it and
// socat otherwise: both answer the same, and socat, linked with fifteen
// libraries (OpenSSL, Kerberos), costs the host three to four times the
// CPU of nc.openbsd per query (3.3 against 1.1 ms on the lab machine).
// `command -v` is a builtin: choosing costs no process. lbc_cli execs the
// client in the process that calls it: every call is in a subshell, a
// command substitution or the first command of a pipeline, whose fork
// then runs the client itself, without a second fork (a shell forks for
// a command a function runs, even the last one of a subshell). Called in
// a script's own shell, it would replace that shell: TestCliInASubshell
// checks every call in the golden scripts.
const cliFunc = `lbc_cli() { if command -v nc.openbsd >/dev/null 2>&1; then exec nc.openbsd -N -U -w 2 "$1"; else exec socat -t 2 stdio "UNIX-CONNECT:$1"; fi; }
`

// statsCmd sends one command to HAProxy's stats socket with lbc_cli
// (cliFunc, which the caller defines), with redirs (redirections of the
// answer) applied. The command goes in through a here-document (no
// process for it), so what follows statsCmd in a script must start on a
// new line.
func statsCmd(h Host, cmd, redirs string) string {
	return fmt.Sprintf("lbc_cli %s %s <<'LBC_CLI'\n%s\nLBC_CLI\n", q(h.SocketPath()), redirs, cmd)
}
