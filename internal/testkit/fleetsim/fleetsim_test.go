package fleetsim

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"lbc/internal/cli"
)

// lbc runs the lbc command line in process against the fleet's specs.
func lbc(t *testing.T, f *Fleet, args ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	args = append(args, "--known-hosts", f.KnownHosts, "--ssh-key", f.KeyFile, filepath.Join(f.Dir, "specs"))
	code := cli.Main(args, &out, &out)
	return code, out.String()
}

// TestFleet: lbc applies to simulated hosts as to real ones (every host
// gets its config, state.json and VIP; a second apply finds nothing to do;
// a weight change reaches every host and its stand-in HAProxy "runs" the
// new config), and the simulator never adds an address to this machine.
func TestFleet(t *testing.T) {
	if _, err := os.Stat("/usr/bin/flock"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("flock (util-linux) is missing")
		}
		t.Skip("flock (util-linux) is missing")
	}
	f, err := Start(t.TempDir(), 12)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.WriteSpecs(filepath.Join(f.Dir, "specs"), 1); err != nil {
		t.Fatal(err)
	}
	if code, out := lbc(t, f, "apply"); code != 0 || !strings.Contains(out, "12 applied") {
		t.Fatalf("first apply: exit %d\n%s", code, out)
	}
	if code, out := lbc(t, f, "apply"); code != 0 || !strings.Contains(out, "nothing to apply") {
		t.Fatalf("second apply: exit %d\n%s", code, out)
	}
	if err := os.WriteFile(filepath.Join(f.Dir, "specs", "balancers", "sim.cue"), []byte(f.BalancersCUE(7)), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out := lbc(t, f, "plan", "--detailed-exitcode"); code != 2 || !strings.Contains(out, "12 to change") {
		t.Fatalf("plan of a weight change: exit %d\n%s", code, out)
	}
	// --reload: the simulated hosts' stats socket is a stand-in that
	// answers show info and show servers state only, not the runtime
	// operations a weight change is otherwise applied with.
	if code, out := lbc(t, f, "apply", "--json", "--reload"); code != 0 || strings.Count(out, `"outcome":"applied"`) != 12 {
		t.Fatalf("apply of a weight change: exit %d\n%s", code, out)
	}
	for i, h := range f.Hosts {
		cfg, err := os.ReadFile(filepath.Join(h.Dir, "haproxy.cfg"))
		if err != nil || !strings.Contains(string(cfg), " weight 7 check") {
			t.Errorf("%s: haproxy.cfg without the new weight (%v)", h.Name, err)
		}
		info, err := os.ReadFile(filepath.Join(h.Dir, "state", "haproxy.sock.info"))
		if err != nil || !strings.Contains(string(cfg), "description "+strings.TrimPrefix(strings.SplitN(string(info), "\n", 3)[1], "description: ")) {
			t.Errorf("%s: the stand-in does not run the new config: %q (%v)", h.Name, info, err)
		}
		addrs, err := os.ReadFile(filepath.Join(h.Dir, "addrs"))
		if want := "198.18.0." + strings.TrimLeft(h.Name[len("sim-"):], "0") + " 32 sim0\n"; err != nil || string(addrs) != want {
			t.Errorf("host %d: addresses %q, want %q (%v)", i, addrs, want, err)
		}
	}
	if code, out := lbc(t, f, "status"); code != 0 || !strings.Contains(out, "12 in-sync") {
		t.Fatalf("status: exit %d\n%s", code, out)
	}
	if st := f.Stats(); st.TotalConns == 0 || st.Commands == 0 {
		t.Errorf("stats %+v: no connection counted", st)
	}
}

// startFleet starts n simulated hosts, closed at the end of the test, and
// writes their specs (one balancer a host, weight 1).
func startFleet(t *testing.T, n int) *Fleet {
	t.Helper()
	f, err := Start(t.TempDir(), n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	if err := f.WriteSpecs(filepath.Join(f.Dir, "specs"), 1); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestOneConnectionPerDevice: lbc apply DIR connects to each device once,
// from its read to its transaction, on fleets below and above 200 devices
// (the size above which it used to plan on one connection and apply on
// another), and the SSH connections open at once stay within a few times
// --parallelism, not one a device (below 200 it used to keep every
// device's connection open until the end). Checked for a first apply
// (every device changes), a weight change and, on the small fleet, an
// apply with nothing to change.
func TestOneConnectionPerDevice(t *testing.T) {
	for _, n := range []int{12, 210} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			if testing.Short() && n > 12 {
				t.Skip("applies to 210 simulated hosts")
			}
			par := 2 // below n/2 on the small fleet: one connection a device kept open would show
			if n > 12 {
				par = 8
			}
			f := startFleet(t, n)
			check := func(what string, args ...string) {
				t.Helper()
				f.Dials()
				f.ResetPeak()
				code, out := lbc(t, f, append([]string{"apply", "--parallelism", strconv.Itoa(par)}, args...)...)
				st, dials := f.ResetPeak(), f.Dials()
				if code != 0 {
					t.Fatalf("%s: exit %d\n%.2000s", what, code, out)
				}
				checkOneDial(t, what, f, dials)
				t.Logf("%s, %d hosts, --parallelism %d: %d connections in all, at most %d open at once", what, n, par, st.TotalConns, st.PeakConnections)
				if st.PeakConnections > 2*par {
					t.Errorf("%s: %d connections open at once, want at most %d (2 × --parallelism)", what, st.PeakConnections, 2*par)
				}
			}
			check("first apply")
			if err := os.WriteFile(filepath.Join(f.Dir, "specs", "balancers", "sim.cue"), []byte(f.BalancersCUE(3)), 0o644); err != nil {
				t.Fatal(err)
			}
			// --reload: the stand-in stats socket carries no runtime
			// operation (see TestFleet).
			check("weight change", "--reload")
			if n <= 12 {
				check("nothing to change")
			}
		})
	}
}

// checkOneDial fails the test for each host of f that dials (Fleet.Dials)
// does not count exactly one connection for.
func checkOneDial(t *testing.T, what string, f *Fleet, dials map[string]int) {
	t.Helper()
	bad := 0
	for _, h := range f.Hosts {
		if dials[h.Name] != 1 {
			if bad++; bad <= 5 {
				t.Errorf("%s: %s: %d connections, want 1", what, h.Name, dials[h.Name])
			}
		}
	}
	if bad > 5 {
		t.Errorf("%s: %d hosts in all without exactly one connection", what, bad)
	}
}

// syncBuffer is a bytes.Buffer that lbc may write while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestWatchApplyConnectionsBounded: lbc watch --apply on a fleet larger
// than what lbc watch keeps a connection a device for (200) keeps the SSH
// connections open at once within a few times --parallelism, as lbc apply
// does, not one a device for the whole watch, and connects to each device
// once for its plan and its transaction (it used to plan on one
// connection and apply on another).
func TestWatchApplyConnectionsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("applies to 210 simulated hosts")
	}
	const n, par = 210, 8
	f := startFleet(t, n)
	var out syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- cli.Main([]string{"watch", "--apply", "--parallelism", strconv.Itoa(par),
			"--known-hosts", f.KnownHosts, "--ssh-key", f.KeyFile, filepath.Join(f.Dir, "specs")}, &out, &out)
	}()
	// lbc watch applies its first good compile, then waits for edits.
	want := fmt.Sprintf("%d applied", n)
	deadline := time.Now().Add(10 * time.Minute)
	for !strings.Contains(out.String(), want) && time.Now().Before(deadline) {
		select {
		case code := <-done:
			t.Fatalf("watch ended: exit %d\n%.2000s", code, out.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	// SIGTERM stops the watch (lbc has been handling it since it started).
	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("watch did not stop within a minute of SIGTERM")
	}
	if !strings.Contains(out.String(), want) {
		t.Fatalf("no %q within 10 minutes:\n%.3000s", want, out.String())
	}
	st, dials := f.ResetPeak(), f.Dials()
	t.Logf("watch --apply, %d hosts, --parallelism %d: %d connections in all, at most %d open at once", n, par, st.TotalConns, st.PeakConnections)
	checkOneDial(t, "watch --apply", f, dials)
	if st.PeakConnections > 2*par {
		t.Errorf("%d connections open at once, want at most %d (2 × --parallelism)", st.PeakConnections, 2*par)
	}
}
