package reconcile_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"lbc/internal/testkit/lab"
	"lbc/reconcile"
	"lbc/reconcile/classify"
	"lbc/reconcile/host"
)

// Issue 12 item 6 (haproxy #2103), in the lab: the server-state file
// must not bring back an address or port that the file no longer says.
// A hand on the stats socket moves node 1's server to node 2's address on
// port 8081 (drift); the next change is a reload (the balancer's maxconn).
// HAProxy 2.6 would take the port of the dumped state line over the
// file's, and the server would run node 1's address on port 8081, where
// nothing listens: every request a 503. lbc's dump drops that line, so
// after the reload the server runs the file's address and port, node 1
// answers, and the next plan has nothing to do.
func TestE2EServerStateAddrChange(t *testing.T) {
	l := lab.ForTest(t, lab.Options{Devices: 1, Nodes: 2})
	e := &e2e{t: t, l: l, dir: t.TempDir()}
	for _, d := range []string{"devices", "balancers"} {
		os.MkdirAll(filepath.Join(e.dir, d), 0o755)
	}
	if err := l.WriteDevices(filepath.Join(e.dir, "devices", "devices.cue")); err != nil {
		t.Fatal(err)
	}
	dev := &l.Devices[0]
	n1, n2 := l.Nodes[0], l.Nodes[1]
	// A health monitor: a backend without one loads no server state.
	spec := filepath.Join(e.dir, "balancers", "b.cue")
	edit := func(old, new string) {
		t.Helper()
		b, err := os.ReadFile(spec)
		if err != nil || !strings.Contains(string(b), old) {
			t.Fatalf("spec %s: %v: no %q", spec, err, old)
		}
		if err := os.WriteFile(spec, []byte(strings.Replace(string(b), old, new, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e.writeRuntimeSpec("", rtNode{1, 1})
	edit(`healthMonitor: {type: "none"}`, `healthMonitor: {type: "tcp"}`)
	e.mustApply(e.plan(nil))
	e.wantRatio(1, []int{1})

	name := fmt.Sprintf("be_web/%s_%d", n1.Address, n1.Port)
	if a := e.stats(fmt.Sprintf("set server %s addr %s port 8081", name, n2.Address)); !strings.Contains(a, "changed from") {
		t.Fatalf("set server addr: %q", a)
	}
	moved := fmt.Sprintf("%s:8081 weight 1 ", n2.Address)
	if got := e.running(); len(got) != 1 || !strings.HasPrefix(got[0], moved) {
		t.Fatalf("runs %q after set server addr, want %q", got, moved)
	}

	// A structural change: the balancer gains a maxconn, a reload.
	edit("\thealthMonitor:", "\tmaxconn: 500\n\thealthMonitor:")
	pid := e.workerPid()
	p := e.plan(nil)
	if c := devicePlan(p, dev.Name).Change; c == nil || c.Class != classify.Reload {
		t.Fatalf("change %+v, want a reload", c)
	}
	e.mustApply(p)
	if e.workerPid() == pid {
		t.Fatalf("worker %d still runs: the change was not a reload", pid)
	}
	want := fmt.Sprintf("%s:%d weight 1 ready", n1.Address, n1.Port)
	if got := e.running(); !slices.Equal(got, []string{want}) {
		t.Errorf("after the reload runs %q, want %q (the file's address and port)", got, want)
	}
	got := e.traffic(1, 20)
	if got[n1.Name] != 20 {
		t.Errorf("after the reload 20 requests reached %v, want all on %s", got, n1.Name)
	}
	if p := e.plan(nil); len(changed(p)) != 0 {
		t.Errorf("plan after the reload: %v", changed(p))
	}
}

// writeDrainSpec writes balancers web1..webN, web<i> on device i with VIP
// i and nodes 1 and 2 (weight 1) where keep[i-1], node 1 alone otherwise.
func (e *e2e) writeDrainSpec(keep ...bool) {
	e.t.Helper()
	var b strings.Builder
	b.WriteString("package spec\n\n")
	for i, k := range keep {
		n1, n2 := e.l.Nodes[0], e.l.Nodes[1]
		fmt.Fprintf(&b, "balancers: web%d: {\n\ttenant: \"e2e\"\n\tprotocol: \"http\"\n\talgorithm: \"roundrobin\"\n", i+1)
		fmt.Fprintf(&b, "\tvips: [{address: %q, port: 80}]\n\tnodes: [\n", e.l.VIP(i+1))
		fmt.Fprintf(&b, "\t\t{address: %q, port: %d, weight: 1},\n", n1.Address, n1.Port)
		if k {
			fmt.Fprintf(&b, "\t\t{address: %q, port: %d, weight: 1},\n", n2.Address, n2.Port)
		}
		fmt.Fprintf(&b, "\t]\n\thealthMonitor: {type: \"none\"}\n\tplacement: {device: %q}\n}\n\n", e.l.Devices[i].Name)
	}
	if err := os.WriteFile(filepath.Join(e.dir, "balancers", "b.cue"), []byte(b.String()), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// slowOn sends two requests to VIP i's slow path at once (roundrobin over
// nodes 1 and 2 of weight 1: one each) and waits, bounded, until device
// i's backend web<i> holds both; the function returned waits for their
// answers.
func (e *e2e) slowOn(i int) func() []string {
	e.t.Helper()
	out := make([]string, 2)
	var wg sync.WaitGroup
	for j := range out {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			body, err := e.l.GetSlow(ctx, fmt.Sprintf("http://%s%s", e.l.VIP(i), lab.SlowPath))
			if err != nil {
				out[j] = "error"
				return
			}
			out[j] = strings.TrimSpace(body)
		}()
	}
	sock := filepath.Join(e.l.Devices[i-1].StateDir, "haproxy.sock")
	for k := 0; k < 100; k++ {
		if backendSessions(e.t, sock, fmt.Sprintf("be_web%d", i)) >= 2 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return func() []string { wg.Wait(); slices.Sort(out); return out }
}

// backendSessions is the current sessions of backend be on the stats
// socket sock.
func backendSessions(t *testing.T, sock, be string) int {
	for _, l := range strings.Split(lab.StatsQuery(t, sock, "show stat -1 2 -1"), "\n") {
		f := strings.Split(l, ",")
		if len(f) > 4 && f[0] == be && f[1] == "BACKEND" {
			n, _ := strconv.Atoi(f[4])
			return n
		}
	}
	return 0
}

// drainWindows records, per device, when its drain step started and when
// the step after it (runtime) started, and the drain's progress texts.
type drainWindows struct {
	mu       sync.Mutex
	start    map[string]time.Time
	end      map[string]time.Time
	progress map[string][]string
}

func newDrainWindows() *drainWindows {
	return &drainWindows{start: map[string]time.Time{}, end: map[string]time.Time{}, progress: map[string][]string{}}
}

func (w *drainWindows) record(dev, step string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case step == host.StepDrain:
		w.start[dev] = time.Now()
	case strings.HasPrefix(step, host.StepDrain+": "):
		w.progress[dev] = append(w.progress[dev], step)
	case step == host.StepRuntime:
		w.end[dev] = time.Now()
	}
}

// overlap reports whether the drain windows of a and b overlap.
func (w *drainWindows) overlap(a, b string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	sa, ea, sb, eb := w.start[a], w.end[a], w.start[b], w.end[b]
	return !sa.IsZero() && !ea.IsZero() && !sb.IsZero() && !eb.IsZero() && sa.Before(eb) && sb.Before(ea)
}

// Issue 12 item 4: several devices drain at once. Devices 1 and 2 each
// remove node 2 while a long request is open on it: both drains wait for
// their request, their windows (from the progress each device reports)
// overlap, both requests finish, both devices apply. Then with
// --max-failures 1 and two devices at a time, device 1's drain fails (its
// stats socket gone), device 2's drain in parallel finishes, device 3 is
// not started, as --max-failures does for any change (device 2 is held
// in its drain until device 1 has failed, so that the order is known).
func TestE2EParallelDrain(t *testing.T) {
	l := lab.ForTest(t, lab.Options{Devices: 3, Nodes: 2, StepLog: true})
	e := &e2e{t: t, l: l, dir: t.TempDir()}
	for _, d := range []string{"devices", "balancers"} {
		os.MkdirAll(filepath.Join(e.dir, d), 0o755)
	}
	if err := l.WriteDevices(filepath.Join(e.dir, "devices", "devices.cue")); err != nil {
		t.Fatal(err)
	}
	n1, n2 := l.Nodes[0], l.Nodes[1]
	d1, d2, d3 := &l.Devices[0], &l.Devices[1], &l.Devices[2]
	apply := func(p *reconcile.Plan, parallelism int, progress func(dev, step string), done func(reconcile.DeviceResult)) *reconcile.ApplyResult {
		t.Helper()
		r, err := reconcile.Apply(context.Background(), p, e.dial, reconcile.ApplyOptions{
			Owner: "e2e", LBCVersion: "e2e", Adopt: true, MaxFailures: 1, Parallelism: parallelism, Progress: progress, Done: done,
		})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	outcomes := func(r *reconcile.ApplyResult) map[string]reconcile.Outcome {
		m := map[string]reconcile.Outcome{}
		for _, d := range r.Devices {
			m[d.Device] = d.Outcome
		}
		return m
	}
	e.writeDrainSpec(true, true, true)
	e.mustApply(e.plan(nil))

	t.Log("devices 1 and 2 drain node 2, each with a long request open on it, at once")
	e.writeDrainSpec(false, false, true)
	p := e.plan(nil)
	// Both transactions wait at their drain until both long requests are
	// open: the requests then outlast the start of both drains whatever
	// the machine's load (a device that has not reached its drain would
	// still send them to node 2).
	for _, d := range []*lab.Device{d1, d2} {
		d.ClearSteps()
		if err := d.PauseAt(host.StepDrain); err != nil {
			t.Fatal(err)
		}
	}
	w := newDrainWindows()
	res := make(chan *reconcile.ApplyResult, 1)
	go func() { res <- apply(p, 10, w.record, nil) }()
	for _, d := range []*lab.Device{d1, d2} {
		if _, err := d.WaitStep(host.StepDrain, 60*time.Second); err != nil {
			d1.Resume()
			d2.Resume()
			<-res
			t.Fatal(err)
		}
	}
	wait1, wait2 := e.slowOn(1), e.slowOn(2)
	d1.Resume()
	d2.Resume()
	r := <-res
	slow1, slow2 := wait1(), wait2()
	t.Logf("drain progress %v; slow requests %q %q", w.progress, slow1, slow2)
	for _, d := range r.Devices {
		if d.Device == d3.Name {
			continue
		}
		if d.Outcome != reconcile.OutcomeApplied || d.Runtime == nil || len(d.Warnings) > 0 {
			t.Errorf("%s: %s, runtime %+v, warnings %q: %v", d.Device, d.Outcome, d.Runtime, d.Warnings, d.Err)
		}
		if pr := w.progress[d.Device]; len(pr) == 0 || !strings.Contains(pr[0], n2.Address.String()) {
			t.Errorf("%s: no drain progress for node 2: %q", d.Device, pr)
		}
	}
	if !w.overlap(d1.Name, d2.Name) {
		t.Errorf("the drains of %s (%v .. %v) and %s (%v .. %v) do not overlap",
			d1.Name, w.start[d1.Name], w.end[d1.Name], d2.Name, w.start[d2.Name], w.end[d2.Name])
	}
	for _, s := range [][]string{slow1, slow2} {
		if !slices.Equal(s, []string{n1.Name, n2.Name}) {
			t.Errorf("slow requests answered %q, want node 1's and node 2's finished", s)
		}
	}

	t.Log("--max-failures 1, two devices at a time: device 1's drain fails, device 2's finishes, device 3 is not started")
	e.writeDrainSpec(true, true, true)
	e.mustApply(e.plan(nil))
	e.writeDrainSpec(false, false, false)
	p = e.plan(nil)
	for _, d := range []*lab.Device{d1, d2} {
		d.ClearSteps()
		if err := d.PauseAt(host.StepDrain); err != nil {
			t.Fatal(err)
		}
	}
	w = newDrainWindows()
	d1Done := make(chan struct{})
	go func() {
		res <- apply(p, 2, w.record, func(r reconcile.DeviceResult) {
			if r.Device == d1.Name {
				close(d1Done)
			}
		})
	}()
	for _, d := range []*lab.Device{d1, d2} {
		if _, err := d.WaitStep(host.StepDrain, 60*time.Second); err != nil {
			d1.Resume()
			d2.Resume()
			<-res
			t.Fatal(err)
		}
	}
	wait2 = e.slowOn(2)
	// Device 1's stats socket goes away (its path only) until its
	// rollback starts. Device 2 waits in its drain until device 1 has
	// failed: --max-failures stops only devices not started yet, so
	// device 3 would start if device 2 freed its slot first.
	werr := hideSocketUntilRollback(t, d1, 60*time.Second)
	d1.Resume()
	select {
	case <-d1Done:
	case <-time.After(60 * time.Second):
		werr = fmt.Errorf("%s did not end within 60 s", d1.Name)
	}
	d2.Resume()
	r = <-res
	slow2 = wait2()
	if werr != nil {
		t.Fatal(werr)
	}
	want := map[string]reconcile.Outcome{d1.Name: reconcile.OutcomeRolledBack, d2.Name: reconcile.OutcomeApplied, d3.Name: reconcile.OutcomeSkipped}
	if got := outcomes(r); fmt.Sprint(got) != fmt.Sprint(want) {
		for _, d := range r.Devices {
			t.Logf("%s: %s: %v", d.Device, d.Outcome, d.Err)
		}
		t.Errorf("outcomes %v, want %v", got, want)
	}
	for _, d := range r.Devices {
		if d.Device == d3.Name && !strings.Contains(fmt.Sprint(d.Err), "max failures 1") {
			t.Errorf("%s: %v, want not started for max failures", d.Device, d.Err)
		}
	}
	if !slices.Equal(slow2, []string{n1.Name, n2.Name}) {
		t.Errorf("device 2's slow requests answered %q, want node 1's and node 2's finished", slow2)
	}
	if p := e.plan(nil); !slices.Equal(changed(p), []string{d1.Name, d3.Name}) {
		t.Errorf("plan after: changes on %v, want %s and %s", changed(p), d1.Name, d3.Name)
	}
}
