package reconcile

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"lbc/internal/testkit/sshtest"
)

// hang is a step fault that holds the host at step's marker until the
// returned release is called (or a minute has passed); hanging reports
// whether the host is held there now.
func hang(t *testing.T, step string, nth int) (f sshtest.StepFault, hanging func() bool, release func()) {
	var held atomic.Bool
	ch := make(chan struct{})
	var once atomic.Bool
	release = func() {
		if once.CompareAndSwap(false, true) {
			close(ch)
		}
	}
	t.Cleanup(release)
	f = sshtest.StepFault{Step: step, Nth: nth, Action: sshtest.Pause, Then: func() {
		held.Store(true)
		defer held.Store(false)
		select {
		case <-ch:
		case <-time.After(time.Minute):
		}
	}}
	return f, held.Load, release
}

// A step that hangs on the host ends the transaction's wait at
// --script-timeout: apply returns while the host is still held in the
// step, the device reported failed with a timeout naming it and the step.
// The lock session is closed; once the step ends, the host runs the rest
// of its script on its own (here it commits), frees the lock, and the
// next plan shows what it runs.
func TestScriptTimeout(t *testing.T) {
	th, p, _ := setupForFaultsWith(t, false)
	f, hanging, release := hang(t, StepReload, 1)
	th.srv.Inject(f)
	o := applyOpts("test")
	o.Limits.ScriptTimeout = time.Second
	r, err := Apply(context.Background(), p, th.dial, o)
	if err != nil {
		t.Fatal(err)
	}
	stillHanging := hanging()
	release()
	if len(th.srv.Fired()) != 1 {
		t.Fatalf("fired %v, want the pause at reload", th.srv.Fired())
	}
	if !stillHanging {
		t.Error("apply returned after the host's step ended: it waited for the hung step")
	}
	d := r.Devices[0]
	t.Logf("%s: %v", d.Outcome, d.Err)
	want := "apply lb-a1: reload: timed out: step reload did not end within 1s (--script-timeout); the lock session was closed"
	if d.Outcome != OutcomeFailed || !strings.Contains(fmt.Sprint(d.Err), want) || !errors.Is(d.Err, ErrTimeout) {
		t.Errorf("outcome %s: %v, want failed: %s", d.Outcome, d.Err, want)
	}
	if !th.unlockedWithin(time.Now().Add(20 * time.Second)) {
		t.Fatal("device lock still held 20s after the step was released")
	}
	if d2 := th.plan("rev2", testConfig(18081, 20), "203.0.113.11").Devices[0]; d2.Status != StatusUnchanged {
		t.Errorf("the host finished the script (it commits), but the next plan shows %s", d2.Status)
	}
	if th.armed() {
		t.Error("txn.sh still armed")
	}
}

// The rollback is bounded too (it runs even when apply is cancelled, so
// it has a bound of its own): a rollback that hangs is given up, the
// device reported failed with the timeout, and the lock holder runs the
// armed txn.sh itself once the step ends: the host is old again.
func TestRollbackTimeout(t *testing.T) {
	defer func(d time.Duration) { rollbackTimeout = d }(rollbackTimeout)
	rollbackTimeout = time.Second
	th, p, old := setupForFaultsWith(t, false)
	f, hanging, release := hang(t, StepRollback, 1)
	th.srv.Inject(fail(StepSwap, "mv"), f)
	r, err := Apply(context.Background(), p, th.dial, applyOpts("test"))
	if err != nil {
		t.Fatal(err)
	}
	stillHanging := hanging()
	release()
	if len(th.srv.Fired()) != 2 {
		t.Fatalf("fired %v, want the failed swap and the pause at rollback", th.srv.Fired())
	}
	if !stillHanging {
		t.Error("apply returned after the host's rollback step ended: it waited for the hung step")
	}
	d := r.Devices[0]
	t.Logf("%s: %v", d.Outcome, d.Err)
	want := "apply lb-a1: rollback: timed out: step rollback did not end within 1s (the rollback's bound)"
	if d.Outcome != OutcomeFailed || !strings.Contains(fmt.Sprint(d.Err), want) {
		t.Errorf("outcome %s: %v, want failed: %s", d.Outcome, d.Err, want)
	}
	if !th.unlockedWithin(time.Now().Add(20 * time.Second)) {
		t.Fatal("device lock still held 20s after the step was released")
	}
	if now := th.snap(); now != old {
		t.Errorf("host is not old:\n%+v\nwas\n%+v\ntxn.log: %s", now, old, th.read("state/txn.log"))
	}
	if th.armed() {
		t.Error("txn.sh still armed")
	}
}
