package reconcile

import (
	"fmt"
	"net/netip"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"lbc/internal/shquote"
	"lbc/schema"
)

// Host is what plan and apply need to reach and change one device, copied
// from the spec into the plan so that a saved plan can be applied exactly.
// It holds no secret: SSH keys and agents are the transport's.
type Host struct {
	Address  string `json:"address"`
	User     string `json:"user,omitempty"`
	Port     int    `json:"port,omitempty"`
	Sudo     bool   `json:"sudo,omitempty"`
	StateDir string `json:"stateDir"`

	Config string `json:"config"`
	Reload string `json:"reload"`
	Check  string `json:"check"`

	KeepalivedConfig string `json:"keepalivedConfig,omitempty"`
	KeepalivedReload string `json:"keepalivedReload,omitempty"`
	KeepalivedCheck  string `json:"keepalivedCheck,omitempty"`

	// IP is the ip(8) command; "ip" unless a test or host says otherwise.
	IP string `json:"ip,omitempty"`
}

func hostOf(d *schema.Device, ipCmd string) Host {
	if ipCmd == "" {
		ipCmd = "ip"
	}
	return Host{
		Address: d.Address, User: d.SSH.User, Port: d.SSH.Port, Sudo: d.SSH.Sudo,
		StateDir: d.StateDir,
		Config:   d.HAProxy.Config, Reload: d.HAProxy.Reload, Check: d.HAProxy.Check,
		KeepalivedConfig: d.Keepalived.Config, KeepalivedReload: d.Keepalived.Reload,
		KeepalivedCheck: d.Keepalived.Check,
		IP:              ipCmd,
	}
}

// device rebuilds the part of a schema.Device a Dialer needs.
func (h Host) device(name string) *schema.Device {
	return &schema.Device{
		Name: name, Address: h.Address,
		SSH:      schema.SSH{User: h.User, Port: h.Port, Sudo: h.Sudo},
		StateDir: h.StateDir,
		HAProxy:  schema.HAProxy{Config: h.Config, Reload: h.Reload, Check: h.Check},
		Keepalived: schema.Keepalived{
			Config: h.KeepalivedConfig, Reload: h.KeepalivedReload, Check: h.KeepalivedCheck,
		},
	}
}

func (h Host) ip() string {
	if h.IP == "" {
		return "ip"
	}
	return h.IP
}

// Paths on the host. Staged files sit beside the live one so that the swap
// is a rename within one directory.
func (h Host) statePath() string { return path.Join(h.StateDir, StateFile) }
func (h Host) lockPath() string  { return path.Join(h.StateDir, "lock") }
func (h Host) ownerPath() string { return path.Join(h.StateDir, "lock.owner") }
func (h Host) txnPath() string   { return path.Join(h.StateDir, "txn.sh") }
func (h Host) lastGood(f string) string {
	return path.Join(h.StateDir, "last-good", f)
}
func (h Host) socketPath() string      { return path.Join(h.StateDir, "haproxy.sock") }
func (h Host) serverStatePath() string { return path.Join(h.StateDir, "server-state") }
func staged(p string) string           { return p + ".lbc-new" }

var q = shquote.Quote

// readCmd prints, in one round trip, each file as a section
// "==lbc NAME present" + base64 + "==lbc NAME end" (or "==lbc NAME absent"),
// then "==lbc addr" and the output of `ip -j addr show`.
func readCmd(h Host, keepalived bool) string {
	var b strings.Builder
	b.WriteString(`sec() { if [ -e "$2" ]; then echo "==lbc $1 present"; base64 < "$2" || return 1; echo "==lbc $1 end"; else echo "==lbc $1 absent"; fi; }; `)
	fmt.Fprintf(&b, "sec config %s && sec state %s", q(h.Config), q(h.statePath()))
	if keepalived {
		fmt.Fprintf(&b, " && sec keepalived %s", q(h.KeepalivedConfig))
	}
	fmt.Fprintf(&b, " && echo '==lbc addr' && %s -j addr show", h.ip())
	return b.String()
}

// lockCmd takes the device lock and holds it while the session's stdin is
// open: flock runs `sh -s`, a shell that reads its commands from the
// session's stdin, as they come. The first ones are holderPrologue; then
// come the transaction's scripts (see holderScript). flock -o keeps the
// lock in flock itself, so that no daemon a reload starts holds it.
func lockCmd(h Host, wait time.Duration) string {
	mode := "-n"
	if wait > 0 {
		mode = "-w " + strconv.Itoa(int(max(wait.Round(time.Second), time.Second)/time.Second))
	}
	// exec: the login shell gives way to flock, one fork fewer.
	return fmt.Sprintf("%s && exec flock -o %s %s sh -s", mkdirCmd(h.StateDir), mode, q(h.lockPath()))
}

// holderPrologue is what the lock holder's shell runs first. It writes the
// owner, prints "locked", then reads the device as readCmd does (step
// stale-check, ended by "==lbc read ok" or "==lbc read failed"): the lock
// and the stale check cost one round trip. It defines lbc_run, which runs
// one script (holderScript) in a subshell (a fork, no exec) with stdin
// from /dev/null and prints, after it, "==lbc stderr TOKEN" and the
// script's stderr when it failed, and "==lbc exit TOKEN CODE". So a
// transaction costs one session, nothing it runs can overlap another
// script of it or the rollback below, and a script costs no process to
// receive it.
//
// When the shell exits (its stdin ended: the controller finished, died, or
// lost the connection; or a text it read did not parse) while a script is
// armed (<stateDir>/txn.sh, not empty), it runs that script: the host
// rolls itself back to the old state instead of staying half changed.
// Then it empties lock.owner (a redirection).
func holderPrologue(h Host, owner, token string, keepalived bool) string {
	return "trap '' HUP PIPE\n" + stepFunc +
		fmt.Sprintf("sd=%s; lbc_tok=%s\n", q(h.StateDir), q(token)) +
		`lbc_end() { if [ -s "$sd/txn.sh" ]; then sh "$sd/txn.sh" > "$sd/txn.log" 2>&1 && rm -f "$sd/txn.sh"; fi; : > "$sd/lock.owner"; }` + "\n" +
		"trap lbc_end EXIT\n" +
		fmt.Sprintf(`printf '%%s\n' %s > "$sd/lock.owner"; echo locked`, q(owner)) + "\n" +
		"lbc_step " + StepStaleCheck + "\n{ " + readCmd(h, keepalived) + "\n" +
		`} </dev/null && echo "==lbc read ok" || echo "==lbc read failed"` + "\n# end of step " + StepStaleCheck + "\n" +
		`lbc_run() { ( lbc_script ) </dev/null 2> "$sd/run.err"; lbc_rc=$?` + "\n" +
		`  if [ $lbc_rc != 0 ]; then echo "==lbc stderr $lbc_tok"; cat "$sd/run.err"; fi; echo "==lbc exit $lbc_tok $lbc_rc"; }` + "\n"
}

// holderScript is script as the lock holder receives it: the body of the
// function lbc_script, then the line that runs it. A text cut short
// anywhere fails to parse or does not run it, so nothing of a partial
// script runs.
func holderScript(script string) string {
	return "lbc_script() {\n" + script + "\n}\nlbc_run\n"
}

func ownerCmd(h Host) string { return "cat " + q(h.ownerPath()) + " 2>/dev/null || true" }

// mkdirCmd makes directory d (and its parents) unless it exists; the test
// is a builtin, so the common case runs no process.
func mkdirCmd(d string) string { return fmt.Sprintf("{ [ -d %s ] || mkdir -p %s; }", q(d), q(d)) }

// checkCmd runs a device's check command with the file appended, quoted.
// The command itself comes from the validated spec.
func checkCmd(check, file string) string { return check + " " + q(file) }

// keepLastGoodCmd keeps the live file as last-good, or removes a stale
// last-good copy when the live file is absent. f is the live file as the
// lock holder read it: under the lock, its bytes are the live file's, so
// last-good is written from them with the shell's printf (no process).
// A file a shell word cannot hold (a NUL byte, from a hand edit) is
// linked instead, or copied where the state directory is on another file
// system; the swap then renames the new file over the live name, so
// last-good keeps the old bytes either way.
func keepLastGoodCmd(live string, f File, good string) string {
	if !f.Exists {
		return "rm -f " + q(good)
	}
	dir := mkdirCmd(path.Dir(good))
	if w, err := writeFileCmd(good, string(f.Data)); err == nil {
		return dir + " && " + w
	}
	tmp := good + ".lbc-tmp"
	return fmt.Sprintf("%s && { ln -f %s %s 2>/dev/null || { cp %s %s && mv -f %s %s; }; }",
		dir, q(live), q(good), q(live), q(tmp), q(tmp), q(good))
}

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

// vip is one parsed "addr/prefix dev iface".
type vip struct {
	prefix netip.Prefix
	iface  string
}

var ifaceRE = regexp.MustCompile(`^[A-Za-z0-9_.:@-]{1,15}$`)

func parseVIP(s string) (vip, error) {
	a, iface, ok := strings.Cut(s, " dev ")
	if !ok {
		return vip{}, fmt.Errorf("vip %q: want \"addr/prefix dev iface\"", s)
	}
	p, err := netip.ParsePrefix(a)
	if err != nil {
		return vip{}, fmt.Errorf("vip %q: %w", s, err)
	}
	if !ifaceRE.MatchString(iface) {
		return vip{}, fmt.Errorf("vip %q: bad interface name", s)
	}
	return vip{p, iface}, nil
}

func vipString(addr netip.Addr, prefix int, iface string) string {
	return fmt.Sprintf("%s/%d dev %s", addr, prefix, iface)
}

// addVIPCmd adds addresses; `ip addr replace` is idempotent.
func addVIPCmd(h Host, vips []string) (string, error) {
	var cmds []string
	for _, s := range vips {
		v, err := parseVIP(s)
		if err != nil {
			return "", err
		}
		cmds = append(cmds, fmt.Sprintf("%s addr replace %s dev %s", h.ip(), q(v.prefix.String()), q(v.iface)))
	}
	return strings.Join(cmds, " && "), nil
}

// delVIPCmd removes addresses; one already gone (ip exits 2) is fine.
func delVIPCmd(h Host, vips []string) (string, error) {
	var cmds []string
	for _, s := range vips {
		v, err := parseVIP(s)
		if err != nil {
			return "", err
		}
		cmds = append(cmds, fmt.Sprintf("{ %s addr del %s dev %s || [ $? -eq 2 ]; }", h.ip(), q(v.prefix.String()), q(v.iface)))
	}
	return strings.Join(cmds, " && "), nil
}

// cliFunc defines lbc_cli SOCKET, which sends its stdin to HAProxy's
// stats socket and prints the answer, bounded by a 2 s timeout. It uses
// OpenBSD's netcat (Debian's netcat-openbsd) when the host has it and
// socat otherwise: both answer the same, and socat, linked with fifteen
// libraries (OpenSSL, Kerberos), costs the host three to four times the
// CPU of nc.openbsd per query (3.3 against 1.1 ms on the lab machine).
// `command -v` is a builtin: choosing costs no process.
const cliFunc = `lbc_cli() { if command -v nc.openbsd >/dev/null 2>&1; then nc.openbsd -N -U -w 2 "$1"; else socat -t 2 stdio "UNIX-CONNECT:$1"; fi; }
`

// statsCmd sends one command to HAProxy's stats socket with lbc_cli
// (cliFunc, which the caller defines), with redirs (redirections of the
// answer) applied. The command goes in through a here-document (no
// process for it), so what follows statsCmd in a script must start on a
// new line.
func statsCmd(h Host, cmd, redirs string) string {
	return fmt.Sprintf("lbc_cli %s %s <<'LBC_CLI'\n%s\nLBC_CLI\n", q(h.socketPath()), redirs, cmd)
}
