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
	"syscall"
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

// A busy lock is reported as locked, with its owner, also when the host
// sends flock's exit status a while after the end of its output (the
// controller once closed the session at that end, lost the status and
// reported a lost connection).
func TestBusyLockWithLateExitStatus(t *testing.T) {
	th := newTestHostWith(t, "lb-a1", sshtest.Options{LateExit: 300 * time.Millisecond})
	p := th.plan("rev1", testConfig(18080, 10), "203.0.113.10")
	f, err := os.OpenFile(filepath.Join(th.dev.StateDir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	th.write("state/lock.owner", "carol@ctl pid 3\n", 0o644)
	r, err := Apply(context.Background(), p, th.dial, applyOpts("test"))
	if err != nil {
		t.Fatal(err)
	}
	if d := r.Devices[0]; d.Outcome != OutcomeFailedBeforeChange || !errors.Is(d.Err, ErrLocked) ||
		!strings.Contains(d.Err.Error(), "device lb-a1 is locked by carol@ctl pid 3") {
		t.Errorf("apply: %s %v, want locked by carol@ctl pid 3", d.Outcome, d.Err)
	}
}

func TestConcurrentApplyLocked(t *testing.T) {
	th := newTestHost(t, "lb-a1")
	p := th.plan("rev1", testConfig(18080, 10), "203.0.113.10")
	inReload := make(chan struct{})
	release := make(chan struct{})
	// The first apply's host waits at its reload until released.
	th.srv.Inject(sshtest.StepFault{Step: StepReload, Action: sshtest.Pause, Then: func() { close(inReload); <-release }})
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

func TestMaxFailuresSkipsTheRest(t *testing.T) {
	th := newTestHost(t, "lb-a1")
	pa := th.plan("rev1", testConfig(18080, 10))
	th.init("lb-b1") // second device on the same server, own dir
	pb := th.plan("rev1", testConfig(18080, 10))
	p := &Plan{Format: PlanFormat, Revision: "rev1", Devices: []DevicePlan{pa.Devices[0], pb.Devices[0]}}
	// The swap step fails (after the script has staged and armed).
	th.failStep(StepSwap)
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
		opts := applyOpts("test")
		opts.Adopt = true // a hand-written config
		r, err := Apply(context.Background(), p, th.dial, opts)
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
