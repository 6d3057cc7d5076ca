package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"lbc/internal/testkit/lab"
	"lbc/reconcile/host"
)

// TestKillControllerAtEveryStep SIGKILLs a real `lbc apply` process while
// its transaction stands at each step on a lab device under traffic. The
// step comes from the host's own step log (lab.Options.StepLog): the host
// is held at the step's marker (or, for the lock, before flock runs), the
// controller is killed, then the host is let go. Every time: the host ends
// old (killed before the change script reached it: lock, stale-check) or new (the host had the whole script, which
// runs to its end without the controller, and commits), never a mix; the
// lock is free within 2 s of the host going on; no request through the
// VIP fails; the next plan is exact (the same change again, or nothing).
// Then the same in the rollback: swap fails on the host (lab FailAt) and
// the controller is killed at rollback, and at rollback-verify: the host
// finishes the rollback alone and ends old.
func TestKillControllerAtEveryStep(t *testing.T) {
	g, specs := labSpecTree(t, lab.Options{Devices: 1, Nodes: 2, StepLog: true})
	l, tmp := g.l, g.tmp
	dev := &l.Devices[0]
	t.Cleanup(func() { dev.Resume() })
	// Two specs that differ in every step's work: B adds VIP 2 and
	// changes the weights, A removes VIP 2 again. Traffic goes to VIP 1,
	// which both keep.
	write := func(b bool) {
		t.Helper()
		var s strings.Builder
		s.WriteString("package spec\n\nbalancers: web: {\n\ttenant: \"kill\"\n\tprotocol: \"http\"\n")
		fmt.Fprintf(&s, "\tvips: [{address: %q, port: 80}", l.VIP(1))
		w := 1
		if b {
			fmt.Fprintf(&s, ", {address: %q, port: 80}", l.VIP(2))
			w = 3
		}
		s.WriteString("]\n\tnodes: [\n")
		for i, n := range l.Nodes {
			fmt.Fprintf(&s, "\t\t{address: %q, port: %d, weight: %d},\n", n.Address, n.Port, w+i)
		}
		s.WriteString("\t]\n\thealthMonitor: {type: \"none\"}\n}\n")
		if err := os.WriteFile(filepath.Join(specs, "balancers", "web.cue"), []byte(s.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	plan := func() lbcResult {
		t.Helper()
		return g.run(tmp, append(append([]string{"plan", "--detailed-exitcode"}, g.sshFlags()...), "specs")...)
	}
	write(false)
	g.must(0, tmp, append(append([]string{"apply", "--adopt"}, g.sshFlags()...), "specs")...)
	g.serves(1, "n1", "n2")

	lp := startLoop(l, fmt.Sprintf("http://%s/", l.VIP(1)), 10*time.Minute)
	defer lp.halt()
	begin := time.Now()
	time.Sleep(300 * time.Millisecond)

	lock := filepath.Join(dev.StateDir, "lock")
	steps := []string{host.StepLock, host.StepStaleCheck, host.StepStage, host.StepKeepLastGood, host.StepArm, host.StepAddVIPs,
		host.StepSaveServerState, host.StepSwap, host.StepReload, host.StepVerify, host.StepRemoveVIPs, host.StepCommit}
	rollbacks := map[string]bool{host.StepRollback: true, host.StepRollbackVerify: true}
	steps = append(steps, host.StepRollback, host.StepRollbackVerify)
	b := false
	for _, step := range steps {
		b = !b
		write(b)
		before := plan()
		if before.code != 2 {
			t.Fatalf("%s: plan before: want changes (exit 2)\n%s", step, before)
		}
		if err := dev.ClearSteps(); err != nil {
			t.Fatal(err)
		}
		if err := dev.PauseAt(step); err != nil {
			t.Fatal(err)
		}
		if rollbacks[step] {
			if err := dev.FailAt(host.StepSwap); err != nil {
				t.Fatal(err)
			}
		}
		killed, log := killApplyAt(t, g, dev, step)
		resumed := time.Now()
		if err := dev.Resume(); err != nil {
			t.Fatal(err)
		}
		// The lock: free within 2 s of the host going on.
		free := false
		for time.Since(resumed) < 2*time.Second {
			if exec.Command("flock", "-n", lock, "true").Run() == nil {
				free = true
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if !free {
			t.Errorf("%s: device lock still held 2s after the host went on (killed at %v)", step, killed.Format(time.StampMilli))
		}
		freeAfter := time.Since(resumed)
		if txn, _ := os.ReadFile(filepath.Join(dev.StateDir, "txn.sh")); len(txn) > 0 {
			t.Errorf("%s: txn.sh still armed", step)
		}
		after := plan()
		t.Logf("killed at %s (host log %q); lock free %v after the host went on; next plan exit %d",
			step, log, freeAfter.Round(time.Millisecond), after.code)
		switch {
		case step == host.StepLock || step == host.StepStaleCheck || rollbacks[step]:
			// Killed before the change script was sent, or in the
			// rollback (which the host finishes alone): old, and the
			// next plan is the same change.
			if after.code != 2 || after.stdout != before.stdout {
				t.Errorf("%s: host should be old and the next plan the same change:\nbefore:\n%s\nafter:\n%s", step, before, after)
			}
			g.must(0, tmp, append(append([]string{"apply"}, g.sshFlags()...), "specs")...)
		default:
			// The host had the whole script: it committed.
			if after.code != 0 {
				t.Errorf("%s: host should be new, the next plan shows changes:\n%s", step, after)
			}
		}
		if p := plan(); p.code != 0 {
			t.Fatalf("%s: not converged:\n%s", step, p)
		}
		want := []string{"n1", "n2"}
		if b {
			g.serves(2, want...)
		} else {
			g.silent(2)
		}
		g.serves(1, want...)
	}

	time.Sleep(300 * time.Millisecond)
	lp.halt()
	reqs := lp.since(begin)
	failed := 0
	for _, r := range reqs {
		if r.err != nil {
			failed++
			if failed <= 5 {
				t.Errorf("request at %s failed: %v", r.at.Format(time.StampMilli), r.err)
			}
		}
	}
	t.Logf("%d requests through the VIP during %d kills, %d failed", len(reqs), len(steps), failed)
	if _, err := os.Stat(filepath.Join(dev.Dir, "steps.fail")); err == nil {
		t.Error("the injected mv failure never fired")
	}
	if len(reqs) < 100 {
		t.Errorf("only %d requests: the traffic loop did not run", len(reqs))
	}
}

// killApplyAt starts `lbc apply`, waits until the device's step log shows
// the host at step (held there by PauseAt), SIGKILLs the process and
// waits for it. It returns when it killed and the host's step log then.
func killApplyAt(t *testing.T, g *gitopsEnv, dev *lab.Device, step string) (time.Time, []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, g.lbc, append(append([]string{"apply"}, g.sshFlags()...), "specs")...)
	cmd.Dir = g.tmp
	cmd.Env = append(os.Environ(), "NO_COLOR=1", "SSH_AUTH_SOCK=")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	log, err := dev.WaitStep(step, time.Minute)
	if err != nil {
		cmd.Process.Kill()
		<-done
		t.Fatalf("%v\nlbc apply:\n%s", err, out.String())
	}
	killed := time.Now()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill lbc apply: %v", err)
	}
	err = <-done
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("lbc apply at %s: %v, want killed by SIGKILL (it ended first?)\n%s", step, err, out.String())
	}
	return killed, log
}
