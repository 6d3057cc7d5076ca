package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"lbc/internal/testkit/sshtest"
	"lbc/internal/testkit/testproc"
	"lbc/reconcile/host"
)

func TestApplyFreshThenNoop(t *testing.T) {
	th := newTestHost(t, "lb-a1")
	cfg := testConfig(18080, 10)
	p := th.plan("rev1", cfg, "203.0.113.10")
	d := p.Devices[0]
	if d.Status != StatusChanges || !strings.Contains(d.ConfigDiff, "+    server n1 127.0.0.1:9 weight 10 check") {
		t.Fatalf("plan: %s %s\n%s", d.Status, d.Error, d.ConfigDiff)
	}
	if !slices.Equal(d.VIPsAdd, []string{"203.0.113.10/32 dev eth0"}) || len(d.VIPsRemove) != 0 {
		t.Errorf("vips add %q remove %q", d.VIPsAdd, d.VIPsRemove)
	}
	if d.Fingerprints[th.dev.HAProxy.Config] != "" {
		t.Errorf("absent config fingerprint %q", d.Fingerprints[th.dev.HAProxy.Config])
	}
	var steps []string
	var mu sync.Mutex
	o := applyOpts("alice@ctl pid 1")
	o.Progress = func(dev, step string) { mu.Lock(); steps = append(steps, dev+":"+step); mu.Unlock() }
	var trace testproc.Buffer
	o.Log = slog.New(slog.NewTextHandler(&trace, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r, err := Apply(context.Background(), p, th.dial, o)
	if err != nil {
		t.Fatal(err)
	}
	dr := r.Devices[0]
	if dr.Outcome != OutcomeApplied {
		t.Fatalf("outcome %s err %v", dr.Outcome, dr.Err)
	}
	want := []string{StepLock, StepStaleCheck, StepStage, StepKeepLastGood, StepArm, StepAddVIPs,
		StepSaveServerState, StepSwap, StepReload, StepVerify, StepRemoveVIPs, StepCommit}
	if !slices.Equal(dr.Steps, want) {
		t.Errorf("steps %q", dr.Steps)
	}
	if len(steps) != len(want)+1 || steps[0] != "lb-a1:connect" {
		t.Errorf("progress %q", steps)
	}
	for _, want := range []string{"msg=connect device=lb-a1", "msg=reload device=lb-a1", `msg="end applied" device=lb-a1`} {
		if !strings.Contains(trace.String(), want) {
			t.Errorf("trace has no %q:\n%s", want, trace.String())
		}
	}
	if got := th.read("etc/haproxy.cfg"); got != string(cfg) {
		t.Errorf("config on host:\n%s", got)
	}
	if !strings.Contains(th.read("addrs"), "203.0.113.10/32 eth0") {
		t.Errorf("vip not added: %s", th.read("addrs"))
	}
	st, err := host.ParseState([]byte(th.read("state/state.json")))
	if err != nil {
		t.Fatal(err)
	}
	if st.Revision != "rev1" || st.ConfigSHA256 != sha256Hex(cfg) || !slices.Equal(st.VIPs, []string{"203.0.113.10/32 dev eth0"}) ||
		len(st.History) != 1 || st.LBCVersion != "test" {
		t.Errorf("state %+v", st)
	}
	for _, f := range []string{"etc/haproxy.cfg.lbc-new", "state/state.json.lbc-tmp"} {
		if th.read(f) != "<absent>" {
			t.Errorf("%s left on the host", f)
		}
	}
	if th.armed() {
		t.Error("txn.sh still armed")
	}
	if o := th.read("state/lock.owner"); o != "<absent>" && o != "" {
		t.Errorf("lock owner left behind: %q", th.read("state/lock.owner"))
	}

	// Applying the same change again: the plan is empty, apply does nothing.
	n := len(th.srv.Commands())
	p2 := th.plan("rev1", cfg, "203.0.113.10")
	if p2.Devices[0].Status != StatusUnchanged || p2.HasChanges() {
		t.Fatalf("second plan: %+v", p2.Devices[0])
	}
	r2, err := Apply(context.Background(), p2, th.dial, applyOpts("alice"))
	if err != nil || r2.Devices[0].Outcome != OutcomeUnchanged {
		t.Fatalf("second apply: %+v %v", r2.Devices[0], err)
	}
	if got := len(th.srv.Commands()) - n; got != 1 { // the plan's one read
		t.Errorf("second plan+apply ran %d commands, want 1", got)
	}
	if th.read("reloads") != "reload\n" {
		t.Errorf("reloads: %q", th.read("reloads"))
	}
}

func TestPlanShowsDriftAndApplyRestores(t *testing.T) {
	th := newTestHost(t, "lb-a1")
	cfg := testConfig(18080, 10)
	mustApply(t, th, th.plan("rev1", cfg, "203.0.113.10"))
	th.write("etc/haproxy.cfg", strings.Replace(string(cfg), "weight 10", "weight 99", 1), 0o644)
	p := th.plan("rev1", cfg, "203.0.113.10")
	d := p.Devices[0]
	if d.Status != StatusChanges || !strings.Contains(d.ConfigDiff, "-    server n1 127.0.0.1:9 weight 99 check\n+    server n1 127.0.0.1:9 weight 10 check\n") {
		t.Fatalf("drift not shown: %s\n%s", d.Status, d.ConfigDiff)
	}
	if !strings.Contains(strings.Join(d.Notes, "\n"), "not the one lbc applied last") {
		t.Errorf("notes %q", d.Notes)
	}
	mustApply(t, th, p)
	if th.read("etc/haproxy.cfg") != string(cfg) {
		t.Error("drift not repaired")
	}
}

func TestVIPsOnlyLBCManagedRemoved(t *testing.T) {
	th := newTestHost(t, "lb-a1")
	cfg := testConfig(18080, 10)
	// 203.0.113.11 is on the host already, not added by lbc.
	th.write("addrs", "127.0.0.1/8 lo\n203.0.113.11/32 eth0\n", 0o644)
	p := th.plan("rev1", cfg, "203.0.113.10", "203.0.113.11")
	if d := p.Devices[0]; !slices.Equal(d.VIPsAdd, []string{"203.0.113.10/32 dev eth0"}) || len(d.Notes) < 1 {
		t.Fatalf("plan: add %q notes %q", d.VIPsAdd, d.Notes)
	}
	mustApply(t, th, p)
	// Neither is wanted any more: lbc removes only the one it added.
	p = th.plan("rev2", cfg)
	if d := p.Devices[0]; !slices.Equal(d.VIPsRemove, []string{"203.0.113.10/32 dev eth0"}) {
		t.Fatalf("remove %q", d.VIPsRemove)
	}
	mustApply(t, th, p)
	if got := th.read("addrs"); got != "127.0.0.1/8 lo\n203.0.113.11/32 eth0\n" {
		t.Errorf("addresses after: %q", got)
	}
}

func mustApply(t *testing.T, th *testHost, p *Plan) *ApplyResult {
	t.Helper()
	r, err := Apply(context.Background(), p, th.dial, applyOpts("test"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range r.Devices {
		if d.Outcome != OutcomeApplied && d.Outcome != OutcomeUnchanged {
			t.Fatalf("apply %s: %s: %v", d.Device, d.Outcome, d.Err)
		}
	}
	return r
}

func TestStalePlanRefused(t *testing.T) {
	th := newTestHost(t, "lb-a1")
	mustApply(t, th, th.plan("rev1", testConfig(18080, 10), "203.0.113.10"))
	for _, c := range []struct {
		name, want string
		edit       func()
	}{
		{"config", th.dev.HAProxy.Config + " changed since the plan", func() { th.write("etc/haproxy.cfg", "# hand edit\n", 0o644) }},
		{"state", filepath.Join(th.dev.StateDir, "state.json") + " changed since the plan", func() {
			th.write("state/state.json", strings.Replace(th.read("state/state.json"), "rev1", "rev0", 1), 0o644)
		}},
		{"addresses", "the VIP addresses changed since the plan", func() { th.write("addrs", "127.0.0.1/8 lo\n", 0o644) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := th.plan("rev2", testConfig(18080, 20), "203.0.113.10")
			before := th.snap()
			c.edit()
			edited := th.snap()
			r, err := Apply(context.Background(), p, th.dial, applyOpts("test"))
			if err != nil {
				t.Fatal(err)
			}
			d := r.Devices[0]
			if d.Outcome != OutcomeFailedBeforeChange || !errors.Is(d.Err, ErrStale) {
				t.Fatalf("outcome %s err %v", d.Outcome, d.Err)
			}
			if !strings.Contains(d.Err.Error(), "device lb-a1: "+c.want) {
				t.Errorf("error %q does not name device and %q", d.Err, c.want)
			}
			if th.snap() != edited {
				t.Error("a stale apply changed the host")
			}
			// Put the host back for the next case.
			th.write("etc/haproxy.cfg", before.config, 0o644)
			th.write("state/state.json", before.state, 0o644)
			th.write("addrs", before.addrs, 0o644)
		})
	}
}

func TestConcurrentApplyLocked(t *testing.T) {
	th := newTestHost(t, "lb-a1")
	p := th.plan("rev1", testConfig(18080, 10), "203.0.113.10")
	inReload := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	// The first apply's change script waits, unsent, until released.
	f := func(cmd string) string {
		if strings.Contains(cmd, "lbc_step "+StepReload+"\n") {
			once.Do(func() { close(inReload); <-release })
		}
		return cmd
	}
	th.inject.Store(&f)
	var r1 *ApplyResult
	done := make(chan struct{})
	go func() {
		defer close(done)
		r1, _ = Apply(context.Background(), p, th.dial, applyOpts("alice@ctl pid 1"))
	}()
	<-inReload
	r2, err := Apply(context.Background(), p, th.dial, applyOpts("bob@ctl pid 2"))
	close(release)
	<-done
	if err != nil {
		t.Fatal(err)
	}
	d2 := r2.Devices[0]
	if d2.Outcome != OutcomeFailedBeforeChange || !errors.Is(d2.Err, ErrLocked) ||
		!strings.Contains(d2.Err.Error(), "device lb-a1 is locked by alice@ctl pid 1") {
		t.Errorf("second apply: %s %v", d2.Outcome, d2.Err)
	}
	if r1.Devices[0].Outcome != OutcomeApplied {
		t.Errorf("first apply: %s %v", r1.Devices[0].Outcome, r1.Devices[0].Err)
	}
}

// faultCase is where a fault goes: the lock holder's command (sshtest
// faults on the whole command), or one step of a script, where the test
// transport rewrites the script (fail: the step's first command fails;
// cut: the connection is cut when the script reaches the start or the end
// of the step, and the script goes on, as a host's would).
type faultCase struct {
	step string
	// at, when set, is the text whose start fails instead of the step's
	// first command.
	at func(th *testHost) string
}

func faultCases() []faultCase {
	return []faultCase{
		{step: StepLock},
		{step: StepStaleCheck},
		{step: StepStage},
		{step: StepStage + "/check", at: func(th *testHost) string { return "{ " + th.dev.HAProxy.Check + " " }},
		{step: StepKeepLastGood},
		{step: StepArm},
		{step: StepAddVIPs},
		{step: StepSaveServerState},
		{step: StepSwap},
		{step: StepReload},
		{step: StepVerify},
		{step: StepRemoveVIPs},
		{step: StepCommit},
	}
}

type faultKind int

const (
	faultFail faultKind = iota
	faultCutBefore
	faultCutAfter
)

// stepIndex is the position of step in faultCases.
func stepIndex(step string) int {
	return slices.IndexFunc(faultCases(), func(f faultCase) bool { return f.step == step })
}

// setupForFaults applies rev1 (config weight 10, VIP .10) and plans rev2
// (weight 20, VIP .11 instead of .10): every step has work to do.
func setupForFaults(t *testing.T) (*testHost, *Plan, snapshot) {
	th := newTestHost(t, "lb-a1")
	mustApply(t, th, th.plan("rev1", testConfig(18080, 10), "203.0.113.10"))
	p := th.plan("rev2", testConfig(18081, 20), "203.0.113.11")
	d := p.Devices[0]
	if d.Status != StatusChanges || len(d.VIPsAdd) != 1 || len(d.VIPsRemove) != 1 {
		t.Fatalf("setup plan: %+v", d)
	}
	return th, p, th.snap()
}

// armFault arms one fault of kind at c; the returned flag says whether it
// fired.
func armFault(th *testHost, c faultCase, kind faultKind) *atomic.Bool {
	fired := new(atomic.Bool)
	step := strings.Split(c.step, "/")[0]
	if step == StepLock {
		f := map[faultKind]sshtest.Fault{faultFail: sshtest.FailExit(1, "injected failure\n"),
			faultCutBefore: sshtest.CutBefore, faultCutAfter: sshtest.CutAfter}[kind]
		th.setHook(func(cmd string) sshtest.Fault {
			if strings.Contains(cmd, "exec flock -o") && fired.CompareAndSwap(false, true) {
				return f
			}
			return sshtest.NoFault
		})
		return fired
	}
	mark := filepath.Join(th.t.TempDir(), "cut")
	cut := fmt.Sprintf("\n: > %s; lbc_w=0; while [ ! -e %s.done ] && [ $lbc_w -lt 500 ]; do sleep 0.01; lbc_w=$((lbc_w+1)); done\n", mark, mark)
	begin, end := "lbc_step "+step+"\n", "# end of step "+step+"\n"
	f := func(cmd string) string {
		if !strings.Contains(cmd, begin) || !fired.CompareAndSwap(false, true) {
			return cmd
		}
		switch {
		case kind == faultFail && c.at != nil:
			at := c.at(th)
			if !strings.Contains(cmd, at) {
				th.t.Errorf("%q not in the script of step %s", at, step)
			}
			return strings.Replace(cmd, at, at[:2]+"false && "+at[2:], 1)
		case kind == faultFail:
			return strings.Replace(cmd, begin+"{ ", begin+"false && { ", 1)
		case kind == faultCutBefore:
			return strings.Replace(cmd, begin, begin+cut, 1)
		default:
			return strings.Replace(cmd, end, end+cut, 1)
		}
	}
	th.inject.Store(&f)
	if kind != faultFail {
		// Cut every connection when the script reaches the mark.
		stop := make(chan struct{})
		th.t.Cleanup(func() { close(stop) })
		go func() {
			tick := time.NewTicker(2 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				if _, err := os.Stat(mark); err == nil {
					th.srv.CutAll()
					os.WriteFile(mark+".done", nil, 0o644)
					return
				}
			}
		}()
	}
	return fired
}

// failStep makes every script with step fail there (until clearFaults), saying
// "disk full", after the steps before it ran.
func (th *testHost) failStep(step string) {
	f := func(cmd string) string {
		return strings.Replace(cmd, "lbc_step "+step+"\n{ ", "lbc_step "+step+"\n{ echo 'disk full' >&2; false; } && { ", 1)
	}
	th.inject.Store(&f)
}

// armed reports whether the host has a rollback script armed: txn.sh
// present and not empty.
func (th *testHost) armed() bool {
	r := th.read("state/txn.sh")
	return r != "<absent>" && r != ""
}

// clearFaults removes every fault hook.
func (th *testHost) clearFaults() {
	th.setHook(nil)
	th.inject.Store(nil)
}

func TestFailExitAtEveryStep(t *testing.T) {
	for _, c := range faultCases() {
		t.Run(c.step, func(t *testing.T) {
			th, p, old := setupForFaults(t)
			fired := armFault(th, c, faultFail)
			r, err := Apply(context.Background(), p, th.dial, applyOpts("test"))
			if err != nil {
				t.Fatal(err)
			}
			if !fired.Load() {
				t.Fatal("fault never fired")
			}
			th.clearFaults()
			th.waitUnlocked()
			d := r.Devices[0]
			t.Logf("%s: %v (steps %q, warnings %q)", d.Outcome, d.Err, d.Steps, d.Warnings)
			for _, f := range []string{"etc/haproxy.cfg.lbc-new", "state/state.json.lbc-tmp"} {
				if th.read(f) != "<absent>" {
					t.Errorf("%s left on the host", f)
				}
			}
			if th.armed() {
				t.Error("txn.sh still armed")
			}
			switch {
			case c.step == StepSaveServerState: // a warning, not a failure
				if d.Outcome != OutcomeApplied || len(d.Warnings) == 0 {
					t.Fatalf("outcome %s warnings %q", d.Outcome, d.Warnings)
				}
				return
			case stepIndex(c.step) < stepIndex(StepAddVIPs):
				if d.Outcome != OutcomeFailedBeforeChange {
					t.Errorf("outcome %s, want failed-before-change", d.Outcome)
				}
				if th.snap() != old {
					t.Errorf("host changed by a failure before any change:\n%+v\nwas\n%+v", th.snap(), old)
				}
			default:
				if d.Outcome != OutcomeRolledBack {
					t.Errorf("outcome %s, want rolled-back", d.Outcome)
				}
				if !strings.Contains(d.Err.Error(), "apply lb-a1: "+strings.Split(c.step, "/")[0]+": ") {
					t.Errorf("error %q does not name the step", d.Err)
				}
				if th.snap() != old {
					t.Errorf("not rolled back to identical bytes:\n%+v\nwas\n%+v", th.snap(), old)
				}
			}
			// The host is as before: planning again shows the same change.
			p2 := th.plan("rev2", testConfig(18081, 20), "203.0.113.11")
			if p2.Devices[0].ConfigDiff != p.Devices[0].ConfigDiff {
				t.Errorf("plan after failure differs")
			}
		})
	}
}

// TestCutConnectionAtEveryStep cuts the connection before and after each
// step's command: the host must end old or new, never a mix, the lock must
// be free, and a new plan must show exactly what remains.
func TestCutConnectionAtEveryStep(t *testing.T) {
	for _, c := range faultCases() {
		for _, f := range []struct {
			name  string
			fault faultKind
		}{{"before", faultCutBefore}, {"after", faultCutAfter}} {
			t.Run(c.step+"/"+f.name, func(t *testing.T) {
				th, p, old := setupForFaults(t)
				fired := armFault(th, c, f.fault)
				r, err := Apply(context.Background(), p, th.dial, applyOpts("test"))
				if err != nil {
					t.Fatal(err)
				}
				if !fired.Load() {
					t.Fatal("fault never fired")
				}
				th.clearFaults()
				th.waitUnlocked()
				d := r.Devices[0]
				t.Logf("%s: %v", d.Outcome, d.Err)
				now := th.snap()
				p2 := th.plan("rev2", testConfig(18081, 20), "203.0.113.11")
				d2 := p2.Devices[0]
				switch {
				case now == old:
					// The real outcome, found over a new connection.
					if d.Outcome != OutcomeRolledBack && d.Outcome != OutcomeFailedBeforeChange {
						t.Errorf("host is old, reported %s", d.Outcome)
					}
					if stepIndex(c.step) >= stepIndex(StepAddVIPs) && !strings.Contains(fmt.Sprint(d.Err), "rolled back by the host") {
						t.Errorf("error %q does not say the host rolled back", d.Err)
					}
					if d2.Status != StatusChanges || d2.ConfigDiff != p.Devices[0].ConfigDiff ||
						!slices.Equal(d2.VIPsAdd, p.Devices[0].VIPsAdd) || !slices.Equal(d2.VIPsRemove, p.Devices[0].VIPsRemove) {
						t.Errorf("host old but plan shows %+v", d2)
					}
				case now.config == string(testConfig(18081, 20)) && strings.Contains(now.state, `"rev2"`) &&
					now.addrs == strings.Replace(old.addrs, "203.0.113.10", "203.0.113.11", 1) && now.running == sha256Hex(testConfig(18081, 20))+"\n":
					if d2.Status != StatusUnchanged {
						t.Errorf("host new but plan shows %s %s", d2.Status, d2.ConfigDiff)
					}
					if d.Outcome != OutcomeApplied || d.Err != nil {
						t.Errorf("host is new, reported %s: %v", d.Outcome, d.Err)
					}
				default:
					t.Fatalf("host is a mix:\n%+v\nold:\n%+v\ntxn.log: %s", now, old, th.read("state/txn.log"))
				}
				if th.armed() {
					t.Error("txn.sh still armed")
				}
				// The lock is free: the next apply takes it and converges.
				if d2.Status == StatusChanges {
					mustApply(t, th, p2)
				}
			})
		}
	}
}

func TestMaxFailuresSkipsTheRest(t *testing.T) {
	th := newTestHost(t, "lb-a1")
	pa := th.plan("rev1", testConfig(18080, 10))
	th.init("lb-b1") // second device on the same server, own dir
	pb := th.plan("rev1", testConfig(18080, 10))
	p := &Plan{Format: PlanFormat, Revision: "rev1", Devices: []DevicePlan{pa.Devices[0], pb.Devices[0]}}
	// The swap step fails (after the script has staged and armed).
	f := func(cmd string) string {
		return strings.Replace(cmd, "lbc_step "+StepSwap+"\n{ ", "lbc_step "+StepSwap+"\nfalse && { ", 1)
	}
	th.inject.Store(&f)
	o := applyOpts("test")
	o.Parallelism, o.MaxFailures = 1, 1
	r, err := Apply(context.Background(), p, th.dial, o)
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(r.Devices[0].Outcome, " ", r.Devices[1].Outcome)
	if got != "rolled-back skipped" {
		t.Errorf("outcomes %s", got)
	}
}

func TestUnreachableReportedNotApplied(t *testing.T) {
	th := newTestHost(t, "lb-a1")
	th.dev.SSH.Port = 1 // nothing listens there
	p := th.plan("rev1", testConfig(18080, 10))
	d := p.Devices[0]
	if d.Status != StatusUnreachable || !strings.Contains(d.Error, "plan lb-a1: ") {
		t.Fatalf("plan: %s %q", d.Status, d.Error)
	}
	if c, u, un, f := p.Counts(); c != 0 || u != 0 || un != 1 || f != 0 {
		t.Errorf("counts %d changes, %d unchanged, %d unreachable, %d failed; want 1 unreachable", c, u, un, f)
	}
	r, _ := Apply(context.Background(), p, th.dial, applyOpts("test"))
	if r.Devices[0].Outcome != OutcomeSkipped {
		t.Errorf("apply: %s", r.Devices[0].Outcome)
	}
}

// When the connection is cut and the script then fails after it armed the
// rollback (here: the reload fails), nobody is left to roll back but the
// lock holder on the host: it runs the armed script, and the host ends
// exactly as before.
func TestHostRollsBackAfterCutAndFailure(t *testing.T) {
	th, p, old := setupForFaults(t)
	mark := filepath.Join(t.TempDir(), "cut")
	cut := fmt.Sprintf("\n: > %s; lbc_w=0; while [ ! -e %s.done ] && [ $lbc_w -lt 500 ]; do sleep 0.01; lbc_w=$((lbc_w+1)); done\n", mark, mark)
	begin := "lbc_step " + StepReload + "\n"
	var fired atomic.Bool
	f := func(cmd string) string {
		if !strings.Contains(cmd, begin) || !fired.CompareAndSwap(false, true) {
			return cmd
		}
		return strings.Replace(cmd, begin+"{ ", begin+cut+"false && { ", 1)
	}
	th.inject.Store(&f)
	go func() {
		for i := 0; i < 2500; i++ {
			if _, err := os.Stat(mark); err == nil {
				th.srv.CutAll()
				os.WriteFile(mark+".done", nil, 0o644)
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	r, err := Apply(context.Background(), p, th.dial, applyOpts("test"))
	if err != nil {
		t.Fatal(err)
	}
	th.clearFaults()
	th.waitUnlocked()
	d := r.Devices[0]
	t.Logf("%s: %v", d.Outcome, d.Err)
	if !fired.Load() {
		t.Fatal("fault never fired")
	}
	if d.Outcome != OutcomeRolledBack || !strings.Contains(fmt.Sprint(d.Err), "rolled back by the host") {
		t.Errorf("outcome %s %v, want rolled back by the host", d.Outcome, d.Err)
	}
	if th.snap() != old {
		t.Errorf("host not as before:\n%+v\nwas\n%+v\ntxn.log: %s", th.snap(), old, th.read("state/txn.log"))
	}
	if th.armed() {
		t.Error("txn.sh still armed")
	}
}

// Files travel in the script's text, in pieces of 64 KiB: a config of
// several pieces, with every character the shell would otherwise read
// (quotes, backslashes, $, backquotes, %, braces), arrives byte for
// byte, and a failure after it rolls back to the identical old bytes.
func TestApplyLargeConfig(t *testing.T) {
	th, p, before := setupForFaults(t)
	var b strings.Builder
	for i := 0; b.Len() < 200<<10; i++ {
		fmt.Fprintf(&b, "# %d: it's \\ \"$HOME\" `id` $(id) %%s %%%% '\\'' ;}\n#}\n", i)
	}
	big := append([]byte(b.String()), testConfig(18082, 30)...)
	p2 := th.plan("rev3", big, "203.0.113.11")
	th.failStep(StepSwap)
	r, err := Apply(context.Background(), p2, th.dial, applyOpts("test"))
	if err != nil {
		t.Fatal(err)
	}
	if d := r.Devices[0]; d.Outcome != OutcomeRolledBack {
		t.Fatalf("failed swap: %s (%v), want rolled-back", d.Outcome, d.Err)
	}
	if th.snap() != before {
		t.Errorf("not rolled back to identical bytes:\n%+v\nwas\n%+v", th.snap(), before)
	}
	th.clearFaults()
	mustApply(t, th, p)
	mustApply(t, th, th.plan("rev3", big, "203.0.113.11"))
	if got := th.read("etc/haproxy.cfg"); got != string(big) {
		t.Errorf("config after apply: %d bytes, want %d (first difference at %d)", len(got), len(big), firstDiff(got, string(big)))
	}
	if st := th.read("state/state.json"); !strings.Contains(st, `"rev3"`) {
		t.Errorf("state.json after apply:\n%s", st)
	}
	if th.armed() {
		t.Error("txn.sh still armed")
	}
	if f := "state/state.json.lbc-tmp"; th.read(f) != "<absent>" {
		t.Errorf("%s left on the host", f)
	}
}

// last-good holds the live config's exact bytes, written from what the
// lock holder read, or linked when a shell word cannot hold them (a NUL
// byte from a hand edit); a rollback restores them exactly.
func TestKeepLastGoodBytes(t *testing.T) {
	for _, live := range []string{"it's the old config \\ $HOME\n", "hand edit with a NUL \x00 byte\n"} {
		th, p, _ := setupForFaults(t)
		th.write("etc/haproxy.cfg", live, 0o644)
		p = th.plan("rev2", testConfig(18081, 20), "203.0.113.11")
		th.failStep(StepSwap)
		r, err := Apply(context.Background(), p, th.dial, applyOpts("test"))
		if err != nil {
			t.Fatal(err)
		}
		if d := r.Devices[0]; d.Outcome != OutcomeRolledBack {
			t.Fatalf("%q: failed swap: %s (%v), want rolled-back", live, d.Outcome, d.Err)
		}
		if got := th.read("state/last-good/haproxy.cfg"); got != live {
			t.Errorf("last-good %q, want %q", got, live)
		}
		if got := th.read("etc/haproxy.cfg"); got != live {
			t.Errorf("config after the rollback %q, want %q", got, live)
		}
	}
}

// firstDiff is the index of the first byte where a and b differ.
func firstDiff(a, b string) int {
	for i := 0; i < min(len(a), len(b)); i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
