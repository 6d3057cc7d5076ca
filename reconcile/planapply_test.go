package reconcile

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"lbc/compiler"
	"lbc/internal/testkit/sshtest"
	"lbc/schema"
)

// dialLog counts the connections dialled per device and records, in
// order, each device's plan (PlanApply's planned) and progress steps.
type dialLog struct {
	mu     sync.Mutex
	dials  map[string]int
	events []string // "DEVICE STEP", "DEVICE planned"
}

func (l *dialLog) wrap(dial Dialer) Dialer {
	return func(ctx context.Context, ep Endpoint) (Transport, error) {
		l.mu.Lock()
		l.dials[ep.Device]++
		l.mu.Unlock()
		return dial(ctx, ep)
	}
}

func (l *dialLog) add(e string) { l.mu.Lock(); l.events = append(l.events, e); l.mu.Unlock() }

// at is the index of event e, -1 when absent.
func (l *dialLog) at(e string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, x := range l.events {
		if x == e {
			return i
		}
	}
	return -1
}

// planApplyPair plans and applies, with PlanApply, balancer web's HA pair
// (standby lb-a1, primary lb-b1, preempting) at weight.
func planApplyPair(t *testing.T, standby, primary *testHost, dial Dialer, weight int, l *dialLog) (*Plan, *ApplyResult) {
	t.Helper()
	const vip = "203.0.113.20"
	spec := &schema.Spec{Devices: map[string]*schema.Device{}}
	res := &compiler.Result{Revision: "rev1", Devices: map[string]*compiler.DeviceArtifacts{},
		Placement: compiler.Lock{"web": {Balancer: "web", Primary: "lb-b1", Standby: "lb-a1"}}}
	for _, d := range []struct {
		th         *testHost
		port, prio int
		role       string
	}{{standby, 18080, 100, "standby"}, {primary, 18081, 150, "primary"}} {
		name := d.th.dev.Name
		spec.Devices[name] = d.th.dev
		res.Devices[name] = &compiler.DeviceArtifacts{Device: name, HAProxyCfg: testConfig(d.port, weight),
			Keepalived: []byte(haKeepalived(name, vip, d.prio, true)),
			VIPs:       []compiler.VIP{{Address: netip.MustParseAddr(vip), Prefix: 32, Interface: "eth0", Balancer: "web", Role: d.role}}}
	}
	o := applyOpts("test")
	o.Progress = func(dev, step string) { l.add(dev + " " + step) }
	// The pair's VIP is keepalived's: ip(8) only reads the addresses, and
	// the primary's fake ip serves both.
	p, r, err := PlanApply(context.Background(), spec, res, l.wrap(dial), PlanOptions{IPCommand: primary.ipCmd}, o,
		func(i int, dp *DevicePlan) { l.add(dp.Device + " planned") })
	if err != nil {
		t.Fatal(err)
	}
	return p, r
}

// PlanApply changes an HA pair standby first, each device on the one
// connection its plan read it on; the plan of each device is handed out
// before its transaction; when the standby's change fails, the primary is
// planned (shown) but not touched.
func TestPlanApplyPair(t *testing.T) {
	standby, primary, dial := haPair(t)
	l := &dialLog{dials: map[string]int{}}
	p, r := planApplyPair(t, standby, primary, dial, 10, l)
	for i, d := range r.Devices {
		if d.Outcome != OutcomeApplied {
			t.Fatalf("%s: %s (%v), want applied", d.Device, d.Outcome, d.Err)
		}
		if p.Devices[i].Status != StatusChanges {
			t.Errorf("%s: planned %s, want changes", p.Devices[i].Device, p.Devices[i].Status)
		}
	}
	if len(p.HAPairs) != 1 {
		t.Errorf("plan HA pairs %v, want web's", p.HAPairs)
	}
	for _, dev := range []string{"lb-a1", "lb-b1"} {
		if l.dials[dev] != 1 {
			t.Errorf("%s dialled %d times, want once", dev, l.dials[dev])
		}
		if pl, c := l.at(dev+" planned"), l.at(dev+" "+StepLock); pl < 0 || c < 0 || pl > c {
			t.Errorf("%s: planned at event %d, its transaction's lock at %d: want the plan first (%v)", dev, pl, c, l.events)
		}
	}
	if s, pr := l.at("lb-a1 "+StepCommit), l.at("lb-b1 "+StepConnect); s < 0 || pr < 0 || s > pr {
		t.Errorf("standby's write-state at event %d, primary's connect at %d: want the standby done first (%v)", s, pr, l.events)
	}

	// The standby's swap fails: rolled back; the primary is planned, not changed.
	primaryBefore := primary.snap()
	standby.srv.Inject(sshtest.StepFault{Step: StepSwap, Action: sshtest.Fail, Where: standby.dev.StateDir})
	l = &dialLog{dials: map[string]int{}}
	p, r = planApplyPair(t, standby, primary, dial, 20, l)
	if r.Devices[0].Outcome != OutcomeRolledBack {
		t.Fatalf("standby: %s (%v), want rolled-back", r.Devices[0].Outcome, r.Devices[0].Err)
	}
	if r.Devices[1].Outcome != OutcomeSkipped || !strings.Contains(r.Devices[1].Err.Error(), "lb-a1, applied before it as its HA partner, failed") {
		t.Fatalf("primary: %s (%v), want skipped because its standby failed", r.Devices[1].Outcome, r.Devices[1].Err)
	}
	if p.Devices[1].Status != StatusChanges || !strings.Contains(p.Devices[1].ConfigDiff, "weight 20") {
		t.Errorf("primary's plan: %s, diff %q: want the change shown", p.Devices[1].Status, p.Devices[1].ConfigDiff)
	}
	if after := primary.snap(); after != primaryBefore {
		t.Errorf("primary changed although its standby failed:\nbefore %v\nafter  %v", primaryBefore, after)
	}
	primary.waitUnlocked()
	standby.waitUnlocked()
}

// PlanApply counts --max-failures over the whole run: with one device at
// a time, after the first device fails the others are read and planned
// but not changed; each device is dialled once.
func TestPlanApplyMaxFailures(t *testing.T) {
	hosts := []*testHost{newTestHost(t, "lb-a1"), newTestHost(t, "lb-b1"), newTestHost(t, "lb-c1")}
	spec := &schema.Spec{Devices: map[string]*schema.Device{}}
	res := &compiler.Result{Revision: "rev1", Devices: map[string]*compiler.DeviceArtifacts{}}
	byDev := map[string]*testHost{}
	for i, th := range hosts {
		spec.Devices[th.dev.Name] = th.dev
		res.Devices[th.dev.Name] = &compiler.DeviceArtifacts{Device: th.dev.Name, HAProxyCfg: testConfig(18080+i, 10)}
		byDev[th.dev.Name] = th
	}
	hosts[0].failStep(StepSwap)
	before := []snapshot{hosts[1].snap(), hosts[2].snap()}
	l := &dialLog{dials: map[string]int{}}
	dial := l.wrap(func(ctx context.Context, ep Endpoint) (Transport, error) { return byDev[ep.Device].dial(ctx, ep) })
	o := applyOpts("test")
	o.Parallelism, o.MaxFailures = 1, 1
	// No VIP: ip(8) only reads the addresses, lb-a1's fake serves all.
	p, r, err := PlanApply(context.Background(), spec, res, dial, PlanOptions{IPCommand: hosts[0].ipCmd}, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Devices[0].Outcome != OutcomeRolledBack {
		t.Fatalf("lb-a1: %s (%v), want rolled-back", r.Devices[0].Outcome, r.Devices[0].Err)
	}
	for i := 1; i < 3; i++ {
		d := r.Devices[i]
		if d.Outcome != OutcomeSkipped || !strings.Contains(d.Err.Error(), "devices failed (max failures 1)") {
			t.Errorf("%s: %s (%v), want skipped by --max-failures", d.Device, d.Outcome, d.Err)
		}
		if p.Devices[i].Status != StatusChanges {
			t.Errorf("%s: planned %s (%s), want changes: read and shown though not changed", p.Devices[i].Device, p.Devices[i].Status, p.Devices[i].Error)
		}
		if after := hosts[i].snap(); after != before[i-1] {
			t.Errorf("%s changed after --max-failures was reached", d.Device)
		}
	}
	for _, th := range hosts {
		if n := l.dials[th.dev.Name]; n != 1 {
			t.Errorf("%s dialled %d times, want once", th.dev.Name, n)
		}
		th.waitUnlocked()
	}
}
