package reconcile

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"lbc/compiler"
	"lbc/internal/shquote"
	"lbc/internal/testkit/sshtest"
	"lbc/schema"
)

// statusLab is two devices (testHost each: real SSH, real /bin/sh, fake
// ip(8)) in zones az-a and az-b, with a single-device balancer pinned to
// lb-a1 and an HA balancer across both. Specs are compiled by the real
// compiler and applied by the real Apply.
type statusLab struct {
	t     *testing.T
	hosts map[string]*testHost
	down  map[string]bool // dial fails (a closed port) for these devices
	lock  compiler.Lock
}

const (
	singleVIP = "203.0.113.10"
	haVIP     = "203.0.113.20"
)

func newStatusLab(t *testing.T) *statusLab {
	l := &statusLab{t: t, hosts: map[string]*testHost{}, down: map[string]bool{}}
	for _, d := range []struct{ name, zone string }{{"lb-a1", "az-a"}, {"lb-b1", "az-b"}} {
		th := newTestHost(t, d.name)
		th.dev.Zone = d.zone
		th.dev.VIPInterface = "eth0"
		th.dev.VIPNetworks = []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}
		th.dev.Keepalived = schema.Keepalived{Config: filepath.Join(th.dir, "etc/keepalived.conf"), Reload: "true"}
		l.hosts[d.name] = th
	}
	return l
}

// pathTransport runs every command with the device's bin dir first in
// PATH, so that the default "ip" is the device's own fake ip(8).
type pathTransport struct {
	Transport
	prefix string
}

func (p pathTransport) Run(ctx context.Context, cmd string, stdin io.Reader) ([]byte, error) {
	return p.Transport.Run(ctx, p.prefix+cmd, stdin)
}

func (p pathTransport) Stream(ctx context.Context, cmd string) (Stream, error) {
	return p.Transport.Stream(ctx, p.prefix+cmd)
}

func (l *statusLab) dial(ctx context.Context, ep Endpoint) (Transport, error) {
	th := l.hosts[ep.Device]
	if l.down[ep.Device] {
		// A real connect to a port nobody listens on.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		d := ep
		d.Port = port
		return DialSSH(ctx, d, SSHConfig{KnownHosts: th.srv.KnownHostsFile(), KeyFile: th.srv.KeyFile(), ConnectTimeout: 2 * time.Second})
	}
	t, err := th.dial(ctx, ep)
	if err != nil {
		return nil, err
	}
	return pathTransport{t, "PATH=" + shquote.Quote(filepath.Join(th.dir, "bin")) + ":$PATH; export PATH; "}, nil
}

// compile builds the spec (shop-web's first node has weight w) and compiles
// it at rev, keeping the previous placement.
func (l *statusLab) compile(rev string, w int) (*schema.Spec, *compiler.Result) {
	l.t.Helper()
	spec := &schema.Spec{Devices: map[string]*schema.Device{}, Balancers: map[string]*schema.Balancer{},
		Scheduler: schema.Scheduler{Filters: []string{"capacity", "zone", "tags", "vipNetwork", "device", "ha"},
			Costs: map[string]float64{"balancers": 1, "maxconn": 1, "spread": 0.5}}}
	for name, th := range l.hosts {
		spec.Devices[name] = th.dev
	}
	bal := func(name, tenant, vip string, port int) *schema.Balancer {
		return &schema.Balancer{
			Name: name, Tenant: tenant, Protocol: "http", Algorithm: "roundrobin",
			VIPs:  []schema.VIP{{Address: netip.MustParseAddr(vip), Port: port}},
			Nodes: []schema.Node{{Address: netip.MustParseAddr("198.51.100.1"), Port: 8080, Weight: w}},
			HealthMonitor: schema.HealthMonitor{Type: "http", Method: "GET", Path: "/healthz", Expect: 200,
				Interval: 2 * time.Second, Timeout: time.Second, Rise: 2, Fall: 3},
			Failback: true,
		}
	}
	web := bal("shop-web", "shop", singleVIP, 80)
	web.Placement.Device = "lb-a1"
	api := bal("shop-api", "shop", haVIP, 443)
	api.Nodes[0].Weight = 1
	api.Placement = schema.Placement{HA: true, Zones: []string{"az-a", "az-b"}}
	spec.Balancers[web.Name], spec.Balancers[api.Name] = web, api
	res, err := compiler.Compile(spec, l.lock, compiler.Options{Version: "test", Revision: rev})
	if err != nil {
		l.t.Fatalf("compile: %v", err)
	}
	l.lock = res.Placement
	return spec, res
}

func (l *statusLab) plan(spec *schema.Spec, res *compiler.Result) *Plan {
	l.t.Helper()
	p, err := BuildPlan(context.Background(), spec, res, l.dial, PlanOptions{})
	if err != nil {
		l.t.Fatal(err)
	}
	return p
}

func (l *statusLab) apply(spec *schema.Spec, res *compiler.Result) {
	l.t.Helper()
	r, err := Apply(context.Background(), l.plan(spec, res), l.dial, applyOpts("status-test"))
	if err != nil {
		l.t.Fatal(err)
	}
	for _, d := range r.Devices {
		if d.Outcome != OutcomeApplied && d.Outcome != OutcomeUnchanged {
			l.t.Fatalf("apply %s: %s: %v", d.Device, d.Outcome, d.Err)
		}
	}
}

func (l *statusLab) status(spec *schema.Spec, res *compiler.Result) map[string]DeviceStatus {
	l.t.Helper()
	st, err := ReadStatus(context.Background(), spec, res, l.dial, StatusOptions{Parallelism: 2})
	if err != nil {
		l.t.Fatal(err)
	}
	var names []string
	m := map[string]DeviceStatus{}
	for _, d := range st {
		names = append(names, d.Device)
		m[d.Device] = d
	}
	if !slices.Equal(names, []string{"lb-a1", "lb-b1"}) {
		l.t.Fatalf("status devices %q, want sorted lb-a1 lb-b1", names)
	}
	return m
}

func wantSync(t *testing.T, st map[string]DeviceStatus, want map[string]string) {
	t.Helper()
	for dev, w := range want {
		if d := st[dev]; d.Sync != w {
			t.Errorf("%s: sync %q, want %q (error %q, notes %q)", dev, d.Sync, w, d.Error, d.Notes)
		}
	}
}

func wantNote(t *testing.T, d DeviceStatus, sub string) {
	t.Helper()
	if !strings.Contains(strings.Join(d.Notes, "\n"), sub) {
		t.Errorf("%s: notes %q do not say %q", d.Device, d.Notes, sub)
	}
}

const rev1 = "0123456789abcdef0123456789abcdef01234567"
const rev2 = "89abcdef0123456789abcdef0123456789abcdef-dirty"

func TestStatusLifecycle(t *testing.T) {
	l := newStatusLab(t)
	a, b := l.hosts["lb-a1"], l.hosts["lb-b1"]
	spec, res := l.compile(rev1, 10)
	if p := res.Placement["shop-api"]; p.Primary != "lb-a1" || p.Standby != "lb-b1" {
		t.Fatalf("placement of shop-api: %+v, want primary lb-a1 standby lb-b1", p)
	}

	st := l.status(spec, res)
	wantSync(t, st, map[string]string{"lb-a1": SyncNeverApplied, "lb-b1": SyncNeverApplied})
	if d := st["lb-a1"]; !d.Reachable || d.Revision != "" || d.AppliedAt != "" || d.Error != "" ||
		!slices.Equal(d.Balancers, []string{"shop-api", "shop-web"}) ||
		!slices.Equal(d.HAVIPs, []HAVIP{{VIP: haVIP, Balancer: "shop-api", Role: "primary"}}) {
		t.Errorf("never applied lb-a1: %+v", d)
	}
	if d := st["lb-b1"]; !slices.Equal(d.HAVIPs, []HAVIP{{VIP: haVIP, Balancer: "shop-api", Role: "standby"}}) {
		t.Errorf("lb-b1 HA VIPs %+v", d.HAVIPs)
	}

	l.apply(spec, res)
	st = l.status(spec, res)
	wantSync(t, st, map[string]string{"lb-a1": SyncInSync, "lb-b1": SyncInSync})
	for _, d := range st {
		if d.Revision != rev1 || d.AppliedAt != "2025-01-02T03:04:05Z" || d.LBCVersion != "test" ||
			d.LastResult != "applied" || len(d.Notes) != 0 {
			t.Errorf("after apply %s: %+v", d.Device, d)
		}
	}
	if p := l.plan(spec, res); p.HasChanges() {
		t.Errorf("in-sync devices but the plan has changes: %+v", p.Devices)
	}

	// A hand edit of haproxy.cfg on lb-a1.
	cfg := a.read("etc/haproxy.cfg")
	a.write("etc/haproxy.cfg", strings.Replace(cfg, "weight 10", "weight 99", 1), 0o644)
	st = l.status(spec, res)
	wantSync(t, st, map[string]string{"lb-a1": SyncDrifted, "lb-b1": SyncInSync})
	wantNote(t, st["lb-a1"], a.dev.HAProxy.Config+" differs from the one lbc applied")
	a.write("etc/haproxy.cfg", cfg, 0o644)

	// A hand edit of keepalived.conf on lb-b1.
	ka := b.read("etc/keepalived.conf")
	if !strings.Contains(ka, "priority 100") {
		t.Fatalf("lb-b1 keepalived.conf is not the standby's:\n%s", ka)
	}
	b.write("etc/keepalived.conf", strings.Replace(ka, "priority 100", "priority 200", 1), 0o644)
	st = l.status(spec, res)
	wantSync(t, st, map[string]string{"lb-a1": SyncInSync, "lb-b1": SyncDrifted})
	wantNote(t, st["lb-b1"], b.dev.Keepalived.Config+" differs from the one lbc applied")
	b.write("etc/keepalived.conf", ka, 0o644)

	// Someone removed the VIP lbc added on lb-a1.
	addrs := a.read("addrs")
	a.write("addrs", strings.Replace(addrs, singleVIP+"/32 eth0\n", "", 1), 0o644)
	st = l.status(spec, res)
	wantSync(t, st, map[string]string{"lb-a1": SyncDrifted})
	wantNote(t, st["lb-a1"], "vip "+singleVIP+"/32 dev eth0 that lbc added is gone")
	a.write("addrs", addrs, 0o644)
	wantSync(t, l.status(spec, res), map[string]string{"lb-a1": SyncInSync, "lb-b1": SyncInSync})

	// The specs change: both hosts run what lbc applied, not what the specs say.
	spec2, res2 := l.compile(rev2, 20)
	st = l.status(spec2, res2)
	wantSync(t, st, map[string]string{"lb-a1": SyncBehind, "lb-b1": SyncBehind})
	wantNote(t, st["lb-a1"], "haproxy.cfg applied at revision "+rev1+" is not what the specs compile to")
	if st["lb-a1"].Revision != rev1 {
		t.Errorf("behind lb-a1 revision %q, want the applied %q", st["lb-a1"].Revision, rev1)
	}
	// Drift wins over behind: it is what an operator must look at first.
	a.write("etc/haproxy.cfg", "# hand edit\n", 0o644)
	wantSync(t, l.status(spec2, res2), map[string]string{"lb-a1": SyncDrifted, "lb-b1": SyncBehind})
	a.write("etc/haproxy.cfg", cfg, 0o644)

	l.apply(spec2, res2)
	st = l.status(spec2, res2)
	wantSync(t, st, map[string]string{"lb-a1": SyncInSync, "lb-b1": SyncInSync})
	if st["lb-a1"].Revision != rev2 {
		t.Errorf("revision %q, want %q", st["lb-a1"].Revision, rev2)
	}

	if d := st["lb-a1"]; d.AppliedAt != "2025-01-02T03:04:05Z" || d.LBCVersion != "test" || d.LastResult != "applied" {
		t.Errorf("in-sync lb-a1: %+v", d)
	}
}

func TestStatusUnreachable(t *testing.T) {
	l := newStatusLab(t)
	spec, res := l.compile(rev1, 10)
	l.apply(spec, res)

	l.down["lb-b1"] = true
	start := time.Now()
	st := l.status(spec, res)
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("status with a closed port took %v", el)
	}
	wantSync(t, st, map[string]string{"lb-a1": SyncInSync, "lb-b1": SyncUnreachable})
	d := st["lb-b1"]
	if d.Reachable || !strings.HasPrefix(d.Error, "status lb-b1: connect: ") || d.Revision != "" {
		t.Errorf("unreachable lb-b1: %+v", d)
	}
	if len(d.HAVIPs) != 1 || d.HAVIPs[0].Role != "standby" || d.HAVIPs[0].Held {
		t.Errorf("unreachable lb-b1 HA VIPs %+v: want the compiled role, not held", d.HAVIPs)
	}
	if ha := SummarizeHAVIPs([]DeviceStatus{st["lb-a1"], st["lb-b1"]}); len(ha) != 1 || ha[0].State != HAUnknown ||
		len(ha[0].Holders) != 0 || !slices.Equal(ha[0].Unknown, []string{"lb-b1"}) {
		t.Errorf("HA VIPs with lb-b1 unreachable: %+v, want held by none of the reachable, lb-b1 unknown", ha)
	}
	if n := StatusCounts([]DeviceStatus{st["lb-a1"], st["lb-b1"]}); n[SyncInSync] != 1 || n[SyncUnreachable] != 1 {
		t.Errorf("counts %v", n)
	}

	// The connection drops while the state is read: unreachable, not an error.
	l.down["lb-b1"] = false
	b := l.hosts["lb-b1"]
	b.setHook(func(cmd string) sshtest.Fault {
		if strings.Contains(cmd, "==lbc addr") {
			return sshtest.CutBefore
		}
		return sshtest.NoFault
	})
	st = l.status(spec, res)
	wantSync(t, st, map[string]string{"lb-a1": SyncInSync, "lb-b1": SyncUnreachable})
	if d := st["lb-b1"]; d.Reachable || !strings.Contains(d.Error, "connection lost") {
		t.Errorf("cut lb-b1: %+v", d)
	}

	// A host that answers nonsense: an error, reported, not fatal.
	b.setHook(func(cmd string) sshtest.Fault {
		if strings.Contains(cmd, "==lbc addr") {
			return sshtest.FailExit(1, "base64: read error")
		}
		return sshtest.NoFault
	})
	st = l.status(spec, res)
	wantSync(t, st, map[string]string{"lb-a1": SyncInSync, "lb-b1": SyncError})
	b.setHook(nil)
}

func TestStatusCancelled(t *testing.T) {
	l := newStatusLab(t)
	spec, res := l.compile(rev1, 10)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	st, err := ReadStatus(ctx, spec, res, l.dial, StatusOptions{Parallelism: 1})
	if !errors.Is(err, context.Canceled) || len(st) != 2 {
		t.Fatalf("cancelled status: %v, %d devices", err, len(st))
	}
	for _, d := range st {
		if d.Reachable || d.Sync != SyncUnreachable {
			t.Errorf("cancelled %s: %+v", d.Device, d)
		}
	}
	if _, err := ReadStatus(context.Background(), nil, res, l.dial, StatusOptions{}); err == nil {
		t.Error("no spec: no error")
	}
}

func TestStatusHAVIPHolders(t *testing.T) {
	l := newStatusLab(t)
	spec, res := l.compile(rev1, 10)
	l.apply(spec, res)
	a, b := l.hosts["lb-a1"], l.hosts["lb-b1"]
	base := map[string]string{"lb-a1": a.read("addrs"), "lb-b1": b.read("addrs")}
	held := haVIP + "/24 eth0\n"
	for _, c := range []struct {
		name   string
		on     []string
		want   string
		state  string
		holder map[string]bool
	}{
		{"primary", []string{"lb-a1"}, "lb-a1 (primary)", HAHeld, map[string]bool{"lb-a1": true}},
		{"failed over", []string{"lb-b1"}, "lb-b1 (standby)", HAHeld, map[string]bool{"lb-b1": true}},
		{"split brain", []string{"lb-a1", "lb-b1"}, "lb-a1 (primary), lb-b1 (standby)", HASplitBrain,
			map[string]bool{"lb-a1": true, "lb-b1": true}},
		{"down", nil, "", HANone, map[string]bool{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			for dev, th := range l.hosts {
				addrs := base[dev]
				if slices.Contains(c.on, dev) {
					addrs += held
				}
				th.write("addrs", addrs, 0o644)
			}
			st := l.status(spec, res)
			// Keepalived's address is not lbc's: it does not make a device drift.
			wantSync(t, st, map[string]string{"lb-a1": SyncInSync, "lb-b1": SyncInSync})
			for dev, d := range st {
				if len(d.HAVIPs) != 1 || d.HAVIPs[0].Held != c.holder[dev] {
					t.Errorf("%s HA VIPs %+v, want held %v", dev, d.HAVIPs, c.holder[dev])
				}
			}
			list := []DeviceStatus{st["lb-a1"], st["lb-b1"]}
			sum := SummarizeHAVIPs(list)
			if len(sum) != 1 || sum[0].State != c.state || sum[0].Primary != "lb-a1" || sum[0].Standby != "lb-b1" {
				t.Errorf("summary %+v", sum)
			}
			if got := holders(sum[0]); got != c.want {
				t.Errorf("holders %q, want %q", got, c.want)
			}
		})
	}

	// The VIP turns up on a device outside its pair (a third device that
	// carries only shop-web here): reported with role none.
	for dev, th := range l.hosts {
		th.write("addrs", base[dev], 0o644)
	}
	st := l.status(spec, res)
	list := []DeviceStatus{st["lb-a1"], st["lb-b1"]}
	list[1].HAVIPs = heldHAVIPs(nil, []string{haVIP + "/32 dev eth1"}, haAddresses(res))
	list[1].Device = "lb-c1"
	if sum := SummarizeHAVIPs(list); len(sum) != 1 || sum[0].State != HAHeld ||
		holders(sum[0]) != "lb-c1 (none)" || !slices.Equal(sum[0].Balancers, []string{"shop-api"}) {
		t.Errorf("stray holder: %+v", sum)
	}
}

// holders lists who holds an HA VIP: "lb-a1 (primary), lb-b1 (standby)".
func holders(s HAVIPSummary) string {
	var hs []string
	for _, h := range s.Holders {
		hs = append(hs, h.Device+" ("+h.Role+")")
	}
	return strings.Join(hs, ", ")
}
