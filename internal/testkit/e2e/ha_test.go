package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"lbc/compiler"
	"lbc/internal/testkit/lab"
	"lbc/reconcile"
	"lbc/schema"
)

// haBal is one HA balancer of the test spec.
type haBal struct {
	name     string
	vip      int      // lab.VIP index
	zones    []string // placement.zones, preferred primary zone first
	failback bool
}

// haEnv drives lbc against an HA lab: spec dir, lock, and the last compile.
type haEnv struct {
	t    *testing.T
	l    *lab.Lab
	dir  string
	lock compiler.Lock
	res  *compiler.Result
}

func (e *haEnv) dial(ctx context.Context, ep reconcile.Endpoint) (reconcile.Transport, error) {
	return reconcile.DialSSH(ctx, ep, reconcile.SSHConfig{KnownHosts: e.l.KnownHosts, KeyFile: e.l.KeyFile})
}

func (e *haEnv) writeSpec(bals ...haBal) {
	e.t.Helper()
	var b strings.Builder
	b.WriteString("package spec\n\n")
	for _, x := range bals {
		fmt.Fprintf(&b, "balancers: %q: {\n\ttenant: \"ha\"\n\tprotocol: \"http\"\n", x.name)
		fmt.Fprintf(&b, "\tvips: [{address: %q, port: 80}]\n\tnodes: [\n", e.l.VIP(x.vip))
		for _, n := range e.l.Nodes {
			fmt.Fprintf(&b, "\t\t{address: %q, port: %d},\n", n.Address, n.Port)
		}
		b.WriteString("\t]\n\thealthMonitor: {type: \"http\", path: \"/\", expect: 200, interval: \"1s\"}\n")
		fmt.Fprintf(&b, "\tplacement: {ha: true, zones: [%q, %q]}\n", x.zones[0], x.zones[1])
		fmt.Fprintf(&b, "\tfailback: %t\n}\n\n", x.failback)
	}
	if err := os.WriteFile(filepath.Join(e.dir, "balancers", "ha.cue"), []byte(b.String()), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// plan loads, compiles (keeping the lock) and plans.
func (e *haEnv) plan(ctx context.Context) *reconcile.Plan {
	e.t.Helper()
	spec, err := schema.LoadDir(ctx, e.dir)
	if err != nil {
		e.t.Fatalf("load: %v", err)
	}
	res, err := compiler.Compile(spec, e.lock, compiler.Options{Version: "test"})
	if err != nil {
		e.t.Fatalf("compile: %v", err)
	}
	e.lock, e.res = res.Placement, res
	p, err := reconcile.BuildPlan(ctx, spec, res, e.dial, reconcile.PlanOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, d := range p.Devices {
		if d.Status == reconcile.StatusError || d.Status == reconcile.StatusUnreachable {
			e.t.Fatalf("plan %s: %s", d.Device, d.Error)
		}
	}
	return p
}

// haSteps records when each device started each step.
type haSteps struct {
	mu sync.Mutex
	at map[string]map[string]time.Time // device → step → first start
}

func (s *haSteps) progress(dev, step string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.at == nil {
		s.at = map[string]map[string]time.Time{}
	}
	if s.at[dev] == nil {
		s.at[dev] = map[string]time.Time{}
	}
	if _, ok := s.at[dev][step]; !ok {
		s.at[dev][step] = time.Now()
	}
}

// mustApply applies p in HAWaves order and fails the test unless every
// device applied (or had nothing to do).
func (e *haEnv) mustApply(ctx context.Context, p *reconcile.Plan) *haSteps {
	e.t.Helper()
	st, r := e.apply(ctx, p, nil)
	for _, d := range r.Devices {
		if d.Outcome != reconcile.OutcomeApplied && d.Outcome != reconcile.OutcomeUnchanged {
			e.t.Fatalf("apply %s: %s: %v", d.Device, d.Outcome, d.Err)
		}
	}
	return st
}

// apply applies p in HAWaves order with verifier v (nil: the default) and
// logs each device's steps.
func (e *haEnv) apply(ctx context.Context, p *reconcile.Plan, v reconcile.Verifier) (*haSteps, *reconcile.ApplyResult) {
	e.t.Helper()
	st := &haSteps{}
	start := time.Now()
	waves := reconcile.HAWaves(e.res)
	e.t.Logf("apply waves: %v", waves(p))
	r, err := reconcile.Apply(ctx, p, e.dial, reconcile.ApplyOptions{
		Owner: "e2e-ha", LBCVersion: "test", Adopt: true, Progress: st.progress, Waves: waves, Verifier: v,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, d := range r.Devices {
		for _, w := range d.Warnings {
			e.t.Logf("apply %s: warning: %s", d.Device, w)
		}
	}
	e.t.Logf("apply: done in %v", time.Since(start).Round(time.Millisecond))
	for _, d := range r.Devices {
		var steps []string
		for _, s := range append([]string{reconcile.StepConnect}, d.Steps...) {
			if at, ok := st.at[d.Device][s]; ok {
				steps = append(steps, fmt.Sprintf("%s@%.2fs", s, at.Sub(start).Seconds()))
			}
		}
		e.t.Logf("apply %s: %s: %s", d.Device, d.Outcome, strings.Join(steps, " "))
	}
	return st, r
}

// haFailVerify fails the first verification on the host at address, as a
// reload that did not take would: apply must roll that device back.
type haFailVerify struct {
	reconcile.HAProxyVerifier
	address string
	failed  atomic.Bool
}

func (v *haFailVerify) After(h reconcile.Host, config []byte) (string, error) {
	real, err := v.HAProxyVerifier.After(h, config)
	if err != nil || h.Address != v.address || v.failed.Swap(true) {
		return real, err
	}
	// The real wait runs (the reload completes) but what it saw is
	// dropped: verification fails after the swap and the reload, as for a
	// config that does not do what it should.
	return "{\n" + real + "\n} >/dev/null 2>&1\necho 'injected by the test: the new config does not run' >&2; false", nil
}

// devIndex returns the 1-based lab index of the device named name.
func (e *haEnv) devIndex(name string) int {
	for i, d := range e.l.Devices {
		if d.Name == name {
			return i + 1
		}
	}
	e.t.Fatalf("no lab device %s", name)
	return 0
}

// holders returns the devices whose eth0 carries addr now.
func (e *haEnv) holders(ctx context.Context, addr netip.Addr) ([]string, error) {
	var on []string
	for i, d := range e.l.Devices {
		out, err := e.l.Exec(ctx, i+1, "ip", "-j", "addr", "show", "dev", "eth0")
		if err != nil {
			return nil, err
		}
		var ifs []struct {
			AddrInfo []struct {
				Local string `json:"local"`
			} `json:"addr_info"`
		}
		if err := json.Unmarshal(out, &ifs); err != nil {
			return nil, fmt.Errorf("%s: ip -j addr: %w", d.Name, err)
		}
		for _, f := range ifs {
			for _, a := range f.AddrInfo {
				if a.Local == addr.String() {
					on = append(on, d.Name)
				}
			}
		}
	}
	return on, nil
}

// waitHolder waits (bounded) until addr is on device want only, and
// returns how long that took.
func (e *haEnv) waitHolder(ctx context.Context, addr netip.Addr, want string, limit time.Duration) time.Duration {
	e.t.Helper()
	d, err := e.holderAfter(ctx, addr, want, limit)
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

// holderAfter is waitHolder returning an error (for other goroutines).
func (e *haEnv) holderAfter(ctx context.Context, addr netip.Addr, want string, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	var last []string
	for time.Since(start) < limit {
		on, err := e.holders(ctx, addr)
		if err != nil {
			return 0, err
		}
		if len(on) == 1 && on[0] == want {
			return time.Since(start), nil
		}
		last = on
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return 0, fmt.Errorf("VIP %s: want it on %s only within %v, it is on %v", addr, want, limit, last)
}

// holdsFor checks every 250 ms for d that addr stays on device want only.
func (e *haEnv) holdsFor(ctx context.Context, addr netip.Addr, want string, d time.Duration) {
	e.t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); {
		on, err := e.holders(ctx, addr)
		if err != nil {
			e.t.Fatal(err)
		}
		if len(on) != 1 || on[0] != want {
			e.t.Fatalf("VIP %s: want it to stay on %s, it is on %v", addr, want, on)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// holdsNone checks every 250 ms for d that no device carries addr.
func (e *haEnv) holdsNone(ctx context.Context, addr netip.Addr, d time.Duration) {
	e.t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); {
		on, err := e.holders(ctx, addr)
		if err != nil {
			e.t.Fatal(err)
		}
		if len(on) != 0 {
			e.t.Fatalf("VIP %s: want it on no device, it is on %v", addr, on)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// haOutage is what a request loop saw around a disruption.
type haOutage struct {
	requests, failed int
	down             time.Duration // first failure → first success after the last failure
	firstErr         string
}

func (o haOutage) String() string {
	s := fmt.Sprintf("%d of %d requests failed, traffic back after %.2f s", o.failed, o.requests, o.down.Seconds())
	if o.firstErr != "" {
		s += " (first error: " + o.firstErr + ")"
	}
	return s
}

// loop sends a request to url every 50 ms (each with a 1 s timeout) for at
// most 30 s. After 10 successes it runs disrupt (in the background); it
// stops once disrupt has returned, settle has passed since it started, and
// the last 20 requests succeeded.
func (e *haEnv) loop(ctx context.Context, url string, disrupt func() error, settle time.Duration) haOutage {
	e.t.Helper()
	const (
		every    = 50 * time.Millisecond
		maxTotal = 30 * time.Second
	)
	var (
		o                       haOutage
		ok                      int // consecutive successes
		firstFail, lastFail, up time.Time
		started                 time.Time
		done                    = make(chan error, 1)
		disrupted               bool
	)
	deadline := time.Now().Add(maxTotal)
	for time.Now().Before(deadline) {
		t0 := time.Now()
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		body, err := e.l.Get(rctx, url)
		cancel()
		o.requests++
		if err == nil && !strings.HasPrefix(strings.TrimSpace(body), "n") {
			err = fmt.Errorf("unexpected body %q", body)
		}
		if err != nil {
			// Before the disruption a failure only delays it (a loaded
			// machine); the loop waits for 10 successes in a row.
			if !started.IsZero() {
				o.failed++
				if firstFail.IsZero() {
					firstFail, o.firstErr = t0, err.Error()
				}
				lastFail, up = t0, time.Time{}
			}
			ok = 0
		} else {
			ok++
			if !lastFail.IsZero() && up.IsZero() {
				up = time.Now()
			}
		}
		if started.IsZero() && ok >= 10 {
			started = time.Now()
			go func() { done <- disrupt() }()
		}
		if !started.IsZero() && !disrupted {
			select {
			case err := <-done:
				if err != nil {
					e.t.Fatalf("disrupt: %v", err)
				}
				disrupted = true
			default:
			}
		}
		if disrupted && time.Since(started) >= settle && ok >= 20 {
			break
		}
		if d := every - time.Since(t0); d > 0 {
			time.Sleep(d)
		}
	}
	if !disrupted {
		if !started.IsZero() {
			<-done // bounded: disrupt's own waits are bounded
		}
		e.t.Fatalf("request loop: no steady traffic within %v: %s", maxTotal, o)
	}
	if ok < 20 {
		e.t.Fatalf("request loop: traffic did not recover within %v: %s", maxTotal, o)
	}
	if !firstFail.IsZero() {
		o.down = up.Sub(firstFail)
	}
	return o
}

// haMaxOutage is the target for a failover.
const haMaxOutage = 5 * time.Second

// TestHAFailover places HA balancers on two devices in two zones, applies
// them (a first try rolled back), and stops and restarts the primary's HAProxy under a
// request loop: the VIP moves to the standby and back (failback: true) or
// stays (failback: false).
func TestHAFailover(t *testing.T) {
	l := lab.ForTest(t, lab.Options{Devices: 2, Nodes: 2, Zones: []string{"az-a", "az-b"}, Keepalived: true})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	e := &haEnv{t: t, l: l, dir: t.TempDir()}
	t.Cleanup(func() { // before the lab's Close: show what keepalived did
		if t.Failed() {
			for i, d := range l.Devices {
				b, _ := l.ReadFile(i+1, "keepalived.log")
				t.Logf("%s keepalived.log:\n%s", d.Name, b)
			}
		}
	})
	for _, d := range []string{"devices", "balancers"} {
		if err := os.MkdirAll(filepath.Join(e.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.WriteDevices(filepath.Join(e.dir, "devices", "devices.cue")); err != nil {
		t.Fatal(err)
	}
	// The preferred zone is az-b, the zone of the second device by name:
	// the scheduler must follow placement.zones, not the name order.
	zones := []string{"az-b", "az-a"}
	web := haBal{name: "web", vip: 1, zones: zones, failback: true}
	api := haBal{name: "api", vip: 2, zones: zones, failback: false}
	webVIP, apiVIP := l.VIP(web.vip), l.VIP(api.vip)
	webURL, apiURL := "http://"+webVIP.String()+"/", "http://"+apiVIP.String()+"/"

	// 1. One HA balancer with failback.
	e.writeSpec(web)
	p := e.plan(ctx)
	pl := e.res.Placement[web.name]
	primary, standby := pl.Primary, pl.Standby
	t.Logf("placement: web primary %s, standby %s", primary, standby)
	pi, si := e.devIndex(primary), e.devIndex(standby)
	if l.Devices[pi-1].Zone != "az-b" || l.Devices[si-1].Zone != "az-a" {
		t.Fatalf("placement %s (%s) / %s (%s): want the primary in az-b and the standby in az-a",
			primary, l.Devices[pi-1].Zone, standby, l.Devices[si-1].Zone)
	}
	for _, d := range p.Devices {
		if d.Status != reconcile.StatusChanges || !d.Desired.ManageKeepalived || len(d.VIPsAdd) != 0 {
			t.Fatalf("plan %s: status %s, keepalived %t, VIPs to add %v: want changes, keepalived, no VIP added by hand",
				d.Device, d.Status, d.Desired.ManageKeepalived, d.VIPsAdd)
		}
	}
	// The first try fails verification on the standby (applied first):
	// it rolls back, the primary is not started, and keepalived, which
	// the standby's apply started with web's instance, must hold no VIP.
	_, r := e.apply(ctx, p, &haFailVerify{address: l.Devices[si-1].Address.String()})
	for _, d := range r.Devices {
		want := reconcile.OutcomeSkipped
		if d.Device == standby {
			want = reconcile.OutcomeRolledBack
		}
		if d.Outcome != want {
			t.Fatalf("first apply with a failing verify on %s: %s: %s (%v), want %s", standby, d.Device, d.Outcome, d.Err, want)
		}
	}
	if ka, _ := l.ReadFile(si, "keepalived.conf"); bytes.Contains(ka, []byte("vrrp_instance")) {
		t.Fatalf("%s keepalived.conf after the rolled-back first apply:\n%s", standby, ka)
	}
	// Started with the instance, keepalived would take the VIP after
	// about 3.6 s (3 adverts and the skew) alone: watch longer than that.
	e.holdsNone(ctx, webVIP, 5*time.Second)
	t.Logf("rolled-back first apply on %s: keepalived.conf without instances, VIP %s on no device for 5 s", standby, webVIP)
	p = e.plan(ctx)
	for _, d := range p.Devices {
		if d.Status != reconcile.StatusChanges {
			t.Fatalf("plan after the rolled-back first apply: %s is %s", d.Device, d.Status)
		}
		if d.Device == standby && !strings.Contains(d.KeepalivedDiff, "-# generated by lbc; do not edit (device "+standby+"): no HA balancer on this device") {
			t.Fatalf("plan after the rolled-back first apply: %s keepalived diff:\n%s\nwant it from the file without instances", standby, d.KeepalivedDiff)
		}
	}
	st := e.mustApply(ctx, p)
	if s, p := st.at[standby][reconcile.StepCommit], st.at[primary][reconcile.StepConnect]; s.IsZero() || p.IsZero() || !s.Before(p) {
		t.Fatalf("apply order: standby %s wrote its state at %v, primary %s connected at %v: want the standby done first",
			standby, s.Format(time.StampMilli), primary, p.Format(time.StampMilli))
	}
	t.Logf("apply order: standby %s done %v before primary %s started",
		standby, st.at[primary][reconcile.StepConnect].Sub(st.at[standby][reconcile.StepCommit]).Round(time.Millisecond), primary)
	for _, i := range []int{pi, si} {
		if !l.KeepalivedRunning(i) {
			t.Fatalf("keepalived does not run on %s after apply", l.Devices[i-1].Name)
		}
	}
	took := e.waitHolder(ctx, webVIP, primary, 15*time.Second)
	t.Logf("VIP %s on primary %s %v after apply", webVIP, primary, took.Round(10*time.Millisecond))
	if body, err := l.Get(ctx, webURL); err != nil {
		t.Fatalf("get %s: %v", webURL, err)
	} else {
		t.Logf("get %s: %s", webURL, strings.TrimSpace(body))
	}
	if p := e.plan(ctx); p.HasChanges() {
		for _, d := range p.Devices {
			t.Logf("%s: %s %s %s %v %v", d.Device, d.Status, d.ConfigDiff, d.KeepalivedDiff, d.VIPsAdd, d.VIPsRemove)
		}
		t.Fatal("second plan has changes")
	}

	// Failover: stop the primary's HAProxy.
	o := e.loop(ctx, webURL, func() error { return l.StopHAProxy(ctx, pi) }, 3*time.Second)
	t.Logf("FAILOVER (HAProxy stopped on primary %s): %s", primary, o)
	e.waitHolder(ctx, webVIP, standby, 5*time.Second)
	if o.down > haMaxOutage {
		t.Errorf("failover: traffic back after %v, want under %v", o.down.Round(10*time.Millisecond), haMaxOutage)
	}

	// Failback: start it again.
	var moved time.Duration
	o = e.loop(ctx, webURL, func() error {
		start := time.Now()
		if err := l.StartHAProxy(ctx, pi); err != nil {
			return err
		}
		_, err := e.holderAfter(ctx, webVIP, primary, 15*time.Second)
		moved = time.Since(start)
		return err
	}, 3*time.Second)
	t.Logf("FAILBACK (HAProxy started on primary %s): VIP back after %.2f s; %s", primary, moved.Seconds(), o)
	if o.down > haMaxOutage {
		t.Errorf("failback: traffic back after %v, want under %v", o.down.Round(10*time.Millisecond), haMaxOutage)
	}

	// 2. Add a balancer with failback: false on the same pair.
	e.writeSpec(web, api)
	p = e.plan(ctx)
	if pl := e.res.Placement[api.name]; pl.Primary != primary || pl.Standby != standby {
		t.Fatalf("placement of api %s/%s: want %s/%s", pl.Primary, pl.Standby, primary, standby)
	}
	// api's pair is new and does not preempt: the plan lists it on both
	// devices, and apply changes the primary first (its keepalived must
	// take the VIP; started on the standby first, the standby would keep
	// it), although the two devices share web's pair.
	for _, d := range p.Devices {
		if fmt.Sprint(d.NewVRRP) != "["+api.name+"]" {
			t.Fatalf("plan %s: newVRRP %v, want [%s]", d.Device, d.NewVRRP, api.name)
		}
	}
	// The first try fails verification on the standby, applied second: it
	// must roll back haproxy.cfg and keepalived.conf together (and reload
	// both), while the primary keeps the new files.
	oldCfg, oldKA := e.readFile(si, "haproxy.cfg"), e.readFile(si, "keepalived.conf")
	reloads := strings.Count(string(e.readFile(si, "keepalived.log")), "Reloading ...")
	st, r = e.apply(ctx, p, &haFailVerify{address: l.Devices[si-1].Address.String()})
	for _, d := range r.Devices {
		want := reconcile.OutcomeApplied
		if d.Device == standby {
			want = reconcile.OutcomeRolledBack
		}
		if d.Outcome != want {
			t.Fatalf("apply with a failing verify on %s: %s: %s (%v), want %s", standby, d.Device, d.Outcome, d.Err, want)
		}
	}
	if p, s := st.at[primary][reconcile.StepCommit], st.at[standby][reconcile.StepConnect]; p.IsZero() || s.IsZero() || !p.Before(s) {
		t.Fatalf("apply order of a new pair: primary %s wrote its state at %v, standby %s connected at %v: want the primary done first",
			primary, p.Format(time.StampMilli), standby, s.Format(time.StampMilli))
	}
	if !bytes.Equal(e.readFile(si, "haproxy.cfg"), oldCfg) || !bytes.Equal(e.readFile(si, "keepalived.conf"), oldKA) {
		t.Fatalf("%s rolled back, but its haproxy.cfg or keepalived.conf is not the old one", standby)
	}
	if !l.KeepalivedRunning(si) {
		t.Fatalf("keepalived does not run on %s after the rollback", standby)
	}
	if n := strings.Count(string(e.readFile(si, "keepalived.log")), "Reloading ...") - reloads; n < 2 {
		t.Errorf("keepalived on %s reloaded %d times: want the apply's reload and the rollback's", standby, n)
	}
	if _, err := l.Get(ctx, webURL); err != nil {
		t.Fatalf("after the rollback on %s: %v", standby, err)
	}
	t.Logf("rollback on %s: haproxy.cfg and keepalived.conf restored, keepalived reloaded, VIP %s serving", standby, webVIP)
	p = e.plan(ctx)
	for _, d := range p.Devices {
		if want := d.Device == standby; (d.Status == reconcile.StatusChanges) != want {
			t.Fatalf("plan after the rollback: %s is %s", d.Device, d.Status)
		}
	}
	e.mustApply(ctx, p)
	// The first apply of api's pair puts its VIP on the primary, and it
	// stays there now that the standby runs the instance too.
	took = e.waitHolder(ctx, apiVIP, primary, 15*time.Second)
	t.Logf("VIP %s (failback false) on primary %s %v after apply", apiVIP, primary, took.Round(10*time.Millisecond))
	e.holdsFor(ctx, apiVIP, primary, 4*time.Second)
	e.holdsFor(ctx, webVIP, primary, time.Second)

	o = e.loop(ctx, apiURL, func() error { return l.StopHAProxy(ctx, pi) }, 3*time.Second)
	t.Logf("FAILOVER failback=false (HAProxy stopped on primary %s): %s", primary, o)
	if o.down > haMaxOutage {
		t.Errorf("failover (failback false): traffic back after %v, want under %v", o.down.Round(10*time.Millisecond), haMaxOutage)
	}
	e.waitHolder(ctx, apiVIP, standby, 5*time.Second)
	e.waitHolder(ctx, webVIP, standby, 5*time.Second)
	if err := l.StartHAProxy(ctx, pi); err != nil {
		t.Fatal(err)
	}
	// The failback VIP returns; the nopreempt one stays on the standby.
	took = e.waitHolder(ctx, webVIP, primary, 15*time.Second)
	t.Logf("HAProxy back on %s: VIP %s (failback true) back after %v; checking VIP %s (failback false) stays on %s",
		primary, webVIP, took.Round(10*time.Millisecond), apiVIP, standby)
	e.holdsFor(ctx, apiVIP, standby, 6*time.Second)
	for _, u := range []string{webURL, apiURL} {
		if _, err := l.Get(ctx, u); err != nil {
			t.Errorf("get %s: %v", u, err)
		}
	}
	if p := e.plan(ctx); p.HasChanges() {
		t.Error("plan after the failovers has changes: keepalived's VIPs must not show in lbc's plan")
	}
}

func (e *haEnv) readFile(dev int, name string) []byte {
	e.t.Helper()
	b, err := e.l.ReadFile(dev, name)
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}
