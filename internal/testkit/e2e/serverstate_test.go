package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"lbc/internal/testkit/lab"
)

// ssNode is one node of the server-state test's balancer: a lab node
// (1-based) and its weight.
type ssNode struct{ node, weight int }

// ssReq is one request of the loop: when it was sent, what answered.
type ssReq struct {
	at   time.Time
	took time.Duration
	body string
	err  error
}

// ssLoop sends requests to a VIP one after another until stopped or until
// its deadline, and records every one.
type ssLoop struct {
	mu   sync.Mutex
	reqs []ssReq
	stop chan struct{}
	done chan struct{}
}

func startLoop(l *lab.Lab, url string, max time.Duration) *ssLoop {
	lp := &ssLoop{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(lp.done)
		ctx, cancel := context.WithTimeout(context.Background(), max)
		defer cancel()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-lp.stop:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			start := time.Now()
			body, err := l.Get(ctx, url)
			if ctx.Err() != nil {
				return
			}
			lp.mu.Lock()
			lp.reqs = append(lp.reqs, ssReq{at: start, took: time.Since(start), body: body, err: err})
			lp.mu.Unlock()
		}
	}()
	return lp
}

func (lp *ssLoop) halt() {
	select {
	case <-lp.stop:
	default:
		close(lp.stop)
	}
	<-lp.done
}

// since returns the requests sent at or after t.
func (lp *ssLoop) since(t time.Time) []ssReq {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	var out []ssReq
	for _, r := range lp.reqs {
		if !r.at.Before(t) {
			out = append(out, r)
		}
	}
	return out
}

// TestServerStateAcrossApplies applies a balancer again and again under a
// request loop through its VIP: adding a node, removing nodes down to one,
// changing weights. HAProxy reloads each time and gets the servers' state
// from the file apply saves just before. No request may fail, and a node
// just added must answer within a short bound.
func TestServerStateAcrossApplies(t *testing.T) {
	g, specs := labSpecTree(t, lab.Options{Devices: 1, Nodes: 3})
	l, tmp := g.l, g.tmp
	// The schema's default health monitor timing (interval 2s, rise 2,
	// fall 3): a node carried DOWN would be unused for at least 4 s.
	monitor := `{type: "http", path: "/", expect: 200}`
	write := func(nodes ...ssNode) {
		t.Helper()
		var b strings.Builder
		b.WriteString("package spec\n\nbalancers: web: {\n\ttenant: \"ss\"\n\tprotocol: \"http\"\n")
		fmt.Fprintf(&b, "\tvips: [{address: %q, port: 80}]\n\tnodes: [\n", l.VIP(1))
		for _, x := range nodes {
			n := l.Nodes[x.node-1]
			fmt.Fprintf(&b, "\t\t{address: %q, port: %d, weight: %d},\n", n.Address, n.Port, x.weight)
		}
		fmt.Fprintf(&b, "\t]\n\thealthMonitor: %s\n}\n", monitor)
		if err := os.WriteFile(filepath.Join(specs, "balancers", "web.cue"), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	apply := func() time.Time {
		t.Helper()
		g.must(0, tmp, append(append([]string{"apply", "--adopt"}, g.sshFlags()...), "specs")...)
		return time.Now()
	}
	url := fmt.Sprintf("http://%s/", l.VIP(1))

	write(ssNode{1, 1})
	apply()
	g.serves(1, "n1")

	lp := startLoop(l, url, 5*time.Minute)
	defer lp.halt()
	time.Sleep(500 * time.Millisecond)

	// firstAnswer waits (at most 10 s) until name answers a request sent
	// after t and returns how long after t that request was sent.
	firstAnswer := func(name string, t0 time.Time) (time.Duration, bool) {
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			for _, r := range lp.since(t0) {
				if r.err == nil && r.body == name {
					return r.at.Sub(t0), true
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		return 0, false
	}
	// newNodeBound is how soon a node just added must get traffic: a new
	// server starts UP, so the first requests after apply reach it; 4 s
	// (rise 2 × inter 2s) would mean it was loaded DOWN.
	const newNodeBound = 1500 * time.Millisecond

	type step struct {
		name  string
		nodes []ssNode
		added string // a node this step adds, "" if none
		want  []string
	}
	steps := []step{
		{"add n2", []ssNode{{1, 1}, {2, 1}}, "n2", []string{"n1", "n2"}},
		{"add n3", []ssNode{{1, 1}, {2, 1}, {3, 1}}, "n3", []string{"n1", "n2", "n3"}},
		{"remove to n2 alone", []ssNode{{2, 1}}, "", []string{"n2"}},
		{"add n1 back", []ssNode{{2, 1}, {1, 1}}, "n1", []string{"n1", "n2"}},
		{"remove to n1 alone", []ssNode{{1, 1}}, "", []string{"n1"}},
		{"add n3 with weight 3", []ssNode{{1, 1}, {3, 3}}, "n3", []string{"n1", "n3"}},
		{"weights 1:1", []ssNode{{1, 1}, {3, 1}}, "", []string{"n1", "n3"}},
		{"weights 10:1", []ssNode{{1, 10}, {3, 1}}, "", []string{"n1", "n3"}},
	}
	for _, s := range steps {
		before := time.Now()
		write(s.nodes...)
		end := apply()
		msg := fmt.Sprintf("step %q: apply took %v", s.name, end.Sub(before).Round(time.Millisecond))
		if s.added != "" {
			d, ok := firstAnswer(s.added, end)
			if !ok {
				t.Errorf("step %q: added node %s got no request in 10 s after apply returned", s.name, s.added)
			} else {
				msg += fmt.Sprintf("; %s answered %v after apply returned", s.added, d.Round(time.Millisecond))
				if d > newNodeBound {
					t.Errorf("step %q: added node %s answered only %v after apply returned, want within %v", s.name, s.added, d.Round(time.Millisecond), newNodeBound)
				}
			}
		}
		// Let the loop run on the new config for 2 s, then check who answered.
		time.Sleep(2 * time.Second)
		seen := answers(lp.since(end))
		t.Logf("%s; answers since: %v", msg, seen)
		for _, w := range s.want {
			if seen[w] == 0 {
				t.Errorf("step %q: %s got no request in the 2 s after apply, answers %v", s.name, w, seen)
			}
		}
		for name := range seen {
			if !contains(s.want, name) {
				t.Errorf("step %q: %s answered after apply returned, want only %v", s.name, name, s.want)
			}
		}
	}
	// A node that dies fails the requests sent to it until its checks
	// mark it DOWN (fall 3 × inter 2s): not apply's doing. excuse marks
	// such windows, every one before any apply in it starts.
	var excused [][2]time.Time
	excuse := func(from, to time.Time) { excused = append(excused, [2]time.Time{from, to}) }
	// downNoticed waits until 30 requests in a row succeeded (the dead
	// node is out of the backend) and excuses the failures since from.
	downNoticed := func(from time.Time) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			rs := lp.since(from)
			ok := 0
			for i := len(rs) - 1; i >= 0 && rs[i].err == nil; i-- {
				ok++
			}
			if ok >= 30 {
				excuse(from, time.Now())
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatal("the request loop did not recover in 20 s after a node stopped")
	}

	// A node DOWN before an apply stays out of the backend after it: the
	// new process loads its state instead of starting it UP.
	end := apply2(t, write, apply, []ssNode{{1, 1}, {2, 1}})
	if d, ok := firstAnswer("n2", end); !ok || d > newNodeBound {
		t.Errorf("n2 added: first answer after %v (answered: %t), want within %v", d, ok, newNodeBound)
	}
	t0 := time.Now()
	stopNode(t, l, 2)
	downNoticed(t0)
	end = apply2(t, write, apply, []ssNode{{1, 1}, {2, 1}, {3, 1}})
	time.Sleep(3 * time.Second)
	seen := answers(lp.since(end))
	t.Logf("apply with n2 DOWN: answers in the 3 s after %v", seen)
	if seen["n2"] > 0 || seen["n1"] == 0 || seen["n3"] == 0 {
		t.Errorf("apply with n2 DOWN: answers %v, want n1 and n3 only", seen)
	}

	// n2 comes back (its checks rise in the running process); a reload
	// lbc does not make (the device's reload command, as systemctl
	// reload would) must not load states saved by the last apply.
	startNode(t, l, 2)
	if _, ok := firstAnswer("n2", time.Now()); !ok {
		t.Fatal("n2 restarted but got no request in 10 s")
	}
	dev := l.Devices[0]
	pid := func() string {
		out, _ := l.Exec(context.Background(), 1, "sh", "-c",
			"echo 'show info' | socat -t 2 stdio UNIX-CONNECT:"+filepath.Join(dev.StateDir, "haproxy.sock")+" | sed -n 's/^Pid: //p'")
		return strings.TrimSpace(string(out))
	}
	old := pid()
	if out, err := l.Exec(context.Background(), 1, "sh", "-c", dev.Reload); err != nil {
		t.Fatalf("reload outside lbc: %v\n%s", err, out)
	}
	for i := 0; i < 100 && (pid() == old || pid() == ""); i++ {
		time.Sleep(50 * time.Millisecond)
	}
	if p := pid(); p == old || p == "" {
		t.Fatalf("reload outside lbc: the stats socket still answers with pid %q", p)
	}
	reloaded := time.Now() // the new worker runs
	if d, ok := firstAnswer("n2", reloaded); !ok || d > newNodeBound {
		t.Errorf("healthy n2 after a reload outside lbc: first answer after %v (answered: %t), want within %v: a stale server-state file kept it DOWN", d.Round(time.Millisecond), ok, newNodeBound)
	} else {
		t.Logf("reload outside lbc: healthy n2 answered %v after it", d.Round(time.Millisecond))
	}

	// A node DOWN under an http monitor, then the monitor set to none:
	// without checks nothing would ever bring a loaded DOWN state back.
	t0 = time.Now()
	stopNode(t, l, 3)
	downNoticed(t0)
	monitor = `{type: "none"}`
	t0 = time.Now()
	apply2(t, write, apply, []ssNode{{1, 1}, {3, 1}})
	startNode(t, l, 3) // until it answers, requests sent to it fail: no checks
	excuse(t0, time.Now().Add(200*time.Millisecond))
	restarted := time.Now()
	if d, ok := firstAnswer("n3", restarted); !ok || d > 2*time.Second {
		t.Errorf("monitor none: n3 restarted, first answer through the VIP after %v (answered: %t), want within 2s: it stayed DOWN", d.Round(time.Millisecond), ok)
	} else {
		t.Logf("monitor none: n3 answered %v after its restart", d.Round(time.Millisecond))
	}
	time.Sleep(time.Second)
	lp.halt()

	all := lp.since(time.Time{})
	var failed []string
	nExcused := 0
	for _, r := range all {
		if r.err != nil && within(r.at, r.took, excused) {
			nExcused++
			continue
		}
		if r.err != nil {
			failed = append(failed, fmt.Sprintf("%s (took %v): %v (body %q)", r.at.Format("15:04:05.000"), r.took.Round(time.Millisecond), r.err, strings.TrimSpace(r.body)))
		}
	}
	t.Logf("request loop: %d requests, %d failed, %d more failed while a stopped node was not yet DOWN (excused)", len(all), len(failed), nExcused)
	if len(all) < 100 {
		t.Errorf("request loop sent only %d requests", len(all))
	}
	if len(failed) > 0 {
		for _, w := range excused {
			t.Logf("excused window: %s – %s", w[0].Format("15:04:05.000"), w[1].Format("15:04:05.000"))
		}
	}
	for i, f := range failed {
		if i == 10 {
			t.Errorf("... and %d more", len(failed)-10)
			break
		}
		t.Errorf("failed request: %s", f)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// answers counts the successful requests of rs by the node that answered.
func answers(rs []ssReq) map[string]int {
	seen := map[string]int{}
	for _, r := range rs {
		if r.err == nil {
			seen[r.body]++
		}
	}
	return seen
}

// within reports whether a request that started at at and took took
// overlaps one of the windows: a request in flight when a node is stopped
// fails with it, even when it started a moment before.
func within(at time.Time, took time.Duration, windows [][2]time.Time) bool {
	end := at.Add(took)
	for _, w := range windows {
		if !end.Before(w[0]) && !at.After(w[1]) {
			return true
		}
	}
	return false
}

// apply2 writes nodes and applies them; it returns when apply returned.
func apply2(t *testing.T, write func(...ssNode), apply func() time.Time, nodes []ssNode) time.Time {
	t.Helper()
	write(nodes...)
	return apply()
}

// stopNode stops lab node i's HTTP server (the lab's haproxy in the
// node's namespace, pid file in <lab dir>/<ns>/haproxy.pid).
// TODO: lab.StopNode/StartNode would keep this layout inside package lab.
func stopNode(t *testing.T, l *lab.Lab, i int) {
	t.Helper()
	n := l.Nodes[i-1]
	pidFile := filepath.Join(l.Dir, n.NS, "haproxy.pid")
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range strings.Fields(string(b)) {
		pid, err := strconv.Atoi(f)
		if err != nil || pid <= 1 {
			t.Fatalf("node %s: pid file %s: %q", n.Name, pidFile, b)
		}
		if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
			t.Fatalf("node %s: kill %d: %v", n.Name, pid, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if _, err := l.Get(ctx, n.URL()); err != nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("node %s still answers 5 s after it was stopped", n.Name)
}

// startNode starts lab node i's HTTP server again, as the lab does, and
// waits until it answers.
func startNode(t *testing.T, l *lab.Lab, i int) {
	t.Helper()
	n := l.Nodes[i-1]
	dir := filepath.Join(l.Dir, n.NS)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", n.NS, "/usr/sbin/haproxy",
		"-D", "-p", filepath.Join(dir, "haproxy.pid"), "-f", filepath.Join(dir, "haproxy.cfg"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("node %s: start: %v\n%s", n.Name, err, out)
	}
	for ctx.Err() == nil {
		if body, err := l.Get(ctx, n.URL()); err == nil && body == n.Name {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("node %s does not answer 10 s after its start", n.Name)
}
