package reconcile

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"lbc/internal/testkit/sshtest"
)

// planWith plans th's device with opts (IPCommand set), bounded by a
// deadline so that a test of a stall fails instead of hanging, and
// returns the device's plan and how long the plan took.
func planWith(t *testing.T, th *testHost, dial Dialer, opts PlanOptions) (DevicePlan, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	spec, res := th.result("rev1", testConfig(18080, 10))
	opts.IPCommand = th.ipCmd
	start := time.Now()
	p, _ := BuildPlan(ctx, spec, res, dial, opts)
	return p.Devices[0], time.Since(start)
}

// A host whose config is a symlink to /dev/zero sends without end. The
// read is cut at its size limit, at once, with or without the lock (it
// stalled at 64 MiB before without, and grew without bound under it).
func TestHostReadCappedInSize(t *testing.T) {
	th := newTestHost(t, "lb-a1")
	if err := os.Symlink("/dev/zero", filepath.Join(th.dir, "etc/haproxy.cfg")); err != nil {
		t.Fatal(err)
	}
	dial := func(ctx context.Context, ep Endpoint) (Transport, error) {
		return DialSSH(ctx, ep, SSHConfig{KnownHosts: th.srv.KnownHostsFile(), KeyFile: th.srv.KeyFile(), MaxOutput: 1 << 20})
	}
	d, took := planWith(t, th, dial, PlanOptions{})
	if d.Status != StatusError || !strings.Contains(d.Error, "output too large: stdout exceeds 1048576 bytes") || took > 10*time.Second {
		t.Errorf("plan of a /dev/zero config: %s in %s: %s", d.Status, took, d.Error)
	}
	d, took = planWith(t, th, dial, PlanOptions{Lock: &PlanLock{Owner: "test", Held: NewLocks()}, Limits: Limits{MaxRead: 1 << 20}})
	if d.Status != StatusError || !strings.Contains(d.Error, "sent more than 1048576 bytes (--max-read)") || took > 10*time.Second {
		t.Errorf("plan under the lock of a /dev/zero config: %s in %s: %s", d.Status, took, d.Error)
	}
}

// A read that never ends (the config is a FIFO nobody writes) is given up
// after the read timeout, with or without the lock, naming the host.
func TestHostReadCappedInTime(t *testing.T) {
	th := newTestHost(t, "lb-a1")
	fifo := filepath.Join(th.dir, "etc/haproxy.cfg")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	// Unblock the host's reader once the controller has given up, so that
	// the lock holder can end (it ignores SIGHUP while it holds the lock).
	unblock := func() {
		time.Sleep(3 * time.Second)
		if f, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
			f.Close()
		}
	}
	lim := Limits{ReadTimeout: time.Second}
	go unblock()
	d, took := planWith(t, th, th.dial, PlanOptions{Limits: lim})
	want := fmt.Sprintf("read %s: timed out: no complete answer within 1s (--read-timeout)", th.dev.Address)
	if d.Status != StatusError || !strings.Contains(d.Error, want) || took > 10*time.Second {
		t.Errorf("plan of a host whose read never ends: %s in %s: %s, want %q", d.Status, took, d.Error, want)
	}
	go unblock()
	d, took = planWith(t, th, th.dial, PlanOptions{Lock: &PlanLock{Owner: "test", Held: NewLocks()}, Limits: lim})
	want = fmt.Sprintf("stale-check: timed out: %s did not send its read within 1s (--read-timeout)", th.dev.Address)
	if d.Status != StatusError || !strings.Contains(d.Error, want) || took > 10*time.Second {
		t.Errorf("plan under the lock of a host whose read never ends: %s in %s: %s, want %q", d.Status, took, d.Error, want)
	}
}

// A host whose login takes longer than the lock holder's start-up wait
// fails with a timeout that names it (it was "lock holder ended without
// taking the lock" after a fixed 10 s); a longer --start-timeout lets a
// slow login through.
func TestSlowLoginLockHolder(t *testing.T) {
	th := newTestHost(t, "lb-a1")
	slow := func(d time.Duration) {
		th.setHook(func(cmd string) sshtest.Fault {
			if strings.Contains(cmd, "flock -o") {
				return sshtest.Delay(d)
			}
			return sshtest.NoFault
		})
	}
	p := th.plan("rev1", testConfig(18080, 10))
	slow(3 * time.Second)
	opts := applyOpts("test")
	opts.Limits.StartTimeout = time.Second
	r, err := Apply(context.Background(), p, th.dial, opts)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("apply lb-a1: lock: timed out: the lock holder on %s did not start within 1s (its login or shell is slow; raise --start-timeout)", th.dev.Address)
	if d := r.Devices[0]; d.Outcome != OutcomeFailedBeforeChange || !errors.Is(d.Err, ErrTimeout) || d.Err.Error() != want {
		t.Fatalf("apply to a host whose login takes 3s, start timeout 1s: %s: %v\nwant %s", d.Outcome, d.Err, want)
	}

	// 12 s: more than the 10 s the holder was given before.
	slow(12 * time.Second)
	th.waitUnlocked()
	r, err = Apply(context.Background(), p, th.dial, applyOpts("test"))
	if err != nil {
		t.Fatal(err)
	}
	if d := r.Devices[0]; d.Outcome != OutcomeApplied {
		t.Fatalf("apply to a host whose login takes 12s, default start timeout: %s: %v", d.Outcome, d.Err)
	}
}

// Before anything in the state directory is trusted (above all before the
// lock holder may run an armed txn.sh), the host checks the directory:
// a directory others may write to, a symlink, one owned by someone else,
// or a txn.sh others may write, fail the device with a clear error, and
// the txn.sh planted there does not run.
func TestUnsafeStateDirRefused(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(th *testHost, sd string)
		want  string
	}{
		{"world-writable", func(th *testHost, sd string) { os.Chmod(sd, 0o777) }, "has mode 777: others than its owner may write to it"},
		{"group-writable", func(th *testHost, sd string) { os.Chmod(sd, 0o775) }, "has mode 775: others than its owner may write to it"},
		{"txn.sh group-writable", func(th *testHost, sd string) { os.Chmod(filepath.Join(sd, "txn.sh"), 0o664) }, "txn.sh has mode 664"},
		{"symlink", func(th *testHost, sd string) {
			real := sd + ".real"
			if err := os.Rename(sd, real); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(real, sd); err != nil {
				t.Fatal(err)
			}
		}, "is a symlink or not a directory"},
		{"owned by another user", func(th *testHost, sd string) {
			if os.Getuid() != 0 {
				t.Skip("chown needs root")
			}
			if err := os.Chown(sd, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}, "is owned by uid 65534, not by uid 0 that lbc runs as"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			th := newTestHost(t, "lb-a1")
			p := th.plan("rev1", testConfig(18080, 10))
			sd := th.dev.StateDir
			ran := filepath.Join(th.dir, "txn-ran")
			th.write("state/txn.sh", "touch "+ran+"\n", 0o644)
			tc.setup(th, sd)
			// The attack: a lock session that ends (here a plan under
			// the lock, released) runs a non-empty txn.sh.
			locks := NewLocks()
			d, _ := planWith(t, th, th.dial, PlanOptions{Lock: &PlanLock{Owner: "test", Held: locks}})
			locks.Release(nil)
			if d.Status != StatusError || !strings.Contains(d.Error, "unsafe state directory: ") || !strings.Contains(d.Error, tc.want) {
				t.Errorf("plan under the lock: %s: %s\nwant %s", d.Status, d.Error, tc.want)
			}
			time.Sleep(200 * time.Millisecond) // a holder, had one started, ends at once
			if _, err := os.Stat(ran); err == nil {
				t.Fatal("the txn.sh planted in the state directory ran")
			}
			r, err := Apply(context.Background(), p, th.dial, applyOpts("test"))
			if err != nil {
				t.Fatal(err)
			}
			want := "apply lb-a1: lock: unsafe state directory: "
			if d := r.Devices[0]; d.Outcome != OutcomeFailedBeforeChange || !errors.Is(d.Err, ErrUnsafeStateDir) ||
				!strings.HasPrefix(d.Err.Error(), want) || !strings.Contains(d.Err.Error(), tc.want) {
				t.Fatalf("apply: %s: %v\nwant %s...%s", d.Outcome, d.Err, want, tc.want)
			}
			time.Sleep(200 * time.Millisecond) // a holder, had one started, ends at once
			if _, err := os.Stat(ran); err == nil {
				t.Fatal("the txn.sh planted in the state directory ran")
			}
			if th.read("etc/haproxy.cfg") != "<absent>" {
				t.Error("the config was written")
			}
		})
	}
}
