package schema

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// The CUE schema's #Path is the Go rule's character set: one rule.
func TestPathRuleIsTheSchemas(t *testing.T) {
	c, err := loadSchema()
	if err != nil {
		t.Fatal(err)
	}
	want := "^/[" + PathChars + "]{0," + strconv.Itoa(MaxPathLen-1) + "}$"
	for re, desc := range c.regexes {
		if strings.HasPrefix(desc, "must be an absolute path") && re != want {
			t.Errorf("schema.cue #Path is %q, the Go rule %q", re, want)
		}
	}
	if _, ok := c.regexes[want]; !ok {
		t.Errorf("schema.cue has no #Path %q", want)
	}
	// The schema's default stateDir passes the Go rule.
	if err := CheckStateDir(c.device.StateDir); err != nil {
		t.Errorf("default stateDir %q: %v", c.device.StateDir, err)
	}
}

func TestCheckPath(t *testing.T) {
	for p, ok := range map[string]bool{
		"/etc/haproxy/haproxy.cfg":               true,
		"/srv/lb_1/conf-2.cfg":                   true,
		"/var/lib/lbc,ipv4@0.0.0.0:9999":         false, // a second stats socket on TCP
		"/abns@lbc":                              false,
		"abns@lbc":                               false,
		"/a%b":                                   false,
		"/a+b":                                   false,
		"/a=b":                                   false,
		"/a:b":                                   false,
		"/a b":                                   false,
		"/a\nb":                                  false,
		"/a/../b":                                false,
		"/a//b":                                  false,
		"/a/":                                    false,
		"/":                                      false,
		"":                                       false,
		"/" + strings.Repeat("a", MaxPathElem):   true,
		"/" + strings.Repeat("a", MaxPathElem+1): false,
		strings.Repeat("/aaaaaaaa", 111):         true, // 999 bytes
	} {
		err := CheckPath(p)
		if (err == nil) != ok {
			t.Errorf("CheckPath(%q) = %v, want ok %v", p, err, ok)
		}
	}
	if err := CheckPath(strings.Repeat("/aaaaaaaa", 125)); err == nil || !strings.Contains(err.Error(), "longer than 1000 bytes") {
		t.Errorf("CheckPath of 1125 bytes = %v", err)
	}
}

func TestCheckStateDir(t *testing.T) {
	max := "/var/lib/" + strings.Repeat("a", MaxStateDirLen-len("/var/lib/"))
	for p, ok := range map[string]bool{
		"/var/lib/lbc":                  true,
		"/tmp/lbc-lab-x-123/x-d1/state": true, // the lab's
		"/tmp/lbc":                      true, // the host side checks owner and mode
		max:                             true,
		max + "a":                       false,
		"/tmp":                          false,
		"/var/tmp":                      false,
		"/dev/shm":                      false,
		"/dev/shm/lbc":                  false,
		"/run/user":                     false,
		"/run/user/1000":                false,
		"/run/lbc":                      true,
		"/":                             false,
		"/etc":                          false,
		"/var/lib":                      false,
		"/proc/1":                       false,
		"/sys":                          false,
		"/var/lib/lbc,ipv4@0.0.0.0:1":   false,
	} {
		err := CheckStateDir(p)
		if (err == nil) != ok {
			t.Errorf("CheckStateDir(%q) = %v, want ok %v", p, err, ok)
		}
	}
	if len(max)+len("/"+SocketName) != 107 {
		t.Errorf("the longest stateDir makes a socket path of %d bytes, want 107", len(max)+len("/"+SocketName))
	}
}

func TestCheckDuration(t *testing.T) {
	for d, ok := range map[time.Duration]bool{
		time.Millisecond:                  true,
		time.Microsecond:                  true, // rendered as 1ms
		MaxHAProxyTimer:                   true,
		MaxHAProxyTimer + time.Nanosecond: false,
		1000 * time.Hour:                  false,
		0:                                 false,
		-time.Second:                      false,
	} {
		if err := CheckDuration(d); (err == nil) != ok {
			t.Errorf("CheckDuration(%s) = %v, want ok %v", d, err, ok)
		}
	}
}

// HAProxy itself takes MaxHAProxyTimer and refuses one millisecond more:
// the rule is HAProxy's limit, not a guess.
func TestMaxHAProxyTimerIsHAProxys(t *testing.T) {
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("haproxy is not installed (CI is set: not skipping)")
		}
		t.Skip("haproxy is not installed: skipping")
	}
	max := int64(MaxHAProxyTimer / time.Millisecond)
	for _, c := range []struct {
		ms int64
		ok bool
	}{{max, true}, {max + 1, false}} {
		cfg := "defaults\n    mode http\n    timeout connect " + strconv.FormatInt(c.ms, 10) + "ms\n    timeout client 1s\n    timeout server 1s\n" +
			"frontend f\n    bind 127.0.0.1:8080\n    default_backend b\nbackend b\n    server s 127.0.0.1:8081\n"
		f := filepath.Join(t.TempDir(), "h.cfg")
		if err := os.WriteFile(f, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bin, "-c", "-f", f).CombinedOutput()
		if (err == nil) != c.ok {
			t.Errorf("haproxy -c with timeout connect %dms: %v, want ok %v\n%s", c.ms, err, c.ok, out)
		}
	}
}

func TestCheckVIP(t *testing.T) {
	for s, ok := range map[string]bool{
		"203.0.113.10":        true,
		"2001:db8::10":        true,
		"127.0.0.1":           false,
		"127.8.9.10":          false,
		"::1":                 false,
		"169.254.0.5":         false,
		"fe80::5":             false,
		"224.0.0.18":          false,
		"ff05::2":             false,
		"255.255.255.255":     false,
		"0.0.0.0":             false,
		"::":                  false,
		"::ffff:203.0.113.10": false,
		"::ffff:127.0.0.1":    false,
	} {
		if err := CheckVIP(netip.MustParseAddr(s)); (err == nil) != ok {
			t.Errorf("CheckVIP(%s) = %v, want ok %v", s, err, ok)
		}
	}
	if CheckVIP(netip.Addr{}) == nil {
		t.Error("CheckVIP of the zero Addr passed")
	}
	n := netip.MustParsePrefix("203.0.113.0/24")
	for s, ok := range map[string]bool{
		"203.0.113.255": false, "203.0.113.254": true, "203.0.113.0": true, "198.51.100.255": true,
		"::ffff:203.0.113.255": false,
	} {
		if err := CheckVIPInNetwork(netip.MustParseAddr(s), n); (err == nil) != ok {
			t.Errorf("CheckVIPInNetwork(%s, %s) = %v, want ok %v", s, n, err, ok)
		}
	}
	for _, p := range []string{"192.0.2.0/31", "192.0.2.1/32", "2001:db8::/64"} {
		n := netip.MustParsePrefix(p)
		last := n.Addr()
		for a := n.Addr(); n.Contains(a); a = a.Next() {
			last = a
			if a.Is6() && a != n.Addr() {
				break
			}
		}
		if err := CheckVIPInNetwork(last, n); err != nil {
			t.Errorf("CheckVIPInNetwork(%s, %s) = %v: no broadcast in that network", last, n, err)
		}
	}
	if !SameAddr(netip.MustParseAddr("::ffff:203.0.113.10"), netip.MustParseAddr("203.0.113.10")) {
		t.Error("SameAddr of a mapped address and its IPv4 address is false")
	}
}

func TestQuote(t *testing.T) {
	if got := Quote("abc"); got != `"abc"` {
		t.Errorf("Quote = %s", got)
	}
	long := strings.Repeat("x", 50<<20)
	got := Quote(long)
	if len(got) > 120 || !strings.HasSuffix(got, "... (52428800 bytes)") {
		t.Errorf("Quote of 50 MB = %d bytes: %.200s", len(got), got)
	}
	// Never cuts a UTF-8 sequence in two.
	if got := Quote(strings.Repeat("é", 100)); strings.Contains(got, `\x`) {
		t.Errorf("Quote cut a rune: %s", got)
	}
}

// A huge value is never echoed whole in an error, whether CUE's message
// or lbc's own quotes it.
func TestLongValueShortened(t *testing.T) {
	big := strings.Repeat("x", 5<<20)
	fsys := fstest.MapFS{
		"b.cue": {Data: []byte(`balancers: web: {vips: [{address: "203.0.113.10", port: 80}], nodes: [{address: "198.51.100.1", port: 80}], tenant: "` + big + `"}` + "\n")},
		"d.cue": {Data: []byte(`devices: "lb-a1": {address: "192.0.2.1", stateDir: "/` + big + `"}` + "\n")},
		"h.cue": {Data: []byte(`balancers: api: {vips: [{address: "203.0.113.11", port: 80}], nodes: [{address: "198.51.100.1", port: 80}], healthMonitor: interval: "` + strings.Repeat("1", 1<<20) + `s"}` + "\n")},
	}
	_, err := Load(context.Background(), fsys)
	if err == nil {
		t.Fatal("Load succeeded")
	}
	msg := err.Error()
	if len(msg) > 2000 {
		t.Fatalf("error of %d bytes:\n%.600s", len(msg), msg)
	}
	for _, want := range []string{`b.cue:1:`, `... (5242880 bytes): must be a name`, `d.cue:1:`, `... (5242881 bytes): must be an absolute path`, `h.cue:1:`} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
}

// CheckRegex parses each distinct expression once (the same error value
// comes back for the same text) and keeps at most maxRegexChecks of them.
func TestCheckRegexCached(t *testing.T) {
	e1, e2 := CheckRegex("^/(a+)+cached"), CheckRegex("^/(a+)+cached")
	if e1 == nil || e1 != e2 {
		t.Fatalf("CheckRegex twice: %v and %v, want the same error value (cached)", e1, e2)
	}
	if err := CheckRegex("^/v[0-9]+/cached"); err != nil {
		t.Fatalf("CheckRegex: %v", err)
	}
	for i := 0; i < maxRegexChecks+10; i++ {
		_ = CheckRegex("^/x" + strconv.Itoa(i))
	}
	n := 0
	regexChecks.Range(func(any, any) bool { n++; return true })
	if n > maxRegexChecks {
		t.Errorf("the cache holds %d expressions, more than %d", n, maxRegexChecks)
	}
}
