package reconcile

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Verifier confirms that a reload took effect. A reload command's exit
// status proves nothing (Debian's `systemctl reload haproxy` reports
// success before HAProxy has read the file), so apply asks the host.
type Verifier interface {
	// Before records what runs before the reload ("" when nothing answers).
	Before(ctx context.Context, t Transport, h Host) (string, error)
	// After waits, bounded, until the host runs config, a process other
	// than before, and fails when it does not.
	After(ctx context.Context, t Transport, h Host, before string, config []byte) error
}

// HAProxyVerifier checks through the stats socket that the rendered config
// declares (<stateDir>/haproxy.sock) that a new HAProxy process answers,
// then with `ss -Hltn` that every bind address of the config is listening.
type HAProxyVerifier struct {
	Timeout  time.Duration // default 5s
	Interval time.Duration // default 200ms
}

// Before returns the Pid that `show info` reports, or "" when the socket
// does not answer (HAProxy not running yet).
func (v HAProxyVerifier) Before(ctx context.Context, t Transport, h Host) (string, error) {
	out, err := t.Run(ctx, socatCmd(h, "show info"), nil)
	if err != nil {
		return "", nil
	}
	return infoField(out, "Pid"), nil
}

// After polls until `show info` names a Pid other than before and every
// bind of config is listening, or the timeout passes.
func (v HAProxyVerifier) After(ctx context.Context, t Transport, h Host, before string, config []byte) error {
	timeout, interval := v.Timeout, v.Interval
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	if interval <= 0 {
		interval = 200 * time.Millisecond
	}
	binds, err := configBinds(config)
	if err != nil {
		return err
	}
	desc := configDescription(config)
	deadline := time.Now().Add(timeout)
	last := "haproxy did not answer on its stats socket"
	for {
		if ok, why := v.check(ctx, t, h, before, desc, binds); ok {
			return nil
		} else {
			last = why
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %s", timeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}

func (v HAProxyVerifier) check(ctx context.Context, t Transport, h Host, before, desc string, binds []netip.AddrPort) (bool, string) {
	out, err := t.Run(ctx, socatCmd(h, "show info"), nil)
	if err != nil {
		return false, "haproxy did not answer on its stats socket: " + err.Error()
	}
	pid := infoField(out, "Pid")
	if pid == "" {
		return false, "haproxy's show info named no Pid"
	}
	if pid == before {
		return false, "haproxy still runs the old process (pid " + pid + "): the new config was not loaded"
	}
	if got := infoField(out, "description"); desc != "" && got != desc {
		return false, fmt.Sprintf("haproxy runs config %q, not %q", got, desc)
	}
	out, err = t.Run(ctx, "ss -Hltn", nil)
	if err != nil {
		return false, "ss: " + err.Error()
	}
	listening := parseSS(out)
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
