package reconcile

import (
	"net/netip"
	"testing"
)

func TestVerifyParsers(t *testing.T) {
	ss := parseSS([]byte("LISTEN 0 4096 198.18.1.1:80 0.0.0.0:*\nLISTEN 0 4096 [2001:db8::1]:443 [::]:*\nLISTEN 0 128 0.0.0.0%lo:22 0.0.0.0:*\nLISTEN 0 128 *:8080 *:*\n"))
	for _, s := range []string{"198.18.1.1:80", "[2001:db8::1]:443", "0.0.0.0:22", "0.0.0.0:8080", "[::]:8080"} {
		if !ss[netip.MustParseAddrPort(s)] {
			t.Errorf("ss: %s not listening", s)
		}
	}
	binds, err := configBinds([]byte("global\n    description lbc:0123\nfrontend a\n    bind 203.0.113.10:80\n    bind ipv6@[2001:db8::1]:443 ssl\n"))
	if err != nil || len(binds) != 2 || binds[0].String() != "203.0.113.10:80" || binds[1].String() != "[2001:db8::1]:443" {
		t.Errorf("binds %v %v", binds, err)
	}
	if d := configDescription([]byte("global\n    description lbc:0123\n")); d != "lbc:0123" {
		t.Errorf("description %q", d)
	}
	if p := infoField([]byte("Name: HAProxy\nPid: 42\ndescription: lbc:0123\n"), "Pid"); p != "42" {
		t.Errorf("pid %q", p)
	}
}
