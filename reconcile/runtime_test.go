package reconcile

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"lbc/internal/testkit/lab"
	"lbc/reconcile/classify"
	"lbc/reconcile/host"
)

// runtimeConfig is a config, with lbc's header, for a real HAProxy whose
// stats socket is in the test host's state directory: one backend, no
// frontend (no port to share between parallel cases), with servers n1
// (weight w1) and, when w2 > 0, n2 (weight w2), then the extra server
// lines ("n3 127.0.0.1:11 weight 4").
func (th *testHost) runtimeConfig(w1, w2 int, extra ...string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "global\n    stats socket %s/haproxy.sock mode 600 level admin\n\n", th.dev.StateDir)
	b.WriteString("defaults\n    mode http\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n\n")
	b.WriteString("backend be_web\n    balance roundrobin\n    server n1 127.0.0.1:9 weight " + itoa(w1) + "\n")
	if w2 > 0 {
		b.WriteString("    server n2 127.0.0.1:10 weight " + itoa(w2) + "\n")
	}
	for _, x := range extra {
		b.WriteString("    server " + x + "\n")
	}
	return withHeader([]byte(b.String()))
}

// startHAProxy runs a real HAProxy on the test host's live config and
// waits, bounded, for its stats socket; it stops with the test.
func (th *testHost) startHAProxy() {
	t := th.t
	t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("haproxy not installed (CI set; make deps installs it)")
		}
		t.Skip("haproxy not installed: no runtime API to test")
	}
	cmd := exec.Command(bin, "-db", "-f", th.dev.HAProxy.Config)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; i < 200; i++ {
		if c, err := net.Dial("unix", filepath.Join(th.dev.StateDir, "haproxy.sock")); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("haproxy's stats socket did not answer within 10 s")
}

// cli sends one command to the test host's HAProxy and returns its answer.
func (th *testHost) cli(cmd string) string {
	th.t.Helper()
	return lab.StatsQuery(th.t, filepath.Join(th.dev.StateDir, "haproxy.sock"), cmd)
}

// servers is what the test host's HAProxy runs, one "be/s addr weight W
// state" a server.
func (th *testHost) servers() []string {
	th.t.Helper()
	ss, err := host.ParseServersState(th.cli("show servers state"))
	if err != nil {
		th.t.Fatal(err)
	}
	var out []string
	for _, s := range ss {
		out = append(out, s.String())
	}
	return out
}

// runtimeOpts are the options of the runtime tests: the runtime path,
// fast drain polls.
func runtimeOpts() ApplyOptions {
	o := applyOpts("test")
	o.Reload = false
	o.DrainInterval = 100 * time.Millisecond
	return o
}

// setupRuntime applies the old config by reload (the first apply), starts
// a real HAProxy on it, and plans the new one, which must be a runtime
// change.
func setupRuntime(t *testing.T, old, new func(th *testHost) []byte) (*testHost, *Plan) {
	th := newTestHost(t, "lb-a1")
	mustApply(t, th, th.plan("rev1", old(th)))
	th.startHAProxy()
	p := th.plan("rev2", new(th))
	if c := p.Devices[0].Change; c == nil || c.Class != classify.Runtime {
		t.Fatalf("the change is not a runtime one: %+v", c)
	}
	return th, p
}

// A weight change at runtime: no reload (the fake reload's log stays as
// the first apply left it), the same worker, the new weight running and
// in the file, the next plan empty.
func TestRuntimeApplyWeight(t *testing.T) {
	th, p := setupRuntime(t, func(th *testHost) []byte { return th.runtimeConfig(1, 1) }, func(th *testHost) []byte { return th.runtimeConfig(3, 1) })
	reloads := th.read("reloads")
	pid := th.cli("show info")
	r, err := Apply(context.Background(), p, th.dial, runtimeOpts())
	if err != nil {
		t.Fatal(err)
	}
	d := r.Devices[0]
	if d.Outcome != OutcomeApplied || d.Runtime == nil {
		t.Fatalf("%s: %v (runtime %+v)", d.Outcome, d.Err, d.Runtime)
	}
	if !strings.Contains(pid, fmt.Sprintf("Pid: %d\n", d.Runtime.Pid)) || !slices.Equal(d.Runtime.Ops, []string{"be_web/n1 weight 1 → 3"}) {
		t.Errorf("runtime result %+v; show info before:\n%s", d.Runtime, pid)
	}
	if th.read("reloads") != reloads {
		t.Error("a runtime apply reloaded")
	}
	if got := th.servers(); !slices.Equal(got, []string{"be_web/n1 127.0.0.1:9 weight 3 ready", "be_web/n2 127.0.0.1:10 weight 1 ready"}) {
		t.Errorf("runs %q", got)
	}
	if th.read("etc/haproxy.cfg") != string(th.runtimeConfig(3, 1)) {
		t.Error("the file is not the new one")
	}
	if d2 := th.plan("rev2", th.runtimeConfig(3, 1)).Devices[0]; d2.Status != StatusUnchanged {
		t.Errorf("next plan: %s", d2.Status)
	}
}

// A server removed at runtime: drained (weight 0, its sessions waited
// for: none here), then deleted; a server added: running with its weight.
func TestRuntimeApplyAddDel(t *testing.T) {
	th, p := setupRuntime(t, func(th *testHost) []byte { return th.runtimeConfig(2, 1) },
		func(th *testHost) []byte { return th.runtimeConfig(2, 0, "n3 127.0.0.1:11 weight 4") })
	if c := p.Devices[0].Change; len(c.Ops) != 2 {
		t.Fatalf("change %+v", c)
	}
	r, err := Apply(context.Background(), p, th.dial, runtimeOpts())
	if err != nil {
		t.Fatal(err)
	}
	d := r.Devices[0]
	if d.Outcome != OutcomeApplied || !slices.Contains(d.Steps, host.StepDrain) {
		t.Fatalf("%s: %v (steps %q)", d.Outcome, d.Err, d.Steps)
	}
	if got := th.servers(); !slices.Equal(got, []string{"be_web/n1 127.0.0.1:9 weight 2 ready", "be_web/n3 127.0.0.1:11 weight 4 ready"}) {
		t.Errorf("runs %q", got)
	}
}

// A weight set by hand on the stats socket (the file unchanged): the plan
// notes the runtime drift and plans the operation back, status says
// drifted, and apply restores the weight at runtime.
func TestRuntimeDrift(t *testing.T) {
	th := newTestHost(t, "lb-a1")
	cfg := th.runtimeConfig(2, 1)
	mustApply(t, th, th.plan("rev1", cfg))
	th.startHAProxy()
	if d := th.plan("rev1", cfg).Devices[0]; d.Status != StatusUnchanged {
		t.Fatalf("plan before the hand edit: %s %q", d.Status, d.Notes)
	}
	if a := th.cli("set weight be_web/n1 9"); strings.TrimSpace(a) != "" {
		t.Fatalf("set weight: %q", a)
	}
	p := th.plan("rev1", cfg)
	d := p.Devices[0]
	if d.Status != StatusChanges || !slices.ContainsFunc(d.Notes, func(n string) bool {
		return strings.Contains(n, "runtime drift") && strings.Contains(n, "be_web/n1 weight 9, file 2")
	}) || d.Change == nil || d.Change.Class != classify.Runtime || len(d.Change.Ops) != 1 || d.Change.Ops[0].String() != "be_web/n1 weight 9 → 2" {
		t.Fatalf("plan after the hand edit: %s, notes %q, change %+v", d.Status, d.Notes, d.Change)
	}
	spec, res := th.result("rev1", cfg)
	st, err := ReadStatus(context.Background(), spec, res, th.dial, StatusOptions{IPCommand: th.ipCmd})
	if err != nil {
		t.Fatal(err)
	}
	if st[0].Sync != SyncDrifted || !slices.ContainsFunc(st[0].Notes, func(n string) bool { return strings.Contains(n, "be_web/n1 weight 9, file 2") }) {
		t.Errorf("status: %s %q", st[0].Sync, st[0].Notes)
	}
	r, err := Apply(context.Background(), p, th.dial, runtimeOpts())
	if err != nil {
		t.Fatal(err)
	}
	if d := r.Devices[0]; d.Outcome != OutcomeApplied || d.Runtime == nil {
		t.Fatalf("apply: %s %v", d.Outcome, d.Err)
	}
	if got := th.servers(); !slices.Equal(got, []string{"be_web/n1 127.0.0.1:9 weight 2 ready", "be_web/n2 127.0.0.1:10 weight 1 ready"}) {
		t.Errorf("runs %q after the apply", got)
	}
	if d := th.plan("rev1", cfg).Devices[0]; d.Status != StatusUnchanged {
		t.Errorf("plan after the apply: %s %q", d.Status, d.Notes)
	}
}
