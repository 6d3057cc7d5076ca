package reconcile

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Verifier confirms that a reload took effect. A reload command's exit
// status proves nothing (Debian's `systemctl reload haproxy` reports
// success before HAProxy has read the file), so apply asks the host. The
// waiting happens on the host, inside the transaction's script, so that
// it costs no round trip per poll.
type Verifier interface {
	// Before returns shell code that sets the variable lbc_before to what
	// runs before the reload ("" when nothing answers). It must not fail.
	Before(h Host) string
	// After returns shell code that waits, bounded, until the host runs
	// config in a process other than $lbc_before, and prints what it saw.
	After(h Host, config []byte) (string, error)
	// Confirm checks what After printed: nil when the host runs config.
	Confirm(out, config []byte) error
}

// HAProxyVerifier checks through the stats socket that the rendered config
// declares (<stateDir>/haproxy.sock) that a new HAProxy process runs the
// config (its `description lbc:<ConfigID>`), then with `ss -Hltn` that
// every bind address of the config is listening.
type HAProxyVerifier struct {
	Timeout  time.Duration // default 5s
	Interval time.Duration // default 50ms
}

// infoFunc defines lbc_info_get, which asks the stats socket `show info`
// into lbc_info and sets lbc_pid and lbc_desc from it with shell builtins
// only (the verify loop runs it every interval: one process a poll).
const infoFunc = `lbc_info_get() { lbc_info=$(%s 2>/dev/null); lbc_pid=; lbc_desc=
while IFS= read -r lbc_l; do case $lbc_l in
"Pid:"*) lbc_pid=${lbc_l#Pid:}; lbc_pid=${lbc_pid#"${lbc_pid%%%%[! ]*}"} ;;
"description:"*) lbc_desc=${lbc_l#description:}; lbc_desc=${lbc_desc#"${lbc_desc%%%%[! ]*}"} ;;
esac; done <<LBC_INFO_END
$lbc_info
LBC_INFO_END
}
`

// Before stores the Pid that `show info` reports.
func (v HAProxyVerifier) Before(h Host) string {
	return fmt.Sprintf(infoFunc, socatCmd(h, "show info")) + "  lbc_info_get; lbc_before=$lbc_pid"
}

// After polls `show info` on the host until it names a Pid other than
// $lbc_before and the config's description, or the timeout passes; then it
// prints the last answer and `ss -Hltn` for Confirm.
func (v HAProxyVerifier) After(h Host, config []byte) (string, error) {
	timeout, interval := v.Timeout, v.Interval
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	if interval <= 0 {
		interval = 50 * time.Millisecond
	}
	if _, err := configBinds(config); err != nil {
		return "", err
	}
	n := max(int(timeout/interval), 1)
	desc := configDescription(config)
	var b strings.Builder
	fmt.Fprintf(&b, infoFunc, socatCmd(h, "show info"))
	b.WriteString("  lbc_i=0; while :; do lbc_info_get\n")
	fmt.Fprintf(&b, `if [ -n "$lbc_pid" ] && [ "$lbc_pid" != "$lbc_before" ] && { [ -z %s ] || [ "$lbc_desc" = %s ]; }; then break; fi`+"\n", q(desc), q(desc))
	fmt.Fprintf(&b, "lbc_i=$((lbc_i+1)); [ $lbc_i -ge %d ] && break; sleep %.3f; done\n", n, interval.Seconds())
	fmt.Fprintf(&b, `echo "==lbc waited $lbc_i %s"; echo "==lbc before $lbc_before"; echo "==lbc info"; printf '%%s\n' "$lbc_info"; echo "==lbc ss"; ss -Hltn`, timeout)
	return b.String(), nil
}

// Confirm checks the output of After.
func (v HAProxyVerifier) Confirm(out, config []byte) error {
	binds, err := configBinds(config)
	if err != nil {
		return err
	}
	sec := sections(out)
	var waited string
	for l := range strings.Lines(string(out)) {
		if w, ok := strings.CutPrefix(strings.TrimSpace(l), "==lbc waited "); ok {
			waited = w
		}
	}
	before := ""
	for l := range strings.Lines(string(out)) {
		if b, ok := strings.CutPrefix(strings.TrimRight(l, "\n"), "==lbc before "); ok {
			before = strings.TrimSpace(b)
		}
	}
	if ok, why := checkRunning(sec["info"], sec["ss"], before, configDescription(config), binds); !ok {
		if f := strings.Fields(waited); len(f) == 2 {
			return fmt.Errorf("after %s: %s", f[1], why)
		}
		return errors.New(why)
	}
	return nil
}

// sections splits output at "==lbc NAME" lines.
func sections(out []byte) map[string][]byte {
	m := map[string][]byte{}
	cur := ""
	for l := range strings.Lines(string(out)) {
		if name, ok := strings.CutPrefix(strings.TrimRight(l, "\n"), "==lbc "); ok && !strings.Contains(name, " ") {
			cur = name
			continue
		}
		if cur != "" {
			m[cur] = append(m[cur], l...)
		}
	}
	return m
}

// checkRunning says whether info (`show info`) names a process other than
// before running the config described desc, and ss (`ss -Hltn`) shows
// every bind listening; else why not.
func checkRunning(info, ss []byte, before, desc string, binds []netip.AddrPort) (bool, string) {
	pid := infoField(info, "Pid")
	if pid == "" {
		return false, "haproxy did not answer on its stats socket"
	}
	if pid == before {
		return false, "haproxy still runs the old process (pid " + pid + "): the new config was not loaded"
	}
	if got := infoField(info, "description"); desc != "" && got != desc {
		return false, fmt.Sprintf("haproxy runs config %q, not %q", got, desc)
	}
	listening := parseSS(ss)
	for _, b := range binds {
		if !listening[b] && !listening[netip.AddrPortFrom(netip.IPv4Unspecified(), b.Port())] &&
			!listening[netip.AddrPortFrom(netip.IPv6Unspecified(), b.Port())] {
			return false, "frontend " + b.String() + " is not listening"
		}
	}
	return true, ""
}

// infoField returns the value of "Name: value" in `show info` output.
func infoField(out []byte, name string) string {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+": "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// configDescription returns the global description of a rendered config
// (the compiler writes "description lbc:<ConfigID>"), or "".
func configDescription(cfg []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(cfg))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == "description" {
			return f[1]
		}
	}
	return ""
}

// configBinds returns the address:port of every `bind` line of a config.
func configBinds(cfg []byte) ([]netip.AddrPort, error) {
	var out []netip.AddrPort
	sc := bufio.NewScanner(bytes.NewReader(cfg))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[0] != "bind" {
			continue
		}
		a := f[1]
		for _, p := range []string{"ipv4@", "ipv6@"} {
			a = strings.TrimPrefix(a, p)
		}
		i := strings.LastIndexByte(a, ':')
		if i < 0 {
			return nil, fmt.Errorf("verify: bind %q: no port", f[1])
		}
		host := strings.Trim(a[:i], "[]")
		addr, err := netip.ParseAddr(host)
		if host == "" || host == "*" {
			addr, err = netip.IPv4Unspecified(), nil
		}
		if err != nil {
			continue // a unix socket or a name: not checked
		}
		var port uint16
		if _, err := fmt.Sscanf(a[i+1:], "%d", &port); err != nil {
			return nil, fmt.Errorf("verify: bind %q: bad port", f[1])
		}
		out = append(out, netip.AddrPortFrom(addr.Unmap(), port))
	}
	return out, nil
}

// parseSS reads `ss -Hltn` into the set of listening address:ports.
func parseSS(out []byte) map[netip.AddrPort]bool {
	m := map[netip.AddrPort]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 {
			continue
		}
		local := f[3]
		i := strings.LastIndexByte(local, ':')
		if i < 0 {
			continue
		}
		host, port := strings.Trim(local[:i], "[]"), local[i+1:]
		if j := strings.IndexByte(host, '%'); j >= 0 {
			host = host[:j]
		}
		var addr netip.Addr
		if host == "*" {
			addr = netip.IPv4Unspecified()
			var p uint16
			if _, err := fmt.Sscanf(port, "%d", &p); err == nil {
				m[netip.AddrPortFrom(netip.IPv6Unspecified(), p)] = true
			}
		} else {
			var err error
			if addr, err = netip.ParseAddr(host); err != nil {
				continue
			}
		}
		var p uint16
		if _, err := fmt.Sscanf(port, "%d", &p); err != nil {
			continue
		}
		m[netip.AddrPortFrom(addr.Unmap(), p)] = true
	}
	return m
}
