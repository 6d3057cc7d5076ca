package compiler

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"lbc/schema"
)

// testDevice and testBalancer build schema values with the schema's defaults.
func testDevice(name, addr, zone string) *schema.Device {
	return &schema.Device{
		Name: name, Address: addr, Zone: zone, VIPInterface: "eth0", StateDir: "/var/lib/lbc",
		SSH:         schema.SSH{User: "root", Port: 22},
		VIPNetworks: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("2001:db8:100::/64")},
		HAProxy:     schema.HAProxy{Config: "/etc/haproxy/haproxy.cfg", Reload: "systemctl reload haproxy", Check: "haproxy -c -f"},
	}
}

func testBalancer(name, vip string, port int) *schema.Balancer {
	return &schema.Balancer{
		Name: name, Tenant: "default", Protocol: "http", Algorithm: "roundrobin",
		VIPs:  []schema.VIP{{Address: netip.MustParseAddr(vip), Port: port}},
		Nodes: []schema.Node{{Address: netip.MustParseAddr("198.51.100.1"), Port: 8080, Weight: 1}},
		HealthMonitor: schema.HealthMonitor{Type: "http", Method: "GET", Path: "/", Expect: 200,
			Interval: 2 * time.Second, Timeout: time.Second, Rise: 2, Fall: 3},
		Failback: true,
	}
}

func testSpec(devs []*schema.Device, bals []*schema.Balancer) *schema.Spec {
	s := &schema.Spec{Devices: map[string]*schema.Device{}, Balancers: map[string]*schema.Balancer{},
		Scheduler: schema.Scheduler{Filters: []string{"capacity", "zone", "tags", "vipNetwork", "device", "ha"},
			Costs: map[string]float64{"balancers": 1, "maxconn": 1, "spread": 0.5}}}
	for _, d := range devs {
		s.Devices[d.Name] = d
	}
	for _, b := range bals {
		s.Balancers[b.Name] = b
	}
	return s
}

func TestCompileDeterministicAndStamped(t *testing.T) {
	var bals []*schema.Balancer
	for i := 0; i < 30; i++ {
		bals = append(bals, testBalancer(fmt.Sprintf("b%02d", i), fmt.Sprintf("203.0.113.%d", 10+i), 80))
	}
	sp := testSpec([]*schema.Device{testDevice("lb-a1", "192.0.2.11", "a"), testDevice("lb-b1", "192.0.2.12", "b")}, bals)
	first, err := Compile(sp, Lock{}, Options{Version: "v1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		again, err := Compile(sp, Lock{}, Options{Version: "v1.2.3"})
		if err != nil {
			t.Fatal(err)
		}
		for name, d := range first.Devices {
			if !bytes.Equal(d.HAProxyCfg, again.Devices[name].HAProxyCfg) || !bytes.Equal(d.VIPsJSON, again.Devices[name].VIPsJSON) {
				t.Fatalf("%s: second compile differs", name)
			}
		}
	}
	cfg := first.Devices["lb-a1"].HAProxyCfg
	if !bytes.HasPrefix(cfg, []byte("# lbc v1.2.3 revision none content sha256:")) {
		t.Errorf("header: %q", bytes.SplitN(cfg, []byte("\n"), 2)[0])
	}
	total := 0
	for _, d := range first.Devices {
		total += len(d.Balancers)
		if d.Keepalived != nil {
			t.Errorf("%s: keepalived.conf without HA balancers", d.Device)
		}
	}
	if total != 30 {
		t.Errorf("placed %d balancers, want 30", total)
	}
}

func TestConfigIDAndHeader(t *testing.T) {
	sp := testSpec([]*schema.Device{testDevice("lb-a1", "192.0.2.11", "a")}, []*schema.Balancer{testBalancer("web", "203.0.113.10", 80)})
	r1, err := Compile(sp, Lock{}, Options{Version: "v1", Revision: "aaaa"})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := Compile(sp, Lock{}, Options{Version: "v2", Revision: "bbbb"})
	if err != nil {
		t.Fatal(err)
	}
	c1, c2 := r1.Devices["lb-a1"].HAProxyCfg, r2.Devices["lb-a1"].HAProxyCfg
	if bytes.Equal(c1, c2) {
		t.Fatal("version and revision are not stamped")
	}
	id := ConfigID(c1)
	if id != ConfigID(c2) || len(id) != 16 {
		t.Errorf("ConfigID %q vs %q: want equal, 16 hex digits, when only the header changes", id, ConfigID(c2))
	}
	if !bytes.Contains(c1, []byte("\n    description lbc:"+id+"\n")) {
		t.Errorf("config does not declare description lbc:%s", id)
	}
	body := c1[bytes.IndexByte(c1, '\n')+1:]
	if ConfigID(body) != id {
		t.Error("ConfigID of the file without its header differs")
	}
	h, err := ParseHeader(c1)
	if err != nil || h.Version != "v1" || h.Revision != "aaaa" {
		t.Errorf("ParseHeader = %+v, %v", h, err)
	}
	edited := bytes.Replace(c1, []byte("weight 1"), []byte("weight 2"), 1)
	if _, err := ParseHeader(edited); err == nil || !strings.Contains(err.Error(), "edited") {
		t.Errorf("ParseHeader of an edited file: %v", err)
	}
	if ConfigID(edited) == id {
		t.Error("ConfigID ignores a changed server line")
	}
	if _, err := ParseHeader([]byte("global\n")); err == nil {
		t.Error("ParseHeader accepted a file without a header")
	}
}

func TestCompileScheduleErrorReturnsNothing(t *testing.T) {
	b := testBalancer("web", "203.0.113.10", 80)
	b.Placement.Zones = []string{"nowhere"}
	sp := testSpec([]*schema.Device{testDevice("lb-a1", "192.0.2.11", "a")}, []*schema.Balancer{b})
	res, err := Compile(sp, Lock{}, Options{})
	if err == nil || res != nil {
		t.Fatalf("Compile = %v, %v; want nil and an error", res, err)
	}
	var ue *UnplaceableError
	if !errors.As(err, &ue) || ue.Balancer != "web" {
		t.Errorf("error %v does not carry the scheduler's UnplaceableError", err)
	}
}

// The CLI prints err.Error() as is: every line of a scheduling error must
// start with the position it names, not with a prefix.
func TestCompileScheduleErrorLinesStartWithPosition(t *testing.T) {
	var bals []*schema.Balancer
	for i, n := range []string{"web", "api"} {
		b := testBalancer(n, fmt.Sprintf("203.0.113.%d", 10+i), 80)
		b.Placement.Zones = []string{"nowhere"}
		b.Pos = schema.Pos{File: "balancers/shop/" + n + ".cue", Line: 2 + i, Col: 3}
		bals = append(bals, b)
	}
	sp := testSpec([]*schema.Device{testDevice("lb-a1", "192.0.2.11", "a")}, bals)
	_, err := Compile(sp, Lock{}, Options{})
	if err == nil {
		t.Fatal("no error")
	}
	want := "balancers/shop/api.cue:3:3: balancers.api: 0/1 devices fit api: 1 zone\n" +
		"balancers/shop/web.cue:2:3: balancers.web: 0/1 devices fit web: 1 zone"
	if err.Error() != want {
		t.Errorf("error:\n%s\nwant:\n%s", err, want)
	}
}

func TestRenderRefusesUnsafeWords(t *testing.T) {
	cases := map[string]func(d *schema.Device, b *schema.Balancer){
		"newline in name": func(d *schema.Device, b *schema.Balancer) { b.Name = "web\n    lua-load /tmp/x.lua" },
		"space in path":   func(d *schema.Device, b *schema.Balancer) { b.HealthMonitor.Path = "/ok HTTP/1.1" },
		"hash in cookie": func(d *schema.Device, b *schema.Balancer) {
			b.Persistence = &schema.Persistence{Type: "cookie", Cookie: "A#b"}
		},
		"dollar in method":  func(d *schema.Device, b *schema.Balancer) { b.HealthMonitor.Method = "${X}" },
		"quote in stateDir": func(d *schema.Device, b *schema.Balancer) { d.StateDir = `/var/"lib` },
		"empty stateDir":    func(d *schema.Device, b *schema.Balancer) { d.StateDir = "" },
		"cr in device name": func(d *schema.Device, b *schema.Balancer) { d.Name = "lb\rx" },
		"unknown algorithm": func(d *schema.Device, b *schema.Balancer) { b.Algorithm = "random" },
		"unknown monitor":   func(d *schema.Device, b *schema.Balancer) { b.HealthMonitor.Type = "icmp" },
		"timer overflow":    func(d *schema.Device, b *schema.Balancer) { b.Timeouts = &schema.Timeouts{Server: 1000 * time.Hour} },
		"duplicate node":    func(d *schema.Device, b *schema.Balancer) { b.Nodes = append(b.Nodes, b.Nodes[0]) },
		"cookie on tcp": func(d *schema.Device, b *schema.Balancer) {
			b.Protocol = "tcp"
			b.Persistence = &schema.Persistence{Type: "cookie", Cookie: "S"}
		},
		"non-ascii in path": func(d *schema.Device, b *schema.Balancer) { b.HealthMonitor.Path = "/é" },
		"backslash in cookie": func(d *schema.Device, b *schema.Balancer) {
			b.Persistence = &schema.Persistence{Type: "cookie", Cookie: `a\`}
		},
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			d, b := testDevice("lb-a1", "192.0.2.11", "a"), testBalancer("web", "203.0.113.10", 80)
			mutate(d, b)
			out, err := RenderHAProxy(d, []*schema.Balancer{b}, nil, Options{})
			if err == nil || out != nil {
				t.Fatalf("RenderHAProxy = %d bytes, %v; want an error and no bytes", len(out), err)
			}
		})
	}
}

func TestRenderRefusesUnsafeVersion(t *testing.T) {
	d, b := testDevice("lb-a1", "192.0.2.11", "a"), testBalancer("web", "203.0.113.10", 80)
	for _, o := range []Options{{Version: "v1\nx"}, {Revision: "a b"}} {
		if _, err := RenderHAProxy(d, []*schema.Balancer{b}, nil, o); err == nil {
			t.Errorf("options %+v accepted", o)
		}
	}
}

// haSpec is n HA balancers on the pair lb-a1/lb-b1 (and devices nothing else fits).
func haSpec(n int) *schema.Spec {
	var bals []*schema.Balancer
	for i := 0; i < n; i++ {
		b := testBalancer(fmt.Sprintf("ha%03d", i), netip.AddrFrom4([4]byte{203, 0, 113, 0}).String(), 80)
		b.VIPs[0].Address = netip.MustParseAddr(fmt.Sprintf("2001:db8:100::%x", i+1))
		b.Placement.HA = true
		bals = append(bals, b)
	}
	a, c := testDevice("lb-a1", "2001:db8:1::11", "a"), testDevice("lb-b1", "2001:db8:1::12", "b")
	return testSpec([]*schema.Device{a, c}, bals)
}

func TestVRIDsUniquePerDevice(t *testing.T) {
	sp := haSpec(255)
	res, err := Compile(sp, Lock{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, dev := range []string{"lb-a1", "lb-b1"} {
		k := string(res.Devices[dev].Keepalived)
		seen := map[string]bool{}
		n := 0
		for _, l := range strings.Split(k, "\n") {
			if id, ok := strings.CutPrefix(l, "    virtual_router_id "); ok {
				if seen[id] {
					t.Fatalf("%s: virtual_router_id %s used twice", dev, id)
				}
				seen[id] = true
				n++
			}
		}
		if n != 255 {
			t.Errorf("%s: %d vrrp instances, want 255", dev, n)
		}
		if strings.Contains(k, "nopreempt") {
			t.Errorf("%s: nopreempt with failback true", dev)
		}
		if !strings.Contains(k, "    unicast_src_ip 2001:db8:1::") {
			t.Errorf("%s: IPv6 VIPs between IPv6 devices should use unicast VRRP", dev)
		}
	}
	if _, err := Compile(haSpec(256), Lock{}, Options{}); err == nil || !strings.Contains(err.Error(), "virtual_router_id") {
		t.Errorf("256 HA VIPs on one pair: %v, want a virtual_router_id error", err)
	}
}

func TestVRIDStableWhenAnotherIsAdded(t *testing.T) {
	ids := func(n int) map[string]string {
		res, err := Compile(haSpec(n), Lock{}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		out, inst := map[string]string{}, ""
		for _, l := range strings.Split(string(res.Devices["lb-a1"].Keepalived), "\n") {
			if s, ok := strings.CutPrefix(l, "vrrp_instance "); ok {
				inst = s
			}
			if id, ok := strings.CutPrefix(l, "    virtual_router_id "); ok {
				out[inst] = id
			}
		}
		return out
	}
	// Without hash collisions, adding a VIP keeps every other id: check
	// that most survive (a collision may move a few, as documented).
	before, after := ids(20), ids(21)
	moved := 0
	for k, v := range before {
		if after[k] != v {
			moved++
		}
	}
	if moved > 2 {
		t.Errorf("adding one HA VIP moved %d of 20 virtual_router_ids", moved)
	}
}

// TestCompileExamples compiles the example trees through the real loader
// and checks every file with the real tools.
func TestCompileExamples(t *testing.T) {
	for _, dir := range []string{"../examples/basic", "../examples/fleet"} {
		t.Run(dir, func(t *testing.T) {
			sp, err := schema.LoadDir(context.Background(), dir)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			res, err := Compile(sp, Lock{}, Options{Version: "v0.0.0-test", Revision: "0123456789abcdef0123456789abcdef01234567"})
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			for name, d := range res.Devices {
				checkRendered(t, name+"/haproxy.cfg", d.HAProxyCfg, mapsOf(d))
				checkRendered(t, name+"/vips.json", d.VIPsJSON, nil)
				if d.Keepalived != nil {
					checkRendered(t, name+"/keepalived.conf", d.Keepalived, nil)
				}
			}
		})
	}
}
