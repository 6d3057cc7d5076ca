package reconcile_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"lbc/internal/testkit/lab"
	"lbc/reconcile"
	"lbc/reconcile/classify"
	"lbc/reconcile/host"
)

// rtNode is node i (1-based) of the lab at weight w.
type rtNode struct{ i, w int }

// writeRuntimeSpec writes balancer web (VIP 1, roundrobin, health
// monitor none) with nodes, pinned to device 1, with drain timeout drain
// ("" for the default).
func (e *e2e) writeRuntimeSpec(drain string, nodes ...rtNode) {
	e.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "package spec\n\nbalancers: web: {\n\ttenant: \"e2e\"\n\tprotocol: \"http\"\n\talgorithm: \"roundrobin\"\n")
	fmt.Fprintf(&b, "\tvips: [{address: %q, port: 80}]\n\tnodes: [\n", e.l.VIP(1))
	for _, n := range nodes {
		nd := e.l.Nodes[n.i-1]
		fmt.Fprintf(&b, "\t\t{address: %q, port: %d, weight: %d},\n", nd.Address, nd.Port, n.w)
	}
	b.WriteString("\t]\n\thealthMonitor: {type: \"none\"}\n")
	if drain != "" {
		fmt.Fprintf(&b, "\tdrain: {timeout: %q}\n", drain)
	}
	fmt.Fprintf(&b, "\tplacement: {device: %q}\n}\n", e.l.Devices[0].Name)
	if err := os.WriteFile(filepath.Join(e.dir, "balancers", "b.cue"), []byte(b.String()), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// stats sends one command to device 1's stats socket.
func (e *e2e) stats(cmd string) string {
	e.t.Helper()
	return lab.StatsQuery(e.t, filepath.Join(e.l.Devices[0].StateDir, "haproxy.sock"), cmd)
}

// workerPid is the pid of device 1's HAProxy worker.
func (e *e2e) workerPid() int {
	e.t.Helper()
	for _, l := range strings.Split(e.stats("show info"), "\n") {
		if p, ok := strings.CutPrefix(l, "Pid: "); ok {
			n, err := strconv.Atoi(strings.TrimSpace(p))
			if err == nil {
				return n
			}
		}
	}
	e.t.Fatal("show info names no Pid")
	return 0
}

// running is device 1's servers as `show servers state` shows them.
func (e *e2e) running() []string {
	e.t.Helper()
	ss, err := host.ParseServersState(e.stats("show servers state"))
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, s := range ss {
		out = append(out, fmt.Sprintf("%s weight %d %s", s.Addr, s.Weight, s.State))
	}
	slices.Sort(out)
	return out
}

// load sends requests to VIP 1 one after another until stop is called,
// at most 5,000 or for 60 s; stop returns how many were sent, how many
// failed, and how many of those sent after mark() reached node name.
type load struct {
	stop   func() (sent, failed, afterMark int)
	mark   func()
	answer func(body string)
}

func (e *e2e) startLoad(name string) load {
	var sent, failed, after atomic.Int64
	var marked atomic.Bool
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 5000 && ctx.Err() == nil; i++ {
			m := marked.Load()
			body, err := e.l.Get(ctx, fmt.Sprintf("http://%s/", e.l.VIP(1)))
			if ctx.Err() != nil {
				return
			}
			sent.Add(1)
			if err != nil {
				failed.Add(1)
				continue
			}
			if m && strings.TrimSpace(body) == name {
				after.Add(1)
			}
		}
	}()
	return load{
		stop: func() (int, int, int) {
			cancel()
			<-done
			return int(sent.Load()), int(failed.Load()), int(after.Load())
		},
		mark: func() { marked.Store(true) },
	}
}

// slowRequests sends n requests to VIP 1's slow path at once and returns
// a function that waits for them and returns their answers (or errors).
func (e *e2e) slowRequests(n int) func() []string {
	out := make([]string, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			body, err := e.l.GetSlow(ctx, fmt.Sprintf("http://%s%s", e.l.VIP(1), lab.SlowPath))
			if err != nil {
				out[i] = "error"
				return
			}
			out[i] = strings.TrimSpace(body)
		}()
	}
	// Each must have reached its node before the caller goes on: wait
	// until the backend shows n sessions (bounded).
	for i := 0; i < 100; i++ {
		if e.sessions() >= n {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return func() []string { wg.Wait(); slices.Sort(out); return out }
}

// sessions is the current sessions of backend be_web.
func (e *e2e) sessions() int {
	for _, l := range strings.Split(e.stats("show stat -1 2 -1"), "\n") {
		f := strings.Split(l, ",")
		if len(f) > 4 && f[0] == "be_web" && f[1] == "BACKEND" {
			n, _ := strconv.Atoi(f[4])
			return n
		}
	}
	return 0
}

// hideSocketUntilRollback moves dev's stats socket path away (HAProxy
// keeps its listening socket: only the path is gone), pauses dev at its
// rollback step and waits for it up to wait, then puts the path back. It
// returns the wait's error; dev stays paused until the caller resumes it.
func hideSocketUntilRollback(t *testing.T, dev *lab.Device, wait time.Duration) error {
	t.Helper()
	sock := filepath.Join(dev.StateDir, "haproxy.sock")
	if err := os.Rename(sock, sock+".away"); err != nil {
		t.Fatal(err)
	}
	if err := dev.PauseAt(host.StepRollback); err != nil {
		t.Fatal(err)
	}
	_, werr := dev.WaitStep(host.StepRollback, wait)
	if err := os.Rename(sock+".away", sock); err != nil {
		t.Fatal(err)
	}
	return werr
}

func TestE2ERuntime(t *testing.T) {
	l := lab.ForTest(t, lab.Options{Devices: 1, Nodes: 3, StepLog: true})
	e := &e2e{t: t, l: l, dir: t.TempDir()}
	for _, d := range []string{"devices", "balancers"} {
		os.MkdirAll(filepath.Join(e.dir, d), 0o755)
	}
	if err := l.WriteDevices(filepath.Join(e.dir, "devices", "devices.cue")); err != nil {
		t.Fatal(err)
	}
	dev := &l.Devices[0]
	n1, n2, n3 := l.Nodes[0], l.Nodes[1], l.Nodes[2]
	srv := func(n lab.Node, w int, st string) string {
		return fmt.Sprintf("%s:%d weight %d %s", n.Address, n.Port, w, st)
	}
	runtimeOf := func(r *reconcile.ApplyResult) *reconcile.DeviceResult {
		t.Helper()
		d := &r.Devices[0]
		if d.Outcome != reconcile.OutcomeApplied || d.Runtime == nil {
			t.Fatalf("apply: %s, runtime %+v: %v (warnings %q)", d.Outcome, d.Runtime, d.Err, d.Warnings)
		}
		return d
	}

	t.Log("first apply (a reload: no live file)")
	e.writeRuntimeSpec("", rtNode{1, 1}, rtNode{2, 1})
	e.mustApply(e.plan(nil))
	e.wantRatio(1, []int{1, 1})
	pid := e.workerPid()

	t.Log("weight change at runtime: the ratio follows, the same worker, a keep-alive connection still served, no request fails")
	var reused atomic.Bool
	var connAddr atomic.Value
	ka := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil, MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1, IdleConnTimeout: time.Minute}}
	kaGet := func() string {
		trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
			reused.Store(i.Reused)
			connAddr.Store(i.Conn.LocalAddr().String())
		}}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", fmt.Sprintf("http://%s/", l.VIP(1)), nil)
		resp, err := ka.Do(req)
		if err != nil {
			return "error: " + err.Error()
		}
		defer resp.Body.Close()
		var b strings.Builder
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			b.WriteString(sc.Text())
		}
		return b.String()
	}
	if got := kaGet(); got != n1.Name && got != n2.Name {
		t.Fatalf("keep-alive request: %q", got)
	}
	before := connAddr.Load()
	ld := e.startLoad("")
	e.writeRuntimeSpec("", rtNode{1, 3}, rtNode{2, 1})
	p := e.plan(nil)
	if c := devicePlan(p, dev.Name).Change; c == nil || c.Class != classify.Runtime || len(c.Ops) != 1 {
		t.Fatalf("change %+v", c)
	}
	d := runtimeOf(e.apply(p, nil))
	sent, failed, _ := ld.stop()
	t.Logf("during the runtime apply: %d requests, %d failed", sent, failed)
	if failed > 0 || sent == 0 {
		t.Errorf("%d of %d requests failed during the runtime apply", failed, sent)
	}
	if d.Runtime.Pid != pid || e.workerPid() != pid {
		t.Errorf("worker pid %d before, %d reported, %d after", pid, d.Runtime.Pid, e.workerPid())
	}
	if got := kaGet(); (got != n1.Name && got != n2.Name) || !reused.Load() || connAddr.Load() != before {
		t.Errorf("keep-alive connection after the apply: %q, reused %v (%v, was %v)", got, reused.Load(), connAddr.Load(), before)
	}
	ka.CloseIdleConnections()
	e.wantRatio(1, []int{3, 1})
	if got := e.running(); !slices.Equal(got, []string{srv(n1, 3, "ready"), srv(n2, 1, "ready")}) {
		t.Errorf("runs %q", got)
	}
	if p := e.plan(nil); len(changed(p)) != 0 {
		t.Errorf("plan after the runtime apply: %v", changed(p))
	}

	t.Log("node 3 added, node 2 removed at runtime: node 2's slow request finishes, node 2 gets no new request during the drain, then it is gone")
	wait := e.slowRequests(4) // weights 3:1: one of the four on node 2
	ld = e.startLoad(n2.Name)
	e.writeRuntimeSpec("", rtNode{1, 3}, rtNode{3, 1})
	p = e.plan(nil)
	var progress []string
	var mu sync.Mutex
	r := e.apply(p, func(_, step string) {
		mu.Lock()
		defer mu.Unlock()
		if strings.HasPrefix(step, host.StepDrain+": ") {
			if len(progress) == 0 {
				ld.mark() // weight 0 is set: no new session on node 2 from now on
			}
			progress = append(progress, step)
		}
	})
	d = runtimeOf(r)
	sent, failed, toN2 := ld.stop()
	slow := wait()
	t.Logf("drain progress %q; during the apply %d requests, %d failed, %d to node 2 after weight 0; slow requests %q", progress, sent, failed, toN2, slow)
	if len(progress) == 0 || !strings.Contains(progress[0], n2.Address.String()) {
		t.Errorf("no drain progress for node 2: %q", progress)
	}
	if failed > 0 || toN2 > 0 {
		t.Errorf("during the drain: %d failed, %d went to node 2", failed, toN2)
	}
	if !slices.Equal(slow, []string{n1.Name, n1.Name, n1.Name, n2.Name}) {
		t.Errorf("slow requests answered %q, want three from node 1 and node 2's finished", slow)
	}
	if len(d.Warnings) > 0 || d.Runtime.Pid != pid {
		t.Errorf("warnings %q, pid %d (was %d)", d.Warnings, d.Runtime.Pid, pid)
	}
	if got := e.running(); !slices.Equal(got, []string{srv(n1, 3, "ready"), srv(n3, 1, "ready")}) {
		t.Errorf("runs %q", got)
	}
	e.wantRatio(1, []int{3, 0, 1})

	t.Log("drain timeout: node 3's slow request outlasts the balancer's drain timeout (1s): a warning, node 3 removed")
	wait = e.slowRequests(4)
	e.writeRuntimeSpec("1s", rtNode{1, 3})
	d = runtimeOf(e.apply(e.plan(nil), nil))
	slow = wait()
	if !slices.ContainsFunc(d.Warnings, func(w string) bool {
		return strings.Contains(w, "drain timeout (1s)") && strings.Contains(w, n3.Address.String())
	}) ||
		d.Runtime == nil || len(d.Runtime.DrainTimedOut) != 1 {
		t.Errorf("warnings %q, runtime %+v: want the drain timeout of node 3", d.Warnings, d.Runtime)
	}
	if !slices.Equal(slow, []string{"error", n1.Name, n1.Name, n1.Name}) {
		t.Errorf("slow requests %q: want node 3's cut at the timeout", slow)
	}
	if got := e.running(); !slices.Equal(got, []string{srv(n1, 3, "ready")}) {
		t.Errorf("runs %q", got)
	}

	t.Log("drift: set weight by hand on the socket, plan shows it, apply restores it")
	e.writeRuntimeSpec("1s", rtNode{1, 3}, rtNode{2, 1})
	e.mustApply(e.plan(nil))
	name := fmt.Sprintf("be_web/%s_%d", n1.Address, n1.Port)
	if a := e.stats("set weight " + name + " 9"); strings.TrimSpace(a) != "" {
		t.Fatalf("set weight: %q", a)
	}
	p = e.plan(nil)
	dp := devicePlan(p, dev.Name)
	if dp.Status != reconcile.StatusChanges || !slices.ContainsFunc(dp.Notes, func(n string) bool {
		return strings.Contains(n, "runtime drift") && strings.Contains(n, name+" weight 9, file 3")
	}) ||
		dp.Change == nil || len(dp.Change.Ops) != 1 || dp.Change.Ops[0].String() != name+" weight 9 → 3" {
		t.Fatalf("plan of a hand-set weight: %s, notes %q, change %+v", dp.Status, dp.Notes, dp.Change)
	}
	runtimeOf(e.apply(p, nil))
	if got := e.running(); !slices.Equal(got, []string{srv(n1, 3, "ready"), srv(n2, 1, "ready")}) {
		t.Errorf("runs %q after the apply", got)
	}
	if p := e.plan(nil); len(changed(p)) != 0 {
		t.Errorf("plan after the drift was restored: %v", changed(p))
	}

	t.Log("the stats socket goes away in the middle of a runtime change: rolled back (file, runtime), the next plan exact")
	e.writeRuntimeSpec("1s", rtNode{1, 2}, rtNode{2, 1})
	p = e.plan(nil)
	if err := dev.PauseAt(host.StepRuntime); err != nil {
		t.Fatal(err)
	}
	res := make(chan *reconcile.ApplyResult, 1)
	go func() { res <- e.apply(p, nil) }()
	if _, err := dev.WaitStep(host.StepRuntime, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	// The socket's path goes away (HAProxy keeps its listening socket, a
	// reload passes it on: only the path is gone) until the rollback.
	werr := hideSocketUntilRollback(t, dev, 30*time.Second)
	dev.Resume()
	r = <-res
	if werr != nil {
		t.Fatal(werr)
	}
	if d := r.Devices[0]; d.Outcome != reconcile.OutcomeRolledBack || !strings.Contains(fmt.Sprint(d.Err), "runtime: exit status 1: haproxy did not answer on its stats socket") {
		t.Errorf("socket gone: %s: %v (warnings %q)", d.Outcome, d.Err, d.Warnings)
	}
	if e.workerPid() != pid {
		t.Errorf("the rollback started another worker: %d, was %d", e.workerPid(), pid)
	}
	if got := e.running(); !slices.Equal(got, []string{srv(n1, 3, "ready"), srv(n2, 1, "ready")}) {
		t.Errorf("runs %q after the rollback", got)
	}
	p2 := e.plan(nil)
	if a, b := devicePlan(p, dev.Name), devicePlan(p2, dev.Name); a.ConfigDiff != b.ConfigDiff || fmt.Sprint(a.Change) != fmt.Sprint(b.Change) {
		t.Errorf("the next plan differs:\n%+v\n%+v", a.Change, b.Change)
	}
	e.wantRatio(1, []int{3, 1})
}
