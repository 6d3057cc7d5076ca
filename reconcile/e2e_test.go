package reconcile_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"lbc/compiler"
	"lbc/internal/testkit/lab"
	"lbc/reconcile"
	"lbc/reconcile/classify"
	"lbc/schema"
)

// e2e drives plan and apply against a lab: real sshd, real HAProxy in
// network namespaces, real traffic.
type e2e struct {
	t    *testing.T
	l    *lab.Lab
	dir  string
	lock compiler.Lock
	// reload: apply by reload also what the runtime API could carry.
	reload bool
}

type bal struct {
	name    string
	vip     int   // lab.VIP index
	weights []int // node i+1 gets weights[i]; 0 = not a node
	device  int   // pin to lab device (1-based); 0 = scheduler decides
}

func (e *e2e) writeSpec(bals ...bal) {
	e.t.Helper()
	var b strings.Builder
	b.WriteString("package spec\n\n")
	for _, x := range bals {
		fmt.Fprintf(&b, "balancers: %q: {\n\ttenant: \"e2e\"\n\tprotocol: \"http\"\n\talgorithm: \"roundrobin\"\n", x.name)
		fmt.Fprintf(&b, "\tvips: [{address: %q, port: 80}]\n\tnodes: [\n", e.l.VIP(x.vip))
		for i, w := range x.weights {
			if w > 0 {
				n := e.l.Nodes[i]
				fmt.Fprintf(&b, "\t\t{address: %q, port: %d, weight: %d},\n", n.Address, n.Port, w)
			}
		}
		b.WriteString("\t]\n\thealthMonitor: {type: \"none\"}\n")
		if x.device > 0 {
			fmt.Fprintf(&b, "\tplacement: {device: %q}\n", e.l.Devices[x.device-1].Name)
		}
		b.WriteString("}\n\n")
	}
	if err := os.WriteFile(filepath.Join(e.dir, "balancers", "b.cue"), []byte(b.String()), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

func (e *e2e) dial(ctx context.Context, ep reconcile.Endpoint) (reconcile.Transport, error) {
	return reconcile.DialSSH(ctx, ep, reconcile.SSHConfig{KnownHosts: e.l.KnownHosts, KeyFile: e.l.KeyFile})
}

// plan loads and compiles the spec dir; edit may change the spec.
func (e *e2e) plan(edit func(*schema.Spec)) *reconcile.Plan {
	e.t.Helper()
	ctx := context.Background()
	spec, err := schema.LoadDir(ctx, e.dir)
	if err != nil {
		e.t.Fatalf("load: %v", err)
	}
	if edit != nil {
		edit(spec)
	}
	res, err := compiler.Compile(spec, e.lock, compiler.Options{Version: "e2e", Revision: "e2e"})
	if err != nil {
		e.t.Fatalf("compile: %v", err)
	}
	e.lock = res.Placement
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

func (e *e2e) apply(p *reconcile.Plan, progress func(dev, step string)) *reconcile.ApplyResult {
	e.t.Helper()
	start := time.Now()
	r, err := reconcile.Apply(context.Background(), p, e.dial, reconcile.ApplyOptions{
		Owner: "e2e", LBCVersion: "e2e", Adopt: true, Reload: e.reload, Progress: func(dev, step string) {
			if os.Getenv("LBC_E2E_TRACE") != "" {
				e.t.Logf("%s %s %s", time.Since(start).Round(time.Millisecond), dev, step)
			}
			if progress != nil {
				progress(dev, step)
			}
		},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Logf("apply: done in %v", time.Since(start).Round(time.Millisecond))
	return r
}

func (e *e2e) mustApply(p *reconcile.Plan) {
	e.t.Helper()
	r := e.apply(p, nil)
	for _, d := range r.Devices {
		if d.Outcome != reconcile.OutcomeApplied && d.Outcome != reconcile.OutcomeUnchanged {
			e.t.Fatalf("apply %s: %s: %v", d.Device, d.Outcome, d.Err)
		}
	}
}

// traffic sends n requests to vip:80 and counts the answering nodes.
func (e *e2e) traffic(vip, n int) map[string]int {
	e.t.Helper()
	got := map[string]int{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < n; i++ {
		body, err := e.l.Get(ctx, fmt.Sprintf("http://%s/", e.l.VIP(vip)))
		if err != nil {
			got["error"]++
			continue
		}
		got[strings.TrimSpace(body)]++
	}
	return got
}

// wantRatio checks that 60 requests split as the weights say (±2).
func (e *e2e) wantRatio(vip int, weights []int) {
	e.t.Helper()
	got := e.traffic(vip, 60)
	total := 0
	for _, w := range weights {
		total += w
	}
	for i, w := range weights {
		name := e.l.Nodes[i].Name
		want := 60 * w / total
		if d := got[name] - want; d < -2 || d > 2 {
			e.t.Errorf("vip %d: node %s got %d of 60, want %d (weights %v): %v", vip, name, got[name], want, weights, got)
		}
	}
	if got["error"] > 0 {
		e.t.Errorf("vip %d: %d of 60 requests failed", vip, got["error"])
	}
}

func changed(p *reconcile.Plan) []string {
	var out []string
	for _, d := range p.Devices {
		if d.Status == reconcile.StatusChanges {
			out = append(out, d.Device)
		}
	}
	return out
}

func devicePlan(p *reconcile.Plan, name string) *reconcile.DevicePlan {
	for i := range p.Devices {
		if p.Devices[i].Device == name {
			return &p.Devices[i]
		}
	}
	return nil
}

func TestE2E(t *testing.T) {
	l := lab.ForTest(t, lab.Options{Devices: 2, Nodes: 4})
	e := &e2e{t: t, l: l, dir: t.TempDir()}
	for _, d := range []string{"devices", "balancers"} {
		os.MkdirAll(filepath.Join(e.dir, d), 0o755)
	}
	if err := l.WriteDevices(filepath.Join(e.dir, "devices", "devices.cue")); err != nil {
		t.Fatal(err)
	}
	d1, d2 := l.Devices[0].Name, l.Devices[1].Name
	web := bal{name: "web", vip: 1, weights: []int{1, 2}, device: 1}
	api := bal{name: "api", vip: 2, weights: []int{0, 0, 1, 1}, device: 2}

	t.Log("first apply: both balancers")
	e.writeSpec(web, api)
	p := e.plan(nil)
	if got := changed(p); len(got) != 2 {
		t.Fatalf("first plan changes %v", got)
	}
	e.mustApply(p)
	e.wantRatio(1, web.weights)
	e.wantRatio(2, api.weights)
	if p := e.plan(nil); len(changed(p)) != 0 {
		t.Fatalf("plan after apply not empty: %v", changed(p))
	}

	t.Log("change a weight: one device, one server line")
	web.weights = []int{3, 2}
	e.writeSpec(web, api)
	p = e.plan(nil)
	if got := changed(p); len(got) != 1 || got[0] != d1 {
		t.Fatalf("weight change plans %v", got)
	}
	if diff := devicePlan(p, d1).ConfigDiff; !strings.Contains(diff, "weight 3") || strings.Count(diff, "\n-    server") != 1 {
		t.Errorf("weight diff:\n%s", diff)
	}
	if c := devicePlan(p, d1).Change; c == nil || c.Class != classify.Runtime || len(c.Ops) != 1 || c.Ops[0].Kind != classify.KindWeight ||
		!strings.HasPrefix(c.Ops[0].String(), "be_web/") || !strings.HasSuffix(c.Ops[0].String(), " weight 1 → 3") {
		t.Errorf("weight change class: %+v", c)
	}
	e.mustApply(p)
	e.wantRatio(1, web.weights)

	t.Log("add a node")
	web.weights = []int{3, 2, 1}
	e.writeSpec(web, api)
	p = e.plan(nil)
	if diff := devicePlan(p, d1).ConfigDiff; strings.Count(diff, "\n+    server") != 1 || strings.Count(diff, "\n-    server") != 0 {
		t.Errorf("add-node diff:\n%s", diff)
	}
	if c := devicePlan(p, d1).Change; c == nil || c.Class != classify.Runtime || len(c.Ops) != 1 || c.Ops[0].Kind != classify.KindAdd {
		t.Errorf("add-node class: %+v", c)
	}
	e.mustApply(p)
	e.wantRatio(1, web.weights)

	t.Log("no traffic lost on web while api changes on the other device, and while web's own device reloads")
	api.weights = []int{0, 0, 2, 1}
	web.weights = []int{3, 2, 2}
	e.writeSpec(web, api)
	p = e.plan(nil)
	var sent, failed atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		for i := 0; i < 20000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			sent.Add(1)
			if _, err := l.Get(ctx, fmt.Sprintf("http://%s/", l.VIP(1))); err != nil {
				failed.Add(1)
			}
		}
	}()
	e.mustApply(p)
	close(stop)
	<-done
	t.Logf("during apply: %d requests to web, %d failed", sent.Load(), failed.Load())
	if failed.Load() > 0 {
		t.Errorf("%d of %d requests failed during apply", failed.Load(), sent.Load())
	}

	t.Log("move a VIP")
	web.vip = 3
	e.writeSpec(web, api)
	p = e.plan(nil)
	dp := devicePlan(p, d1)
	if dp.Change == nil || dp.Change.Class != classify.Reload || !strings.HasSuffix(dp.Change.Reason, " is new") {
		t.Errorf("move class: %+v", dp.Change)
	}
	if fmt.Sprint(dp.VIPsAdd) != fmt.Sprintf("[%s/24 dev eth0]", l.VIP(3)) && !strings.Contains(fmt.Sprint(dp.VIPsAdd), l.VIP(3).String()+"/") {
		t.Errorf("move: add %v", dp.VIPsAdd)
	}
	if !strings.Contains(fmt.Sprint(dp.VIPsRemove), l.VIP(1).String()+"/") {
		t.Errorf("move: remove %v", dp.VIPsRemove)
	}
	e.mustApply(p)
	e.wantRatio(3, web.weights)
	if got := e.traffic(1, 3); got["error"] != 3 {
		t.Errorf("old VIP still answers: %v", got)
	}
	if out, _ := l.Exec(context.Background(), 1, "ip", "-o", "addr", "show", "dev", "eth0"); strings.Contains(string(out), " "+l.VIP(1).String()+"/") {
		t.Errorf("old VIP still on %s:\n%s", d1, out)
	}

	t.Log("remove a balancer")
	e.writeSpec(web)
	p = e.plan(nil)
	if got := changed(p); len(got) != 1 || got[0] != d2 {
		t.Fatalf("remove plans %v", got)
	}
	if !strings.Contains(fmt.Sprint(devicePlan(p, d2).VIPsRemove), l.VIP(2).String()+"/") {
		t.Errorf("remove: vips %v", devicePlan(p, d2).VIPsRemove)
	}
	e.mustApply(p)
	if got := e.traffic(2, 3); got["error"] != 3 {
		t.Errorf("removed balancer still answers: %v", got)
	}
	e.wantRatio(3, web.weights)

	t.Log("drift: a hand edit shows in the plan and apply restores it")
	cfg := l.Devices[0].Config
	orig, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, append(append([]byte{}, orig...), "# hand edit\n"...), 0o644)
	p = e.plan(nil)
	if diff := devicePlan(p, d1).ConfigDiff; !strings.Contains(diff, "-# hand edit") {
		t.Errorf("drift diff:\n%s", diff)
	}
	e.mustApply(p)
	if now, _ := os.ReadFile(cfg); string(now) != string(orig) {
		t.Error("drift not repaired")
	}

	t.Log("a reload command that fails (--reload: a weight change is runtime-capable): rolled back, traffic as before")
	e.reload = true
	before, _ := os.ReadFile(cfg)
	web.weights = []int{1, 1, 1}
	e.writeSpec(web)
	// The reload fails for the new config (all weights 1) only, as a
	// reload that chokes on what it is given would.
	p = e.plan(func(s *schema.Spec) {
		d := s.Devices[d1]
		d.HAProxy.Reload = "if grep -qw 'weight 1' " + d.HAProxy.Config + "; then echo reload refused >&2; exit 1; fi; " + d.HAProxy.Reload
	})
	r := e.apply(p, nil)
	if dr := r.Devices[0]; dr.Outcome != reconcile.OutcomeRolledBack {
		t.Fatalf("failing reload: %s: %v", dr.Outcome, dr.Err)
	}
	if now, _ := os.ReadFile(cfg); string(now) != string(before) {
		t.Error("config not rolled back")
	}
	e.wantRatio(3, []int{3, 2, 2})

	t.Log("a config HAProxy rejects at load (check skipped): verify fails, rolled back")
	p = e.plan(nil)
	dp = devicePlan(p, d1)
	dp.Host.Check = ""
	dp.Desired.Config += "\nfrontend broken\n    bind " + l.VIP(3).String() + ":80 nosuchkeyword\n"
	r = e.apply(p, nil)
	if dr := r.Devices[0]; dr.Outcome != reconcile.OutcomeRolledBack {
		t.Fatalf("rejected config: %s: %v", dr.Outcome, dr.Err)
	} else {
		t.Logf("rejected config: %v", dr.Err)
	}
	e.wantRatio(3, []int{3, 2, 2})

	t.Log("sshd sessions killed mid-apply (at the reload): the host ends old or new, never a mix, and says which")
	p = e.plan(nil)
	r = e.apply(p, func(dev, step string) {
		if dev == d1 && step == reconcile.StepReload {
			if err := l.KillSSHSessions(context.Background(), 1); err != nil {
				t.Error(err)
			}
		}
	})
	out := r.Devices[0].Outcome
	t.Logf("killed session: %s: %v", out, r.Devices[0].Err)
	time.Sleep(2 * time.Second) // a rollback by the lock holder, if any, has run
	now, _ := os.ReadFile(cfg)
	p2 := e.plan(nil)
	switch got := devicePlan(p2, d1).ConfigDiff; {
	case string(now) == string(before):
		if out != reconcile.OutcomeRolledBack {
			t.Errorf("host runs the old config, apply said %s", out)
		}
		e.wantRatio(3, []int{3, 2, 2})
		if got == "" || !strings.Contains(got, "weight 1") {
			t.Errorf("plan after the cut does not show the whole change:\n%s", got)
		}
		e.mustApply(p2)
	case out == reconcile.OutcomeApplied:
		// Past its session check the script runs to its end: committed.
		if got != "" {
			t.Errorf("host committed but the plan shows:\n%s", got)
		}
	default:
		t.Fatalf("after a killed session: apply said %s, host config:\n%s", out, now)
	}
	e.mustApply(p2)
	e.wantRatio(3, []int{1, 1, 1})
}
