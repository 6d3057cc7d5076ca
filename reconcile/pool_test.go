package reconcile

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"lbc/schema"
)

// A plan and its apply through one Pool open one connection to the device,
// and a pooled connection that died is replaced on the next Dial.
func TestPoolOneConnectionForPlanAndApply(t *testing.T) {
	th := newTestHost(t, "lb-a1")
	pool := NewPool(th.sshDial)
	defer pool.Close()
	ctx := context.Background()
	spec, res := th.result("rev1", testConfig(18080, 10), "203.0.113.10")
	p, err := BuildPlan(ctx, spec, res, pool.Dial, PlanOptions{IPCommand: th.ipCmd})
	if err != nil {
		t.Fatal(err)
	}
	r, err := Apply(ctx, p, pool.Dial, applyOpts("test"))
	if err != nil {
		t.Fatal(err)
	}
	if d := r.Devices[0]; d.Outcome != OutcomeApplied {
		t.Fatalf("apply: %s %v", d.Outcome, d.Err)
	}
	if n := th.srv.Connections(); n != 1 {
		t.Errorf("plan + apply opened %d connections, want 1", n)
	}

	th.srv.CutAll()
	tr, err := pool.Dial(ctx, th.dev)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := tr.Run(ctx, "echo ok", nil); err != nil || string(out) != "ok\n" {
		t.Fatalf("after a cut: %q %v", out, err)
	}
	if n := th.srv.Connections(); n != 2 {
		t.Errorf("after a cut: %d connections, want 2 (one new)", n)
	}
	tr.Close() // a no-op: the pool still holds the connection
	if _, err := tr.Run(ctx, "true", nil); err != nil {
		t.Errorf("pooled connection closed by its user: %v", err)
	}
	if err := pool.Close(); err != nil {
		t.Errorf("pool close: %v", err)
	}
	if _, err := tr.Run(ctx, "true", nil); err == nil {
		t.Error("connection still open after the pool closed")
	}
}

// Planning under the lock (PlanOptions.Lock) holds each device's lock
// from the read to the end of its transaction, which reuses the lock
// session: one lock command, and nobody else gets in between.
func TestPlanUnderLock(t *testing.T) {
	th := newTestHost(t, "lb-a1")
	pool := NewPool(th.sshDial)
	defer pool.Close()
	ctx := context.Background()
	spec, res := th.result("rev1", testConfig(18080, 10), "203.0.113.10")
	p, err := BuildPlan(ctx, spec, res, pool.Dial, PlanOptions{IPCommand: th.ipCmd, Lock: &PlanLock{Owner: "alice@ctl pid 1"}})
	if err != nil {
		t.Fatal(err)
	}
	if d := p.Devices[0]; d.Status != StatusChanges {
		t.Fatalf("plan: %s %s", d.Status, d.Error)
	}
	// Someone else applying now finds the device locked by the planner.
	other, err := Apply(ctx, p, th.dial, applyOpts("bob@ctl pid 2"))
	if err != nil {
		t.Fatal(err)
	}
	if d := other.Devices[0]; d.Outcome != OutcomeFailedBeforeChange || !strings.Contains(fmt.Sprint(d.Err), "locked by alice@ctl pid 1") {
		t.Fatalf("concurrent apply: %s %v", d.Outcome, d.Err)
	}
	before := len(th.srv.Commands())
	r, err := Apply(ctx, p, pool.Dial, applyOpts("alice@ctl pid 1"))
	if err != nil {
		t.Fatal(err)
	}
	if d := r.Devices[0]; d.Outcome != OutcomeApplied {
		t.Fatalf("apply: %s %v", d.Outcome, d.Err)
	}
	for _, c := range th.srv.Commands()[before:] {
		if strings.Contains(c, "exec flock -o") {
			t.Errorf("apply took the lock again: %.80q", c)
		}
	}
	th.waitUnlocked()
	if got := th.read("etc/haproxy.cfg"); got != string(testConfig(18080, 10)) {
		t.Errorf("config on host:\n%s", got)
	}
	// A lock held for a device with nothing to apply is released at once.
	p2, err := BuildPlan(ctx, spec, res, pool.Dial, PlanOptions{IPCommand: th.ipCmd, Lock: &PlanLock{Owner: "alice@ctl pid 1"}})
	if err != nil || p2.Devices[0].Status != StatusUnchanged {
		t.Fatalf("second plan: %v %+v", err, p2.Devices[0])
	}
	if exec.Command("flock", "-n", filepath.Join(th.dev.StateDir, "lock"), "true").Run() == nil {
		t.Error("plan under the lock: the device lock is not held")
	}
	pool.ReleaseLocks(func(string) bool { return false })
	th.waitUnlocked()
}

// sshDial dials the test host without the fault-injecting wrapper (whose
// Transport hides Alive from the pool).
func (th *testHost) sshDial(ctx context.Context, dev *schema.Device) (Transport, error) {
	return DialSSH(ctx, dev, SSHConfig{KnownHosts: th.srv.KnownHostsFile(), KeyFile: th.srv.KeyFile()})
}
