package reconcile

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"lbc/compiler"
	"lbc/reconcile/host"
	"lbc/schema"
)

func l7Balancer(mod func(*schema.Balancer)) *schema.Balancer {
	hm := schema.HealthMonitor{Type: "tcp", Interval: 2 * time.Second, Timeout: time.Second, Rise: 2, Fall: 3}
	n := func(i int) []schema.Node {
		return []schema.Node{{Address: netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), Port: 80, Weight: 1, State: schema.NodeActive}}
	}
	b := &schema.Balancer{
		Name: "shop", Protocol: "http", Algorithm: "roundrobin",
		VIPs:          []schema.VIP{{Address: netip.MustParseAddr("203.0.113.10"), Port: 80}, {Address: netip.MustParseAddr("203.0.113.11"), Port: 80}},
		Nodes:         n(1),
		HealthMonitor: hm,
		Pools:         []schema.Pool{{Name: "api", Algorithm: "roundrobin", Nodes: n(2), HealthMonitor: hm}},
		Rules: []schema.Rule{
			{Match: []schema.Condition{{Kind: schema.CondPath, Compare: schema.CmpPrefix, Value: "/api/"}}, Pool: "api"},
			{Match: []schema.Condition{{Kind: schema.CondHeader, Name: "X-Env", Compare: schema.CmpFound, Not: true}}, Reject: true},
		},
		Hosts: map[string]string{"a.example.com": "api", "b.example.com": "default", "c.example.com": "api"},
	}
	if mod != nil {
		mod(b)
	}
	return b
}

// l7Artifacts compiles a one-device spec carrying b, as Compile does.
func l7Artifacts(t *testing.T, b *schema.Balancer) *compiler.DeviceArtifacts {
	t.Helper()
	dev := &schema.Device{Name: "lb-a1", Address: "192.0.2.11", VIPInterface: "eth0", StateDir: "/var/lib/lbc",
		HAProxy: schema.HAProxy{Config: "/etc/haproxy/haproxy.cfg", Reload: "true", Check: "true"}}
	b.Placement.Device = dev.Name
	spec := &schema.Spec{Devices: map[string]*schema.Device{dev.Name: dev}, Balancers: map[string]*schema.Balancer{b.Name: b},
		Scheduler: schema.Scheduler{Filters: []string{"device"}, Costs: map[string]float64{}}}
	res, err := compiler.Compile(spec, compiler.Lock{}, compiler.Options{Version: "v0", Revision: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	return res.Devices[dev.Name]
}

// The plan's routing lines: rules added and removed per balancer (once,
// though every frontend repeats them), host entries added, removed and
// moved, from real renderings of a spec before and after.
func TestRoutingChanges(t *testing.T) {
	old := l7Artifacts(t, l7Balancer(nil))
	live := &Live{Config: host.File{Exists: true, Data: old.HAProxyCfg}, Files: map[string]string{}, FileData: map[string][]byte{}}
	for _, f := range old.AuxFiles {
		live.Files[f.Path] = sha256Hex(f.Data)
		live.FileData[f.Path] = f.Data
	}
	for _, tc := range []struct {
		name string
		mod  func(*schema.Balancer)
		live func(*Live)
		want []string
	}{
		{"unchanged", nil, nil, nil},
		{"rule added and removed, hosts moved, added, removed", func(b *schema.Balancer) {
			b.Rules[1] = schema.Rule{Match: []schema.Condition{{Kind: schema.CondCookie, Name: "beta", Compare: schema.CmpExact, Value: "1"}}, Redirect: &schema.Redirect{Location: "/beta", Code: 302}}
			b.Hosts = map[string]string{"a.example.com": "default", "c.example.com": "api", "d.example.com": "api"}
		}, nil, []string{
			"-rule shop: not header X-Env found -> reject 403",
			"+rule shop: cookie beta exact 1 -> redirect 302 location /beta",
			"~host a.example.com: be_shop:api -> be_shop",
			"-host b.example.com -> be_shop",
			"+host d.example.com -> be_shop:api",
			"~hosts /etc/haproxy/lbc-hosts-shop.map: 1 added, 1 removed, 1 moved (3 entries)",
		}},
		{"rules reordered", func(b *schema.Balancer) { b.Rules[0], b.Rules[1] = b.Rules[1], b.Rules[0] }, nil,
			[]string{"~rules of shop: reordered"}},
		{"no live table", nil, func(l *Live) { l.Files = map[string]string{}; l.FileData = nil }, []string{
			"+host a.example.com -> be_shop:api", "+host b.example.com -> be_shop", "+host c.example.com -> be_shop:api",
			"~hosts /etc/haproxy/lbc-hosts-shop.map: 3 added, 0 removed, 0 moved (3 entries)",
		}},
		{"live table not read", nil, func(l *Live) { l.Files = map[string]string{"/etc/haproxy/lbc-hosts-shop.map": "00"}; l.FileData = nil },
			[]string{"~hosts /etc/haproxy/lbc-hosts-shop.map: the live table was not read"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := *live
			if tc.live != nil {
				tc.live(&l)
			}
			got := routingChanges(&l, l7Artifacts(t, l7Balancer(tc.mod)))
			if !slices.Equal(got, tc.want) {
				t.Errorf("got\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

// A table of 10,000 hosts with every entry moved shows 50 lines and the count.
func TestRoutingChangesBounded(t *testing.T) {
	hosts := func(pool string) map[string]string {
		m := map[string]string{}
		for i := range 10000 {
			m[netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}).String()+".example.com"] = pool
		}
		return m
	}
	old := l7Artifacts(t, l7Balancer(func(b *schema.Balancer) { b.Hosts = hosts("api") }))
	live := &Live{Config: host.File{Exists: true, Data: old.HAProxyCfg}, Files: map[string]string{}, FileData: map[string][]byte{}}
	for _, f := range old.AuxFiles {
		live.Files[f.Path], live.FileData[f.Path] = sha256Hex(f.Data), f.Data
	}
	got := routingChanges(live, l7Artifacts(t, l7Balancer(func(b *schema.Balancer) { b.Hosts = hosts("default") })))
	if len(got) != maxRoutingLines+1 || got[len(got)-1] != "~hosts /etc/haproxy/lbc-hosts-shop.map: 0 added, 0 removed, 10000 moved (10000 entries)" {
		t.Errorf("%d lines, last %q", len(got), got[len(got)-1])
	}
}
