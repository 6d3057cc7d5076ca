package reconcile

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"lbc/compiler"
	"lbc/internal/testkit/sshtest"
	"lbc/reconcile/host"
)

// The fault matrix. Each case injects faults with the in-process SSH
// server, which follows the step markers the host prints on the live
// session and fails a command of a step, or cuts the connection, where
// the step runs on the host (sshtest.StepFault): no script is rewritten.
// The change is rev1 (weight 10, VIP .10) to rev2 (weight 20, another
// port, VIP .11 instead of .10), so that every step has work to do.
//
// Every case checks (a) that the server reports the faults fired, at
// exactly their step; (b) the outcome Apply reports and the host's files,
// addresses and running config; (c) that the lock is free and nothing is
// left armed; (d) that the next plan shows exactly what remains: the whole
// change when the host is old, nothing when it is new.
//
//	step               fail (a command of the step fails)        cut (the connection dies at the step's marker)
//	lock               failed-before-change, old                 failed-before-change, old
//	stale-check        failed-before-change, old                 failed-before-change, old
//	stage (+ check)    failed-before-change, old                 applied (host committed), new
//	keep-last-good     failed-before-change, old                 applied (host committed), new
//	arm-rollback       failed-before-change, old                 applied (host committed), new
//	add-vips           rolled-back, old                          applied (host committed), new
//	save-server-state  applied with its warning, new             applied (host committed), new
//	swap               rolled-back, old                          applied (host committed), new
//	reload             rolled-back, old                          applied (host committed), new
//	verify             rolled-back, old                          applied (host committed), new
//	remove-vips        rolled-back, old                          applied (host committed), new
//	write-state        rolled-back, old                          applied (host committed), new
//	rollback           failed; the holder rolls back: old        rolled-back (by the host), old
//	rollback-verify    rolled-back after a second reload, old    rolled-back (by the host), old
//	second reload      failed; the holder rolls back: old        rolled-back (by the host), old
//
// (rollback, rollback-verify and the second reload follow a failed swap;
// the second reload also a failed rollback-verify.) Once the host has a
// script it runs it to its end whatever happens to the connection, so a
// cut alone never stops a change: what decides is whether the host fails
// after it. The runtime path (no reload) has its own rows below
// (runtimeFaults), against a real HAProxy's stats socket. More cases
// below: a cut followed by a failure of the same step
// (the holder rolls back), a cut in the middle of a step (between the two
// renames of swap), a script cut short in transit, a reconnect that fails
// after a cut, and connect refused at apply time.

// expect is where a case must end.
type expect struct {
	outcome Outcome
	new     bool   // the host runs rev2 (else rev1, byte for byte)
	errHas  string // the apply error contains this ("" : no error)
	warnHas string // a warning contains this
}

// faultCase is one row of the matrix.
type faultCase struct {
	name   string
	faults []sshtest.StepFault
	want   expect
	// refused: the case refuses connections; the check listens again
	// before it plans.
	refused bool
	// needs: the case's fault is on a command that only one of these
	// tools runs (the check, the stats socket's client).
	needs []string
}

// skipUnlessTool skips a case whose tools are all absent, unless CI is
// set (CI has them all: make deps).
func skipUnlessTool(t *testing.T, c faultCase) {
	if len(c.needs) == 0 || slices.ContainsFunc(c.needs, func(n string) bool { _, err := exec.LookPath(n); return err == nil }) {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("none of %q installed (CI set)", c.needs)
	}
	t.Skipf("none of %q installed: the case's fault has no command to fail", c.needs)
}

func fail(step, tool string) sshtest.StepFault {
	return sshtest.StepFault{Step: step, Action: sshtest.Fail, Tool: tool}
}

func cut(step string) sshtest.StepFault {
	return sshtest.StepFault{Step: step, Action: sshtest.Cut}
}

// injected is the message of a Fail fault's command, as the host's stderr
// carries it into the apply error.
func injected(tool, step string) string {
	return "injected failure of " + tool + " at step " + step
}

// lockCommand is what the lock holder's session runs (lockCmd).
const lockCommand = "exec flock -o"

func faultMatrix() []faultCase {
	rolledBack := func(step, tool string) expect {
		return expect{outcome: OutcomeRolledBack, errHas: "apply lb-a1: " + step + ": exit status 1: sshtest: " + injected(tool, step)}
	}
	before := func(step, tool string) expect {
		return expect{outcome: OutcomeFailedBeforeChange, errHas: "apply lb-a1: " + step + ": exit status 1: sshtest: " + injected(tool, step)}
	}
	committed := func(step string) expect {
		return expect{outcome: OutcomeApplied, new: true, warnHas: "connection lost at " + step + "; reconnected: the host committed the change"}
	}
	byHost := expect{outcome: OutcomeRolledBack, errHas: "(reconnected: rolled back by the host)"}
	failSwap := fail(StepSwap, "mv")
	failRBVerify := fail(host.StepRollbackVerify, "cat")
	secondReload := func(a sshtest.Action, tool string) sshtest.StepFault {
		return sshtest.StepFault{Step: StepRollback, Nth: 2, Action: a, Tool: tool}
	}
	cs := []faultCase{
		{name: "fail/lock", faults: []sshtest.StepFault{{Step: StepLock, Command: lockCommand, Action: sshtest.Fail}},
			want: expect{outcome: OutcomeFailedBeforeChange, errHas: "apply lb-a1: lock: "}},
		{name: "fail/stale-check", faults: []sshtest.StepFault{fail(StepStaleCheck, "base64")},
			want: expect{outcome: OutcomeFailedBeforeChange, errHas: "apply lb-a1: stale-check: read live state on the host failed"}},
		{name: "fail/stage", faults: []sshtest.StepFault{fail(StepStage, "printf")}, want: before(StepStage, "printf")},
		{name: "fail/stage-check", faults: []sshtest.StepFault{fail(StepStage, "haproxy")}, needs: []string{"haproxy"},
			want: expect{outcome: OutcomeFailedBeforeChange, errHas: "apply lb-a1: stage: exit status 1: sshtest: " + injected("haproxy", StepStage) + "\ncheck haproxy.cfg failed"}},
		{name: "fail/keep-last-good", faults: []sshtest.StepFault{fail(StepKeepLastGood, "printf")}, want: before(StepKeepLastGood, "printf")},
		{name: "fail/arm-rollback", faults: []sshtest.StepFault{fail(StepArm, "printf")}, want: before(StepArm, "printf")},
		{name: "fail/add-vips", faults: []sshtest.StepFault{fail(StepAddVIPs, "ip")}, want: rolledBack(StepAddVIPs, "ip")},
		{name: "fail/save-server-state", faults: []sshtest.StepFault{fail(StepSaveServerState, "")}, needs: []string{"nc.openbsd", "socat"},
			want: expect{outcome: OutcomeApplied, new: true, warnHas: "save server state failed (a host whose HAProxy does not run yet has none): sshtest: injected failure of "}},
		{name: "fail/swap", faults: []sshtest.StepFault{failSwap}, want: rolledBack(StepSwap, "mv")},
		{name: "fail/reload", faults: []sshtest.StepFault{fail(StepReload, "reload")}, want: rolledBack(StepReload, "reload")},
		{name: "fail/verify", faults: []sshtest.StepFault{fail(StepVerify, "cat")},
			want: expect{outcome: OutcomeRolledBack, errHas: "apply lb-a1: verify: exit status 1: host runs config , not "}},
		{name: "fail/remove-vips", faults: []sshtest.StepFault{fail(StepRemoveVIPs, "ip")}, want: rolledBack(StepRemoveVIPs, "ip")},
		{name: "fail/write-state", faults: []sshtest.StepFault{fail(StepCommit, "printf")}, want: rolledBack(StepCommit, "printf")},
		{name: "fail/rollback", faults: []sshtest.StepFault{failSwap, fail(StepRollback, "sh")},
			want: expect{outcome: OutcomeFailed, errHas: "apply lb-a1: rollback: exit status 1: sshtest: " + injected("sh", StepRollback)}},
		{name: "fail/rollback-verify", faults: []sshtest.StepFault{failSwap, failRBVerify},
			want: expect{outcome: OutcomeRolledBack, errHas: "apply lb-a1: swap: "}},
		{name: "fail/second-reload", faults: []sshtest.StepFault{failSwap, failRBVerify, secondReload(sshtest.Fail, "reload")},
			want: expect{outcome: OutcomeFailed, errHas: "reloaded once more: exit status 1: sshtest: " + injected("reload", StepRollback)}},

		{name: "cut/lock", faults: []sshtest.StepFault{{Step: StepLock, Command: lockCommand, Action: sshtest.Cut}},
			want: expect{outcome: OutcomeFailedBeforeChange, errHas: "apply lb-a1: lock: "}},
		{name: "cut/stale-check", faults: []sshtest.StepFault{cut(StepStaleCheck)},
			want: expect{outcome: OutcomeFailedBeforeChange, errHas: "apply lb-a1: lock: stale-check: the lock holder ended: connection lost"}},
	}
	for _, s := range []string{StepStage, StepKeepLastGood, StepArm, StepAddVIPs, StepSaveServerState, StepSwap, StepReload, StepVerify, StepRemoveVIPs, StepCommit} {
		cs = append(cs, faultCase{name: "cut/" + s, faults: []sshtest.StepFault{cut(s)}, want: committed(s)})
	}
	cs = append(cs,
		faultCase{name: "cut/rollback", faults: []sshtest.StepFault{failSwap, cut(StepRollback)}, want: byHost},
		faultCase{name: "cut/rollback-verify", faults: []sshtest.StepFault{failSwap, cut(host.StepRollbackVerify)}, want: byHost},
		faultCase{name: "cut/second-reload", faults: []sshtest.StepFault{failSwap, failRBVerify, secondReload(sshtest.Cut, "")}, want: byHost},

		// The connection dies at reload, then the reload fails: nobody is
		// left to roll back but the lock holder, which runs the armed
		// script when its session ends.
		faultCase{name: "cut+fail/reload", faults: []sshtest.StepFault{cut(StepReload), fail(StepReload, "reload")}, want: byHost},
		// The change script cut short on its way: the host has its text
		// up to swap, runs none of it (its body is a function called on
		// its last line).
		faultCase{name: "cut-in-transit/swap", faults: []sshtest.StepFault{{Step: StepSwap, Action: sshtest.CutInTransit}},
			want: expect{outcome: OutcomeFailedBeforeChange, errHas: "apply lb-a1: stage: connection lost (reconnected: the host runs its old state)"}},
		// A cut, and the reconnect that would tell how it ended fails:
		// the host committed, the controller cannot know.
		faultCase{name: "cut+refuse/reload", faults: []sshtest.StepFault{{Step: StepReload, Action: sshtest.Cut, Refuse: true}}, refused: true,
			want: expect{outcome: OutcomeFailed, new: true, errHas: "apply lb-a1: after the lost connection: reconnect: "}},
	)
	return cs
}

// setupForFaults applies rev1 (config weight 10, VIP .10, a map and a
// referenced file) and plans rev2 (weight 20, VIP .11 instead of .10,
// both files changed): every step has work to do.
func setupForFaults(t *testing.T) (*testHost, *Plan, snapshot) {
	return setupForFaultsWith(t, true)
}

// setupForFaultsWith is setupForFaults, without the auxiliary files
// when files is false (a test whose timing the smaller change keeps).
func setupForFaultsWith(t *testing.T, files bool) (*testHost, *Plan, snapshot) {
	th := newTestHost(t, "lb-a1")
	if files {
		th.aux, th.src = faultFiles(th)
	}
	mustApply(t, th, th.plan("rev1", testConfig(18080, 10), "203.0.113.10"))
	p := th.plan("rev2", testConfig(18081, 20), "203.0.113.11")
	d := p.Devices[0]
	if d.Status != StatusChanges || len(d.VIPsAdd) != 1 || len(d.VIPsRemove) != 1 || (files && len(d.FileChanges) != 2) {
		t.Fatalf("setup plan: %+v", d)
	}
	return th, p, th.snap()
}

// runFaultCase runs one case and returns what is wrong: "no fault fired"
// first when no fault fired.
func runFaultCase(t *testing.T, c faultCase, inject bool) []string {
	th, p, old := setupForFaults(t)
	th.srv.SetInjection(inject)
	th.srv.Inject(c.faults...)
	r, err := Apply(context.Background(), p, th.dial, applyOpts("test"))
	returned := time.Now()
	if err != nil {
		t.Fatal(err)
	}
	fired := th.srv.Fired()
	th.srv.Inject()
	th.srv.SetInjection(true)
	if c.refused {
		th.srv.Listen()
	}
	var bad []string
	badf := func(format string, a ...any) { bad = append(bad, fmt.Sprintf(format, a...)) }

	// (a) the server fired every fault, at its step.
	var want, got []string
	for _, f := range c.faults {
		want = append(want, f.String())
	}
	for _, f := range fired {
		got = append(got, f.String())
	}
	if len(got) == 0 {
		badf("no fault fired")
	} else if !slices.Equal(got, want) {
		badf("fired %q, want %q", got, want)
	}

	// (b) the outcome, as reported and on the host.
	d := r.Devices[0]
	t.Logf("%s: %v (steps %q, warnings %q)", d.Outcome, d.Err, d.Steps, d.Warnings)
	if d.Outcome != c.want.outcome {
		badf("outcome %s (%v), want %s", d.Outcome, d.Err, c.want.outcome)
	}
	switch {
	case c.want.errHas == "" && d.Err != nil:
		badf("error %v, want none", d.Err)
	case c.want.errHas != "" && !strings.Contains(fmt.Sprint(d.Err), c.want.errHas):
		badf("error %q does not say %q", fmt.Sprint(d.Err), c.want.errHas)
	}
	if c.want.warnHas != "" && !slices.ContainsFunc(d.Warnings, func(w string) bool { return strings.Contains(w, c.want.warnHas) }) {
		badf("warnings %q do not say %q", d.Warnings, c.want.warnHas)
	}

	// (c) the lock is free (within 2 s of the return, for the cases whose
	// holder outlives the controller's view), nothing armed or staged.
	if !th.unlockedWithin(returned.Add(2 * time.Second)) {
		badf("device lock still held 2s after apply returned")
	}
	now := th.snap()
	if c.want.new {
		newAddrs := strings.Replace(old.addrs, "203.0.113.10", "203.0.113.11", 1)
		if now.config != string(testConfig(18081, 20)) || !strings.Contains(now.state, `"rev2"`) ||
			now.addrs != newAddrs || now.running != sha256Hex(testConfig(18081, 20))+"\n" || (th.aux != nil && now.files != faultFilesNew) {
			badf("host is not new:\n%+v", now)
		}
	} else if now != old {
		badf("host is not old:\n%+v\nwas\n%+v\ntxn.log: %s", now, old, th.read("state/txn.log"))
	}
	if th.armed() {
		badf("txn.sh still armed")
	}
	for _, f := range []string{"etc/haproxy.cfg.lbc-new", "state/state.json.lbc-tmp"} {
		if th.read(f) != "<absent>" {
			badf("%s left on the host", f)
		}
	}

	// (d) the next plan shows exactly what remains.
	d2 := th.plan("rev2", testConfig(18081, 20), "203.0.113.11").Devices[0]
	if c.want.new {
		if d2.Status != StatusUnchanged {
			badf("host new but the next plan shows %s\n%s", d2.Status, d2.ConfigDiff)
		}
	} else {
		d1 := p.Devices[0]
		if d2.Status != StatusChanges || d2.ConfigDiff != d1.ConfigDiff ||
			!slices.Equal(d2.VIPsAdd, d1.VIPsAdd) || !slices.Equal(d2.VIPsRemove, d1.VIPsRemove) {
			badf("host old but the next plan shows %s: add %q remove %q\n%s", d2.Status, d2.VIPsAdd, d2.VIPsRemove, d2.ConfigDiff)
		}
	}
	return bad
}

// unlockedWithin reports whether the device lock is free by deadline.
func (th *testHost) unlockedWithin(deadline time.Time) bool {
	lock := filepath.Join(th.dev.StateDir, "lock")
	for {
		if exec.Command("flock", "-n", lock, "true").Run() == nil {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFaultMatrix runs every case of the matrix.
func TestFaultMatrix(t *testing.T) {
	for _, c := range faultMatrix() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel() // each case has its own server and host
			skipUnlessTool(t, c)
			for _, b := range runFaultCase(t, c, true) {
				t.Error(b)
			}
		})
	}
}

// TestFaultMatrixWithoutInjection runs the matrix with the server's
// injection off: every case must then report that no fault fired, and
// fail on its outcome too. A case that passed without its fault would
// prove nothing.
func TestFaultMatrixWithoutInjection(t *testing.T) {
	for _, c := range faultMatrix() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel() // each case has its own server and host
			skipUnlessTool(t, c)
			bad := runFaultCase(t, c, false)
			if len(bad) < 2 || bad[0] != "no fault fired" {
				t.Errorf("without injection the case reports %q, want \"no fault fired\" and a wrong outcome", bad)
			}
		})
	}
}

// failStep makes the first command of step fail, once.
func (th *testHost) failStep(step string) {
	th.srv.Inject(sshtest.StepFault{Step: step, Action: sshtest.Fail})
}

// armed reports whether the host has a rollback script armed: txn.sh
// present and not empty.
func (th *testHost) armed() bool {
	r := th.read("state/txn.sh")
	return r != "<absent>" && r != ""
}

// clearFaults removes every fault.
func (th *testHost) clearFaults() {
	th.setHook(nil)
	th.srv.Inject()
}

// A cut in the middle of a step: swap renames haproxy.cfg, then
// keepalived.conf, and the connection dies between the two renames. The
// host goes on: alone, it ends new; when the second rename then fails, the
// lock holder rolls both files back when its session ends.
func TestCutBetweenTheTwoRenamesOfSwap(t *testing.T) {
	const vip = "203.0.113.20"
	for _, c := range []struct {
		name   string
		faults []sshtest.StepFault
		new    bool
		errHas string
	}{
		{"cut", []sshtest.StepFault{{Step: StepSwap, Action: sshtest.CutAfterCommand, Tool: "mv"}}, true, ""},
		{"cut-then-fail", []sshtest.StepFault{{Step: StepSwap, Action: sshtest.CutAfterCommand, Tool: "mv"},
			{Step: StepSwap, Action: sshtest.Fail, Tool: "mv", Count: 2}}, false, "apply lb-a1: swap: connection lost (reconnected: rolled back by the host)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			th := newTestHost(t, "lb-a1")
			haDevice(th)
			mustApply(t, th, haPlan(t, th, "rev1", testConfig(18080, 10), vip, "primary", true))
			p := haPlan(t, th, "rev2", testConfig(18081, 20), vip, "primary", false)
			if d := p.Devices[0]; d.ConfigDiff == "" || d.KeepalivedDiff == "" {
				t.Fatalf("both files must change: %+v", d)
			}
			type files struct {
				host          snapshot
				ka, kaRunning string
			}
			get := func() files { return files{th.snap(), th.read("etc/keepalived.conf"), th.read("ka-running")} }
			old := get()
			th.srv.Inject(c.faults...)
			r, err := Apply(context.Background(), p, th.dial, applyOpts("test"))
			if err != nil {
				t.Fatal(err)
			}
			returned := time.Now()
			var got []string
			for _, f := range th.srv.Fired() {
				got = append(got, f.String())
			}
			var want []string
			for _, f := range c.faults {
				want = append(want, f.String())
			}
			if !slices.Equal(got, want) {
				t.Errorf("fired %q, want %q", got, want)
			}
			d := r.Devices[0]
			t.Logf("%s: %v (warnings %q)", d.Outcome, d.Err, d.Warnings)
			if !th.unlockedWithin(returned.Add(2 * time.Second)) {
				t.Error("device lock still held 2s after apply returned")
			}
			now := get()
			next := haPlan(t, th, "rev2", testConfig(18081, 20), vip, "primary", false).Devices[0]
			if c.new {
				if d.Outcome != OutcomeApplied || !slices.Contains(d.Warnings, "connection lost at swap; reconnected: the host committed the change") {
					t.Errorf("outcome %s %v warnings %q, want applied after a lost connection", d.Outcome, d.Err, d.Warnings)
				}
				if now.host.config != string(testConfig(18081, 20)) || now.ka != p.Devices[0].Desired.Keepalived || now.kaRunning != now.ka {
					t.Errorf("host is not new:\n%+v", now)
				}
				if next.Status != StatusUnchanged {
					t.Errorf("host new, next plan shows %s", next.Status)
				}
			} else {
				if d.Outcome != OutcomeRolledBack || !strings.Contains(fmt.Sprint(d.Err), c.errHas) {
					t.Errorf("outcome %s %v, want rolled-back: %s", d.Outcome, d.Err, c.errHas)
				}
				if now != old {
					t.Errorf("host is not old:\n%+v\nwas\n%+v\ntxn.log: %s", now, old, th.read("state/txn.log"))
				}
				if next.Status != StatusChanges || next.ConfigDiff != p.Devices[0].ConfigDiff || next.KeepalivedDiff != p.Devices[0].KeepalivedDiff {
					t.Errorf("host old, next plan shows %s\n%s\n%s", next.Status, next.ConfigDiff, next.KeepalivedDiff)
				}
			}
			if th.armed() {
				t.Error("txn.sh still armed")
			}
		})
	}
}

// Connect refused at apply time (the host's sshd went away after the
// plan): nothing changes, the lock is free, the next plan is the same.
func TestConnectRefusedAtApply(t *testing.T) {
	th, p, old := setupForFaults(t)
	th.srv.StopListening()
	r, err := Apply(context.Background(), p, th.dial, applyOpts("test"))
	th.srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	d := r.Devices[0]
	if d.Outcome != OutcomeFailedBeforeChange ||
		!strings.Contains(fmt.Sprint(d.Err), "apply lb-a1: connect: ") || !strings.Contains(fmt.Sprint(d.Err), "connection refused") {
		t.Errorf("outcome %s: %v, want failed-before-change: connect: connection refused", d.Outcome, d.Err)
	}
	if !th.unlockedWithin(time.Now()) {
		t.Error("device lock held")
	}
	if now := th.snap(); now != old {
		t.Errorf("host changed:\n%+v\nwas\n%+v", now, old)
	}
	if d2 := th.plan("rev2", testConfig(18081, 20), "203.0.113.11").Devices[0]; d2.ConfigDiff != p.Devices[0].ConfigDiff ||
		!slices.Equal(d2.VIPsAdd, p.Devices[0].VIPsAdd) || !slices.Equal(d2.VIPsRemove, p.Devices[0].VIPsRemove) {
		t.Errorf("next plan differs: %+v", d2)
	}
}

// runtimeFault is one row of the runtime fault matrix.
type runtimeFault struct {
	name   string
	faults []sshtest.StepFault
	// new: the host ends new (file and runtime); else old.
	new     bool
	outcome Outcome
	errHas  string
	warnHas string
}

// The runtime fault matrix: a socket failure (the stats socket's client
// fails) or a cut at each runtime step. A weight change 1 → 3 and n2
// deleted (so the drain step runs):
//
//	step             fail                                 cut
//	drain            rolled back (undo on the socket)     rolled back by the host (txn.sh)
//	runtime          rolled back                          rolled back by the host
//	runtime-verify   rolled back                          rolled back by the host
//	write-state      rolled back                          applied (the commit script ran)
//	rollback-verify  rolled back (a socket failure there: reloaded once more)
//
// A cut before the commit leaves the host to its lock holder, which runs
// txn.sh when the session ends: the file and the runtime go back. Each
// case checks the faults fired at their step, the outcome, the file, the
// running servers, the lock free, and the next plan.
func runtimeFaults() []runtimeFault {
	nc := func(step string, n int) sshtest.StepFault {
		return sshtest.StepFault{Step: step, Action: sshtest.Fail, Tool: "nc.openbsd", Count: n}
	}
	byHost := "(reconnected: rolled back by the host)"
	return []runtimeFault{
		// The drain's first command is set weight 0 (its first nc).
		{name: "fail/drain", faults: []sshtest.StepFault{nc(host.StepDrain, 1)}, outcome: OutcomeRolledBack,
			errHas: "apply lb-a1: drain: exit status 1: stats socket: set weight be_web/n2 0: (no answer: sshtest: injected failure of nc.openbsd at step drain"},
		// The runtime step asks show info first, then set weight: fail
		// the set weight.
		{name: "fail/runtime", faults: []sshtest.StepFault{nc(host.StepRuntime, 2)}, outcome: OutcomeRolledBack,
			errHas: "apply lb-a1: runtime: exit status 1: stats socket: set weight be_web/n1 3: (no answer: sshtest: injected failure of nc.openbsd at step runtime"},
		{name: "fail/runtime-verify", faults: []sshtest.StepFault{nc(host.StepRuntimeVerify, 1)}, outcome: OutcomeRolledBack,
			errHas: "apply lb-a1: runtime-verify: exit status 1: haproxy did not answer on its stats socket"},
		{name: "fail/write-state", faults: []sshtest.StepFault{{Step: StepCommit, Action: sshtest.Fail, Tool: "printf"}}, outcome: OutcomeRolledBack,
			errHas: "apply lb-a1: write-state: exit status 1: sshtest: injected failure of printf at step write-state"},
		{name: "fail/rollback-verify", faults: []sshtest.StepFault{nc(host.StepRuntime, 2), nc(host.StepRollbackVerify, 1)}, outcome: OutcomeRolledBack,
			errHas: "apply lb-a1: runtime: exit status 1: stats socket: set weight be_web/n1 3"},
		{name: "cut/drain", faults: []sshtest.StepFault{{Step: host.StepDrain, Action: sshtest.Cut}}, outcome: OutcomeRolledBack, errHas: byHost},
		{name: "cut/runtime", faults: []sshtest.StepFault{{Step: host.StepRuntime, Action: sshtest.Cut}}, outcome: OutcomeRolledBack, errHas: byHost},
		{name: "cut/runtime-verify", faults: []sshtest.StepFault{{Step: host.StepRuntimeVerify, Action: sshtest.Cut}}, outcome: OutcomeRolledBack, errHas: byHost},
		{name: "cut/write-state", faults: []sshtest.StepFault{{Step: StepCommit, Action: sshtest.Cut}}, outcome: OutcomeApplied, new: true,
			warnHas: "connection lost at write-state; reconnected: the host committed the change"},
	}
}

func runRuntimeFault(t *testing.T, c runtimeFault, inject bool) []string {
	oldCfg := func(th *testHost) []byte { return th.runtimeConfig(1, 1) }
	newCfg := func(th *testHost) []byte { return th.runtimeConfig(3, 0) }
	th, p := setupRuntime(t, oldCfg, newCfg)
	oldRun := th.servers()
	old := th.snap()
	d, returned, bad := th.applyFaulted(t, p, c.faults, inject, c.outcome, c.errHas)
	badf := func(format string, a ...any) { bad = append(bad, fmt.Sprintf(format, a...)) }
	if c.warnHas != "" && !slices.ContainsFunc(d.Warnings, func(w string) bool { return strings.Contains(w, c.warnHas) }) {
		badf("warnings %q do not say %q", d.Warnings, c.warnHas)
	}
	if !th.unlockedWithin(returned.Add(2 * time.Second)) {
		badf("device lock still held 2s after apply returned")
	}
	if th.armed() {
		badf("txn.sh still armed")
	}
	run := th.servers()
	if c.new {
		if th.read("etc/haproxy.cfg") != string(newCfg(th)) || !slices.Equal(run, []string{"be_web/n1 127.0.0.1:9 weight 3 ready"}) {
			badf("host is not new: runs %q", run)
		}
		if d2 := th.plan("rev2", newCfg(th)).Devices[0]; d2.Status != StatusUnchanged {
			badf("host new but the next plan shows %s", d2.Status)
		}
	} else {
		if now := th.snap(); now != old || !slices.Equal(run, oldRun) {
			badf("host is not old: runs %q (was %q)\n%+v\nwas\n%+v\ntxn.log: %s", run, oldRun, now, old, th.read("state/txn.log"))
		}
		d2 := th.plan("rev2", newCfg(th)).Devices[0]
		if d2.Status != StatusChanges || d2.ConfigDiff != p.Devices[0].ConfigDiff || d2.Change == nil ||
			fmt.Sprint(d2.Change.Ops) != fmt.Sprint(p.Devices[0].Change.Ops) {
			badf("host old but the next plan shows %s %+v", d2.Status, d2.Change)
		}
	}
	return bad
}

func TestRuntimeFaultMatrix(t *testing.T) {
	runRows(t, runtimeFaults(), func(c runtimeFault) string { return c.name }, runRuntimeFault, true)
}

// Without injection every case must say that no fault fired and end
// otherwise than it expects: the faults, not luck, make the outcomes.
func TestRuntimeFaultMatrixWithoutInjection(t *testing.T) {
	runRows(t, runtimeFaults(), func(c runtimeFault) string { return c.name }, runRuntimeFault, false)
}

// runRows runs each row of a fault matrix as a parallel subtest: with
// injection, every problem run reports is an error; without, run must
// report "no fault fired" first and a wrong outcome after it.
func runRows[C any](t *testing.T, rows []C, name func(C) string, run func(*testing.T, C, bool) []string, inject bool) {
	for _, c := range rows {
		t.Run(name(c), func(t *testing.T) {
			t.Parallel()
			bad := run(t, c, inject)
			if inject {
				for _, b := range bad {
					t.Error(b)
				}
			} else if len(bad) < 2 || bad[0] != "no fault fired" {
				t.Errorf("without injection the case reports %q, want \"no fault fired\" and a wrong outcome", bad)
			}
		})
	}
}

// firedWrong says how the faults that fired differ from those injected
// ("no fault fired" when none did), or "".
// applyFaulted applies p to th with faults armed on its SSH server
// (acting when inject, else only recorded where they would fire), clears
// them, and checks what every runtime fault row checks: exactly faults
// fired, the device's outcome is outcome and its error says errHas (""
// for any). It returns the device's result, when Apply returned, and what
// was wrong.
func (th *testHost) applyFaulted(t *testing.T, p *Plan, faults []sshtest.StepFault, inject bool, outcome Outcome, errHas string) (DeviceResult, time.Time, []string) {
	t.Helper()
	th.srv.SetInjection(inject)
	th.srv.Inject(faults...)
	r, err := Apply(context.Background(), p, th.dial, runtimeOpts())
	returned := time.Now()
	if err != nil {
		t.Fatal(err)
	}
	fired := th.srv.Fired()
	th.srv.Inject()
	th.srv.SetInjection(true)
	var bad []string
	if w := firedWrong(faults, fired); w != "" {
		bad = append(bad, w)
	}
	d := r.Devices[0]
	t.Logf("%s: %v (steps %q, warnings %q)", d.Outcome, d.Err, d.Steps, d.Warnings)
	if d.Outcome != outcome {
		bad = append(bad, fmt.Sprintf("outcome %s (%v), want %s", d.Outcome, d.Err, outcome))
	}
	if !strings.Contains(fmt.Sprint(d.Err), errHas) {
		bad = append(bad, fmt.Sprintf("error %q does not say %q", fmt.Sprint(d.Err), errHas))
	}
	return d, returned, bad
}

func firedWrong(injected, fired []sshtest.StepFault) string {
	var want, got []string
	for _, f := range injected {
		want = append(want, f.String())
	}
	for _, f := range fired {
		got = append(got, f.String())
	}
	switch {
	case len(got) == 0:
		return "no fault fired"
	case !slices.Equal(got, want):
		return fmt.Sprintf("fired %q, want %q", got, want)
	}
	return ""
}

// faultFilesNew is what the fault matrix's auxiliary files hold at rev2.
const faultFilesNew = "rev2 be-web\nsecret rev2\n"

// faultFiles are the matrix's auxiliary files: a map whose content the
// plan holds and a file by reference, both changed from rev1 to rev2.
func faultFiles(th *testHost) (func(rev string) []compiler.AuxFile, FileSource) {
	dir := filepath.Join(th.dev.StateDir, "files")
	src := sourceFunc(func(kind, ref string) ([]byte, error) {
		return []byte("secret " + strings.TrimPrefix(ref, "site-") + "\n"), nil
	})
	return func(rev string) []compiler.AuxFile {
		return []compiler.AuxFile{
			{Path: filepath.Join(dir, "hosts.map"), Mode: 0o644, Kind: "map", Data: []byte(rev + " be-web\n")},
			{Path: filepath.Join(dir, "site.pem"), Mode: 0o600, Kind: compiler.AuxCert, Ref: "site-" + rev},
		}
	}, src
}
