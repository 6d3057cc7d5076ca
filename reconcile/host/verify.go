package host

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Verifier confirms that a reload took effect. A reload command's exit
// status proves nothing (Debian's `systemctl reload haproxy` reports
// success before HAProxy has read the file), so apply asks the host. The
// waiting and the verdict happen on the host, inside the transaction's
// script: they cost no round trip, and the script goes on to commit only
// when the new config runs.
type Verifier interface {
	// Before returns shell code that sets the variable lbc_before to what
	// runs before the reload ("" when nothing answers). It must not fail.
	Before(h Host) string
	// After returns shell code that waits, bounded, until the host runs
	// config in a process other than $lbc_before, and fails, saying why
	// on stderr, when it does not.
	After(h Host, config []byte) (string, error)
	// NeedsBefore reports whether After, verifying new after old, needs
	// what Before records; when it does not, a change leaves Before out.
	NeedsBefore(old, new []byte) bool
}

// HAProxyVerifier checks through the stats socket that the rendered config
// declares (<stateDir>/haproxy.sock) that a new HAProxy process runs the
// config (its `description lbc:<ConfigID>`) and has a listener on every
// bind address of the config (its stats rows, option socket-stats), in
// one query a poll; for a config without socket-stats it asks `ss -Hltn`
// which addresses listen.
type HAProxyVerifier struct {
	Timeout  time.Duration // default 5s
	Interval time.Duration // default 50ms
	// First is the wait before the first poll, default 100ms: a reload
	// re-executes HAProxy's master (twice, in 2.6) before the new worker
	// answers, 50 to 100 ms on the lab machine under load, and a poll that
	// comes too early costs a stats query and a wait more.
	First time.Duration
}

// infoFunc defines lbc_cli (cliFunc) and lbc_info_get, which asks the
// stats socket `show info` and the listeners' stats rows (`show stat -1 8
// -1`: one a bind, with its address, when the config sets option
// socket-stats) in one query into lbc_info, and sets lbc_pid and lbc_desc
// from the info part with shell builtins only (the verify loop runs it
// every interval: one process a poll).
const infoFunc = cliFunc + `lbc_info_get() { lbc_info=$(%s); lbc_pid=; lbc_desc=
while IFS= read -r lbc_l; do case $lbc_l in
"Pid:"*) lbc_pid=${lbc_l#Pid:}; lbc_pid=${lbc_pid#"${lbc_pid%%%%[! ]*}"} ;;
"description:"*) lbc_desc=${lbc_l#description:}; lbc_desc=${lbc_desc#"${lbc_desc%%%%[! ]*}"} ;;
"") break ;;
esac; done <<LBC_INFO_END
$lbc_info
LBC_INFO_END
}
`

// infoQuery is what lbc_info_get asks the stats socket.
const infoQuery = "show info;show stat -1 8 -1"

// NeedsBefore reports whether verifying new after old needs the Pid that
// runs before the reload: when new declares a description that old does
// not, the new description on the stats socket proves by itself that a
// new process loaded new (a process keeps its config), and the query is
// left out. A config whose description is old's (a change of its header
// only) needs it, and so does one without a description.
func (v HAProxyVerifier) NeedsBefore(old, new []byte) bool {
	n, _ := readConfig(new)
	o, _ := readConfig(old)
	return n.desc == "" || n.desc == o.desc
}

// Before stores the Pid that `show info` reports.
func (v HAProxyVerifier) Before(h Host) string {
	return fmt.Sprintf(infoFunc, statsCmd(h, infoQuery, "2>/dev/null")) + "  lbc_info_get; lbc_before=$lbc_pid"
}

// After waits first (a reload signal returns before HAProxy has re-read
// anything), then polls `show info` on the host until it names a Pid other
// than $lbc_before and the config's description, or the timeout passes;
// then it checks that every bind of the config listens: in the listener
// rows of that same answer, or with `ss -Hltn` for a config without
// option socket-stats.
func (v HAProxyVerifier) After(h Host, config []byte) (string, error) {
	timeout, interval := v.Timeout, v.Interval
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	if interval <= 0 {
		interval = 50 * time.Millisecond
	}
	first := v.First
	if first <= 0 {
		first = 2 * interval
	}
	facts, err := readConfig(config)
	if err != nil {
		return "", err
	}
	binds := facts.binds
	n := max(int(timeout/interval), 1)
	desc := facts.desc
	var b strings.Builder
	fmt.Fprintf(&b, infoFunc, statsCmd(h, infoQuery, "2>/dev/null"))
	fmt.Fprintf(&b, "  lbc_i=0; lbc_w=%.3f; while :; do sleep $lbc_w; lbc_w=%.3f; lbc_info_get\n", first.Seconds(), interval.Seconds())
	// A config without a description is proven by the new Pid alone.
	sameDesc := ""
	if desc != "" {
		sameDesc = fmt.Sprintf(` && [ "$lbc_desc" = %s ]`, q(desc))
	}
	fmt.Fprintf(&b, `if [ -n "$lbc_pid" ] && [ "$lbc_pid" != "$lbc_before" ]%s; then break; fi`+"\n", sameDesc)
	fmt.Fprintf(&b, "lbc_i=$((lbc_i+1)); [ $lbc_i -ge %d ] && break; done\n", n)
	fmt.Fprintf(&b, `if [ -z "$lbc_pid" ]; then echo "after %s: haproxy did not answer on its stats socket" >&2; false`+"\n", timeout)
	fmt.Fprintf(&b, `elif [ "$lbc_pid" = "$lbc_before" ]; then echo "after %s: haproxy still runs the old process (pid $lbc_pid): the new config was not loaded" >&2; false`+"\n", timeout)
	if desc != "" {
		fmt.Fprintf(&b, `elif [ "$lbc_desc" != %s ]; then printf 'after %s: haproxy runs config "%%s", not "%%s"\n' "$lbc_desc" %s >&2; false`+"\n", q(desc), timeout, q(desc))
	}
	if len(binds) == 0 {
		b.WriteString("else :\nfi")
		return b.String(), nil
	}
	if facts.socketStats {
		// The listeners' rows came with the last answer: the process
		// that runs config listens on every bind (a listener's row names
		// its address between commas).
		b.WriteString("else :")
		for _, ap := range binds {
			fmt.Fprintf(&b, " &&\n  case \"$lbc_info\" in *%s*) ;; *) echo %s >&2; false ;; esac",
				q(","+ap.String()+","), q("frontend "+ap.String()+" is not listening (no listener in haproxy's stats)"))
		}
		b.WriteString("\nfi")
		return b.String(), nil
	}
	b.WriteString("else lbc_ss=$(ss -Hltn) || { echo 'ss -Hltn failed' >&2; false; }")
	for _, ap := range binds {
		a, p := ap.String(), strconv.Itoa(int(ap.Port()))
		// ss prints the local address between blanks; a wildcard bind
		// listens for every address of its port.
		fmt.Fprintf(&b, " &&\n  case \"$lbc_ss\" in *%s*|*%s*|*%s*|*%s*) ;; *) echo %s >&2; false ;; esac",
			q(" "+a+" "), q(" 0.0.0.0:"+p+" "), q(" *:"+p+" "), q(" [::]:"+p+" "), q("frontend "+a+" is not listening"))
	}
	b.WriteString("\nfi")
	return b.String(), nil
}

// configFacts is what verifying a config needs to know of it.
type configFacts struct {
	desc  string           // the global description ("" when none)
	binds []netip.AddrPort // every bind with an IP address
	// socketStats: defaults set option socket-stats (as every config lbc
	// renders does), so the stats socket lists every listener with its
	// address; a config without it (an older lbc's, being rolled back to)
	// is checked with ss.
	socketStats bool
}

// readConfig reads cfg's facts in one pass. On a bind it cannot parse it
// returns the facts read so far with the error.
func readConfig(cfg []byte) (configFacts, error) {
	var c configFacts
	sc := bufio.NewScanner(bytes.NewReader(cfg))
	section := ""
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if line[0] != ' ' && line[0] != '\t' {
			section = f[0]
			continue
		}
		switch {
		case len(f) == 2 && f[0] == "description" && c.desc == "":
			c.desc = f[1]
		case section == "defaults" && len(f) == 2 && f[0] == "option" && f[1] == "socket-stats":
			c.socketStats = true
		case len(f) >= 2 && f[0] == "bind":
			b, ok, err := bindAddr(f[1])
			if err != nil {
				return c, err
			}
			if ok {
				c.binds = append(c.binds, b)
			}
		}
	}
	return c, nil
}

// bindAddr parses the address of a bind line; ok is false for a unix
// socket or a name (not checked).
func bindAddr(a0 string) (netip.AddrPort, bool, error) {
	a := a0
	for _, p := range []string{"ipv4@", "ipv6@"} {
		a = strings.TrimPrefix(a, p)
	}
	i := strings.LastIndexByte(a, ':')
	if i < 0 {
		return netip.AddrPort{}, false, fmt.Errorf("verify: bind %q: no port", a0)
	}
	host := strings.Trim(a[:i], "[]")
	addr, err := netip.ParseAddr(host)
	if host == "" || host == "*" {
		addr, err = netip.IPv4Unspecified(), nil
	}
	if err != nil {
		return netip.AddrPort{}, false, nil
	}
	var port uint16
	if _, err := fmt.Sscanf(a[i+1:], "%d", &port); err != nil {
		return netip.AddrPort{}, false, fmt.Errorf("verify: bind %q: bad port", a0)
	}
	return netip.AddrPortFrom(addr.Unmap(), port), true, nil
}
