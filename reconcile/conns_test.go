package reconcile

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A plan and its apply through one Conns open one connection to the
// device, and a kept connection that died is replaced on the next Dial.
func TestConnsOneConnectionForPlanAndApply(t *testing.T) {
	th := newTestHost(t, "lb-a1")
	conns := NewConns(th.dial)
	defer conns.Close()
	ctx := context.Background()
	spec, res := th.result("rev1", testConfig(18080, 10), "203.0.113.10")
	p, err := BuildPlan(ctx, spec, res, conns.Dial, PlanOptions{IPCommand: th.ipCmd})
	if err != nil {
		t.Fatal(err)
	}
	r, err := Apply(ctx, p, conns.Dial, applyOpts("test"))
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
	tr, err := conns.Dial(ctx, EndpointOf(th.dev))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := tr.Run(ctx, "echo ok", nil); err != nil || string(out) != "ok\n" {
		t.Fatalf("after a cut: %q %v", out, err)
	}
	if n := th.srv.Connections(); n != 2 {
		t.Errorf("after a cut: %d connections, want 2 (one new)", n)
	}
	tr.Close() // a no-op: Conns still holds the connection
	if _, err := tr.Run(ctx, "true", nil); err != nil {
		t.Errorf("kept connection closed by its user: %v", err)
	}
	if err := conns.Close(); err != nil {
		t.Errorf("conns close: %v", err)
	}
	if _, err := tr.Run(ctx, "true", nil); err == nil {
		t.Error("connection still open after Conns closed")
	}
}

// Planning under the lock (PlanLock) holds each device's lock from the
// read to the end of its transaction, which reuses the lock session and
// its connection: one lock command, one connection, and nobody else gets
// in between.
func TestPlanUnderLock(t *testing.T) {
	th := newTestHost(t, "lb-a1")
	conns, locks := NewConns(th.dial), NewLocks()
	defer conns.Close()
	defer locks.Close()
	ctx := context.Background()
	lock := &PlanLock{Owner: "alice@ctl pid 1", Held: locks}
	spec, res := th.result("rev1", testConfig(18080, 10), "203.0.113.10")
	p, err := BuildPlan(ctx, spec, res, conns.Dial, PlanOptions{IPCommand: th.ipCmd, Lock: lock})
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
	before, conns0 := len(th.srv.Commands()), th.srv.Connections()
	o := applyOpts("alice@ctl pid 1")
	o.Locks = locks
	r, err := Apply(ctx, p, conns.Dial, o)
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
	if n := th.srv.Connections() - conns0; n != 0 {
		t.Errorf("apply opened %d connections, want none (the lock's)", n)
	}
	th.waitUnlocked()
	if got := th.read("etc/haproxy.cfg"); got != string(testConfig(18080, 10)) {
		t.Errorf("config on host:\n%s", got)
	}
	// A lock held for a device with nothing to apply is released at once.
	p2, err := BuildPlan(ctx, spec, res, conns.Dial, PlanOptions{IPCommand: th.ipCmd, Lock: lock})
	if err != nil || p2.Devices[0].Status != StatusUnchanged {
		t.Fatalf("second plan: %v %+v", err, p2.Devices[0])
	}
	if exec.Command("flock", "-n", filepath.Join(th.dev.StateDir, "lock"), "true").Run() == nil {
		t.Error("plan under the lock: the device lock is not held")
	}
	locks.ReleaseUnchanged(p2)
	th.waitUnlocked()
}

// A lock the plan took whose connection died since is not used: apply
// dials anew, takes the lock again and applies.
func TestPlanUnderLockConnectionDied(t *testing.T) {
	th := newTestHost(t, "lb-a1")
	conns, locks := NewConns(th.dial), NewLocks()
	defer conns.Close()
	defer locks.Close()
	ctx := context.Background()
	spec, res := th.result("rev1", testConfig(18080, 10), "203.0.113.10")
	p, err := BuildPlan(ctx, spec, res, conns.Dial, PlanOptions{IPCommand: th.ipCmd, Lock: &PlanLock{Owner: "alice", Held: locks}})
	if err != nil || p.Devices[0].Status != StatusChanges {
		t.Fatalf("plan: %v %+v", err, p.Devices[0])
	}
	th.srv.CutAll()
	th.waitUnlocked()
	o := applyOpts("alice")
	o.Locks = locks
	r, err := Apply(ctx, p, conns.Dial, o)
	if err != nil {
		t.Fatal(err)
	}
	if d := r.Devices[0]; d.Outcome != OutcomeApplied {
		t.Fatalf("apply: %s %v", d.Outcome, d.Err)
	}
	if n := th.srv.Connections(); n != 2 {
		t.Errorf("%d connections, want 2 (the plan's, cut, and a new one)", n)
	}
}
