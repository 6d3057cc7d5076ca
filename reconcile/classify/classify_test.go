package classify

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"lbc/compiler"
	"lbc/schema"
)

// A balancer with three nodes (weights 1, 2, 3), http, roundrobin.
func web(mod ...func(*schema.Balancer)) *schema.Balancer {
	b := &schema.Balancer{
		Name: "web", Tenant: "t", Protocol: "http", Algorithm: "roundrobin",
		VIPs:          []schema.VIP{{Address: netip.MustParseAddr("203.0.113.10"), Port: 80}},
		HealthMonitor: schema.HealthMonitor{Type: "tcp", Interval: 2 * time.Second, Timeout: time.Second, Rise: 2, Fall: 3},
		DrainTimeout:  30 * time.Second,
	}
	for i := 1; i <= 3; i++ {
		b.Nodes = append(b.Nodes, node(i, i))
	}
	for _, m := range mod {
		m(b)
	}
	return b
}

func node(i, weight int) schema.Node {
	return schema.Node{Address: netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), Port: 8080, Weight: weight, State: schema.NodeActive}
}

// render renders a device's haproxy.cfg carrying bs, as the compiler does.
func render(t testing.TB, rev string, bs ...*schema.Balancer) []byte {
	t.Helper()
	dev := &schema.Device{Name: "lb-a1", StateDir: "/var/lib/lbc"}
	cfg, err := compiler.RenderHAProxy(dev, bs, nil, compiler.Options{Version: "v0.0.0-test", Revision: rev})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

const rev1, rev2 = "1111111111111111111111111111111111111111", "2222222222222222222222222222222222222222"

func ops(r Result) []string {
	var out []string
	for _, o := range r.Ops {
		out = append(out, o.String())
	}
	return out
}

// Each operation kind, from real renderings of a spec before and after.
func TestRuntimeOps(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*schema.Balancer)
		want []string
	}{
		{"weight", func(b *schema.Balancer) { b.Nodes[0].Weight = 3 },
			[]string{"be_web/198.51.100.1_8080 weight 1 → 3"}},
		{"drain state", func(b *schema.Balancer) { b.Nodes[1].State = schema.NodeDrain },
			[]string{"be_web/198.51.100.2_8080 drain (weight 2 → 0)"}},
		{"maint", func(b *schema.Balancer) { b.Nodes[2].State = schema.NodeMaint },
			[]string{"be_web/198.51.100.3_8080 state ready → maint"}},
		{"add", func(b *schema.Balancer) { b.Nodes = append(b.Nodes, node(9, 5)) },
			[]string{"add server be_web/198.51.100.9_8080 198.51.100.9:8080 weight 5 check inter 2s fall 3 rise 2"}},
		{"del", func(b *schema.Balancer) { b.Nodes = b.Nodes[1:] },
			[]string{"del server be_web/198.51.100.1_8080 (after a drain)"}},
		{"replace a node", func(b *schema.Balancer) { b.Nodes[1] = node(7, 2) },
			[]string{"add server be_web/198.51.100.7_8080 198.51.100.7:8080 weight 2 check inter 2s fall 3 rise 2",
				"del server be_web/198.51.100.2_8080 (after a drain)"}},
		{"several", func(b *schema.Balancer) {
			b.Nodes[0].Weight, b.Nodes[2].State = 10, schema.NodeMaint
			b.Nodes = append(b.Nodes, node(8, 1))
		}, []string{"be_web/198.51.100.1_8080 weight 1 → 10", "be_web/198.51.100.3_8080 state ready → maint",
			"add server be_web/198.51.100.8_8080 198.51.100.8:8080 weight 1 check inter 2s fall 3 rise 2"}},
		{"back from maint and drain", nil, nil}, // filled below
		{"static weight to 0", func(b *schema.Balancer) { b.Algorithm = "static-rr"; b.Nodes[0].Weight = 0 },
			[]string{"be_web/198.51.100.1_8080 drain (weight 1 → 0)"}},
		{"static del", func(b *schema.Balancer) { b.Algorithm = "source"; b.Protocol = "tcp"; b.Nodes = b.Nodes[:2] },
			[]string{"del server be_web/198.51.100.3_8080 (after a drain)"}},
		{"first: add at the end", func(b *schema.Balancer) { b.Algorithm = "first"; b.Nodes = append(b.Nodes, node(9, 1)) },
			[]string{"add server be_web/198.51.100.9_8080 198.51.100.9:8080 weight 1 check inter 2s fall 3 rise 2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, after := web(), web()
			if tc.name == "back from maint and drain" {
				before.Nodes[0].State, before.Nodes[1].State = schema.NodeMaint, schema.NodeDrain
				tc.want = []string{"be_web/198.51.100.1_8080 state maint → ready", "be_web/198.51.100.2_8080 weight 0 → 2"}
			} else {
				tc.mod(after)
			}
			// Static algorithms: both sides use the same one.
			before.Algorithm, before.Protocol = after.Algorithm, after.Protocol
			r := Change(render(t, rev1, before), render(t, rev2, after), true)
			if r.Class != Runtime || r.Reason != "" {
				t.Fatalf("class %s (%s), want runtime", r.Class, r.Reason)
			}
			if got := ops(r); !slices.Equal(got, tc.want) {
				t.Errorf("ops\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// Each reason to reload.
func TestReload(t *testing.T) {
	base := render(t, rev1, web())
	for _, tc := range []struct {
		name    string
		live    []byte
		trusted bool
		mod     func(*schema.Balancer)
		reason  string
	}{
		{"no live file", nil, true, func(*schema.Balancer) {}, "no haproxy.cfg on the host"},
		{"not applied by lbc last", base, false, func(b *schema.Balancer) { b.Nodes[0].Weight = 3 }, "the live haproxy.cfg is not the one lbc applied last"},
		{"edited by hand", bytes.Replace(base, []byte("weight 2"), []byte("weight 7"), 1), true, func(b *schema.Balancer) { b.Nodes[0].Weight = 3 },
			"the live haproxy.cfg is not lbc's own rendering: parse header: content is sha256:"},
		{"not lbc's", []byte("global\n    daemon\n"), true, func(*schema.Balancer) {}, "the live haproxy.cfg is not lbc's own rendering: parse header: not an lbc header"},
		{"algorithm", base, true, func(b *schema.Balancer) { b.Algorithm = "leastconn" }, `backend be_web: "balance leastconn" is new or changed`},
		{"health monitor", base, true, func(b *schema.Balancer) { b.HealthMonitor.Interval = 5 * time.Second }, `backend be_web: "default-server inter 5s fall 3 rise 2" is new or changed`},
		{"new VIP", base, true, func(b *schema.Balancer) {
			b.VIPs = append(b.VIPs, schema.VIP{Address: netip.MustParseAddr("203.0.113.11"), Port: 80})
		}, "frontend fe_web_203.0.113.11_80 is new"},
		{"timeouts", base, true, func(b *schema.Balancer) { b.Timeouts = &schema.Timeouts{Client: time.Minute} }, `frontend fe_web_203.0.113.10_80: "timeout client 60s" is new or changed`},
		{"maxconn", base, true, func(b *schema.Balancer) { b.Nodes[0].Maxconn = 10 }, "backend be_web: server 198.51.100.1_8080: maxconn changes"},
		{"backup", base, true, func(b *schema.Balancer) { b.Nodes[2].Backup = true }, "backend be_web: server 198.51.100.3_8080: backup changes"},
		{"check", base, true, func(b *schema.Balancer) { b.HealthMonitor.Type = "none" }, `backend be_web: "load-server-state-from-file none" is new or changed`},
		{"reorder", base, true, func(b *schema.Balancer) { b.Nodes[0], b.Nodes[1] = b.Nodes[1], b.Nodes[0] }, "backend be_web: servers are reordered"},
		{"static weight", render(t, rev1, web(func(b *schema.Balancer) { b.Algorithm = "static-rr" })), true,
			func(b *schema.Balancer) { b.Algorithm = "static-rr"; b.Nodes[0].Weight = 4 },
			"backend be_web: balance static-rr is static: at runtime a weight goes only to 0 or back to the weight HAProxy started with"},
		{"static add", render(t, rev1, web(func(b *schema.Balancer) { b.Algorithm = "uri" })), true,
			func(b *schema.Balancer) { b.Algorithm = "uri"; b.Nodes = append(b.Nodes, node(9, 1)) },
			"backend be_web: balance uri is static: HAProxy 2.6 adds servers only to backends of a dynamic algorithm"},
		{"cookie add", render(t, rev1, web(func(b *schema.Balancer) { b.Persistence = &schema.Persistence{Type: "cookie", Cookie: "SRV"} })), true,
			func(b *schema.Balancer) {
				b.Persistence = &schema.Persistence{Type: "cookie", Cookie: "SRV"}
				b.Nodes = append(b.Nodes, node(9, 1))
			}, "backend be_web: cookie persistence: HAProxy 2.6 cannot add a server with a cookie at runtime"},
		{"first: add before", render(t, rev1, web(func(b *schema.Balancer) { b.Algorithm = "first" })), true,
			func(b *schema.Balancer) {
				b.Algorithm = "first"
				b.Nodes = append([]schema.Node{node(9, 1)}, b.Nodes...)
			}, "backend be_web: balance first uses servers in file order: a server added before an existing one needs a reload"},
		{"new balancer", base, true, nil, "frontend fe_api_203.0.113.20_80 is new"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var bs []*schema.Balancer
			if tc.mod != nil {
				bs = []*schema.Balancer{web(tc.mod)}
			} else {
				api := web(func(b *schema.Balancer) {
					b.Name = "api"
					b.VIPs[0].Address = netip.MustParseAddr("203.0.113.20")
				})
				bs = []*schema.Balancer{web(), api}
			}
			r := Change(tc.live, render(t, rev2, bs...), tc.trusted)
			if r.Class != Reload || !strings.HasPrefix(r.Reason, tc.reason) || len(r.Ops) > 0 {
				t.Errorf("got %s %q %q, want reload %q", r.Class, r.Reason, ops(r), tc.reason)
			}
		})
	}
}

// The same content under another revision is a runtime change without an
// operation (only the file is swapped); the same bytes are no change.
func TestHeaderOnly(t *testing.T) {
	a, b := render(t, rev1, web()), render(t, rev2, web())
	if bytes.Equal(a, b) {
		t.Fatal("renderings of two revisions are equal")
	}
	if r := Change(a, b, true); r.Class != Runtime || len(r.Ops) != 0 {
		t.Errorf("header only: %+v", r)
	}
	if r := Change(a, a, false); r.Class != None {
		t.Errorf("same file: %+v", r)
	}
}

// A live file whose hash was recomputed after an edit (a hostile host can)
// is still read strictly: only lbc's own words get through.
func TestHostileLive(t *testing.T) {
	base := string(render(t, rev1, web()))
	for _, edit := range []struct{ old, new string }{
		{"weight 1 check", "weight 1 check\n    server x\x1b[31m 1.2.3.4:1 weight 1"},
		{"weight 1 check", "weight 1 check cookie a\x1bb"},
		{"weight 1 check", "weight 1 check track be_x/y"},
		{"weight 1 check", "weight 999 check"},
		{"\nbackend be_web", "\nbackend be_web\x1b"},
		{"\nbackend be_web", "\nbackend be_web extra"},
		{"    mode http\n    balance", "mode http\n    balance"},
	} {
		body := strings.Replace(base[strings.IndexByte(base, '\n')+1:], edit.old, edit.new, 1)
		live := rehash(t, body)
		r := Change(live, render(t, rev2, web(func(b *schema.Balancer) { b.Nodes[0].Weight = 3 })), true)
		if r.Class != Reload || strings.ContainsAny(r.Reason, "\x1b\n") || !strings.HasPrefix(r.Reason, "the live haproxy.cfg is not lbc's own rendering: line ") {
			t.Errorf("edit %q: %s %q", edit.new, r.Class, r.Reason)
		}
	}
}

// rehash puts an lbc header with a correct content hash on body.
func rehash(t testing.TB, body string) []byte {
	t.Helper()
	sum := sha256.Sum256([]byte(body))
	return []byte("# lbc v0.0.0-test revision " + rev1 + " content sha256:" + hex.EncodeToString(sum[:]) + "\n" + body)
}

// Check accepts what Change produces and refuses edited results.
func TestCheck(t *testing.T) {
	r := Change(render(t, rev1, web()), render(t, rev2, web(func(b *schema.Balancer) {
		b.Nodes[1].Weight = 4
		b.Nodes = append(b.Nodes[1:], node(9, 1))
	})), true)
	if r.Class != Runtime || len(r.Ops) != 3 {
		t.Fatalf("%+v", r)
	}
	if err := Check(&r); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []Result{
		{Class: "hot"},
		{Class: Reload},
		{Class: Reload, Reason: "x", Ops: r.Ops},
		{Class: Runtime, Ops: []Op{{Kind: "set", Backend: "be_web", Server: "s"}}},
		{Class: Runtime, Ops: []Op{{Kind: KindWeight, Backend: "be_web", Server: "s\x1b[2J", From: "1", To: "2"}}},
		{Class: Runtime, Ops: []Op{{Kind: KindAdd, Backend: "be_web", Server: "s", Args: []string{"1.2.3.4:1", "weight 1\nshutdown"}}}},
	} {
		if err := Check(&bad); err == nil {
			t.Errorf("Check accepts %+v", bad)
		}
	}
}

// No live file makes Change panic, and whatever it returns passes Check.
func FuzzChange(f *testing.F) {
	desired := render(f, rev2, web(func(b *schema.Balancer) { b.Nodes[0].Weight = 5 }))
	f.Add(string(render(f, rev1, web())))
	f.Add("# lbc x revision y content sha256:00\nglobal\n")
	f.Fuzz(func(t *testing.T, body string) {
		for _, live := range [][]byte{[]byte(body), rehash(t, body)} {
			r := Change(live, desired, true)
			if err := Check(&r); err != nil {
				t.Fatalf("%v: %+v", err, r)
			}
		}
	})
}
