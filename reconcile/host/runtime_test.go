package host

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"lbc/reconcile/classify"
)

// rtConfig is a small config for a real HAProxy whose stats socket is in
// dir, with one dynamic backend (and no frontend: no port to find).
func rtConfig(dir string, weight int, extra string) string {
	return "global\n    stats socket " + dir + "/haproxy.sock mode 600 level admin\n" +
		"defaults\n    mode http\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n" +
		"backend be_web\n    balance roundrobin\n    default-server inter 2s fall 3 rise 2\n" +
		"    server n1 127.0.0.1:9001 weight " + strconv.Itoa(weight) + " check\n" + extra
}

// startHAProxy runs a real HAProxy on cfg (written to dir/haproxy.cfg) and
// waits, bounded, for its stats socket.
func startHAProxy(t *testing.T, dir, cfg string) {
	t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("haproxy not installed (CI set; make deps installs it)")
		}
		t.Skip("haproxy not installed")
	}
	if err := os.WriteFile(filepath.Join(dir, "haproxy.cfg"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-db", "-f", filepath.Join(dir, "haproxy.cfg"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(filepath.Join(dir, "haproxy.sock")); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("haproxy's stats socket did not appear within 5 s")
}

// runScriptSh runs a script as the lock holder would (lbc_step, $sd) and
// returns its report and stderr.
func runScriptSh(t *testing.T, s *Script, sd string) (*Report, string, bool) {
	t.Helper()
	cmd := exec.Command("sh", "-c", stepFunc+"sd="+q(sd)+"\n"+s.String())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	rep := s.NewReport()
	for _, l := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		rep.Line(l)
	}
	if err == nil {
		if err := rep.End(); err != nil {
			t.Fatal(err)
		}
	}
	return rep, stderr.String(), err == nil
}

// mustRunRuntime runs c's RuntimeScript (runScriptSh) and fails the test
// when it fails.
func mustRunRuntime(t *testing.T, c Change, sd string) *Report {
	t.Helper()
	s, err := RuntimeScript(c)
	if err != nil {
		t.Fatal(err)
	}
	rep, stderr, ok := runScriptSh(t, s, sd)
	if !ok {
		t.Fatalf("runtime script failed at %s: %s", rep.Failed, stderr)
	}
	return rep
}

func readBackServers(t *testing.T, rep *Report, step string) (int, []ServerState) {
	t.Helper()
	rb, err := ParseReadBack(rep.Output[step], 1)
	if err != nil {
		t.Fatal(err)
	}
	ss, err := ParseServersState(rb.Answers[0])
	if err != nil {
		t.Fatal(err)
	}
	return rb.Pid, ss
}

// The runtime script against a real HAProxy 2.6: the file is swapped, set
// weight and add server reach the running process (read back, same
// pid); then a command HAProxy refuses fails the step naming the command
// and HAProxy's answer, and txn.sh puts the runtime back.
func TestRuntimeScriptRealHAProxy(t *testing.T) {
	dir, err := os.MkdirTemp("", "lbcrt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	old := rtConfig(dir, 1, "")
	startHAProxy(t, dir, old)
	h := Host{StateDir: dir, Config: filepath.Join(dir, "haproxy.cfg"), Check: "haproxy -c -q -f", Reload: "false"}
	added := "    server n2 127.0.0.1:9002 weight 4 check inter 2s fall 3 rise 2\n"
	c := Change{Device: "lb", Host: h, Config: rtConfig(dir, 3, added), LiveConfig: file(old), State: []byte("{}\n")}
	rt, err := ServerRuntime([]classify.Op{
		{Kind: classify.KindWeight, Backend: "be_web", Server: "n1", From: "1", To: "3"},
		{Kind: classify.KindAdd, Backend: "be_web", Server: "n2", Args: strings.Fields("127.0.0.1:9002 weight 4 check inter 2s fall 3 rise 2")},
	})
	if err != nil {
		t.Fatal(err)
	}
	c.Runtime = rt
	rep := mustRunRuntime(t, c, dir)
	pid0, _ := readBackServers(t, rep, StepRuntimeVerify)
	if got := string(rep.Output[StepRuntime]); got != "pid "+strconv.Itoa(pid0)+"\n" {
		t.Errorf("runtime step printed %q; the worker after it is %d", got, pid0)
	}
	_, ss := readBackServers(t, rep, StepRuntimeVerify)
	want := []string{"be_web/n1 127.0.0.1:9001 weight 3 ready", "be_web/n2 127.0.0.1:9002 weight 4 ready"}
	if len(ss) != 2 || ss[0].String() != want[0] || ss[1].String() != want[1] {
		t.Errorf("read back %v, want %v", ss, want)
	}
	if b, _ := os.ReadFile(h.Config); string(b) != c.Config {
		t.Error("the new file is not in place after swap")
	}

	// Roll back: txn.sh restores the file and undoes both operations.
	rb, err := RuntimeRollbackScript(c)
	if err != nil {
		t.Fatal(err)
	}
	rep, stderr, ok := runScriptSh(t, rb, dir)
	if !ok {
		t.Fatalf("rollback failed at %s: %s", rep.Failed, stderr)
	}
	pid1, ss := readBackServers(t, rep, StepRollbackVerify)
	if pid1 != pid0 || len(ss) != 1 || ss[0].String() != "be_web/n1 127.0.0.1:9001 weight 1 ready" {
		t.Errorf("after the rollback: pid %d (was %d), servers %v", pid1, pid0, ss)
	}
	if b, _ := os.ReadFile(h.Config); string(b) != old {
		t.Error("the old file is not back after the rollback")
	}

	// A command HAProxy refuses: the step fails with its answer.
	bad := c
	bad.Runtime = &Runtime{Do: []RuntimeCmd{{Line: "set weight be_web/nosuch 3"}}, ReadBack: []string{ServersStateQuery}}
	s, err := RuntimeScript(bad)
	if err != nil {
		t.Fatal(err)
	}
	rep, stderr, ok = runScriptSh(t, s, dir)
	if ok || rep.Failed != StepRuntime || !strings.Contains(stderr, "stats socket: set weight be_web/nosuch 3: No such server.") {
		t.Errorf("a refused command: ok %v, failed at %q, stderr %q", ok, rep.Failed, stderr)
	}
}

// Nothing but lbc's own words reaches the socket: a quote, a semicolon
// (HAProxy's command separator), a newline or a $ is refused before any
// script is built.
func TestCheckRuntimeCmd(t *testing.T) {
	for _, line := range []string{"set weight be/x 1; shutdown sessions", "set weight 'x", "set  weight", "set weight $x", "set weight be/x\n1", ""} {
		if err := CheckRuntimeCmd(RuntimeCmd{Line: line}); err == nil {
			t.Errorf("%q accepted", line)
		}
	}
	if err := CheckRuntimeCmd(RuntimeCmd{Line: "set ssl cert /x.pem", Payload: "-----BEGIN X-----\n\nAB\n"}); err == nil {
		t.Error("a payload with an empty line accepted (it would end the payload early)")
	}
	if err := CheckRuntimeCmd(RuntimeCmd{Line: "add server be_web/198.51.100.1_80 [2001:db8::1]:80 weight 1", OK: []string{"", "New server registered."}}); err != nil {
		t.Error(err)
	}
	c := Change{Host: debian, Runtime: &Runtime{Do: []RuntimeCmd{{Line: "set weight be/x 1;reload"}}}}
	if _, err := RuntimeScript(c); err == nil {
		t.Error("RuntimeScript built a script with a ; in a command")
	}
}

// Commands whose success is an empty answer go in batches, joined with
// ';' (at most maxBatch bytes a line), against a real HAProxy 2.6: 60
// weights and 60 states in two connections, every value read back; then
// a batch with one command HAProxy refuses fails the step with its
// answer, and HAProxy has still run the commands after the refused one
// (so the undo, not the batch, puts the runtime back).
func TestRuntimeBatchRealHAProxy(t *testing.T) {
	dir, err := os.MkdirTemp("", "lbcrt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	var extra strings.Builder
	var ops []classify.Op
	for i := 2; i <= 61; i++ {
		n := "n" + strconv.Itoa(i)
		extra.WriteString("    server " + n + " 127.0.0.1:" + strconv.Itoa(9000+i) + " weight 1\n")
		ops = append(ops, classify.Op{Kind: classify.KindWeight, Backend: "be_web", Server: n, From: "1", To: strconv.Itoa(i)},
			classify.Op{Kind: classify.KindState, Backend: "be_web", Server: n, From: "ready", To: "maint"})
	}
	old := rtConfig(dir, 1, extra.String())
	startHAProxy(t, dir, old)
	h := Host{StateDir: dir, Config: filepath.Join(dir, "haproxy.cfg"), Check: "haproxy -c -q -f", Reload: "false"}
	rt, err := ServerRuntime(ops)
	if err != nil {
		t.Fatal(err)
	}
	if b := batch(rt.Do); len(b) != 2 || len(b[0].Line) > maxBatch || len(b[0].Line)+len(b[1].Line)+1 != len(joinLines(rt.Do)) {
		t.Fatalf("120 commands in %d batches, want 2 of at most %d bytes", len(b), maxBatch)
	}
	c := Change{Device: "lb", Host: h, Config: old, LiveConfig: file(old), State: []byte("{}\n"), Runtime: rt}
	_, ss := readBackServers(t, mustRunRuntime(t, c, dir), StepRuntimeVerify)
	if len(ss) != 61 {
		t.Fatalf("read back %d servers, want 61", len(ss))
	}
	for _, sv := range ss[1:] {
		if want := strconv.Itoa(int(sv.Addr.Port()) - 9000); sv.State != "maint" || strconv.Itoa(sv.Weight) != want {
			t.Errorf("%s: want weight %s maint", sv, want)
		}
	}

	bad := c
	bad.Runtime = &Runtime{Do: []RuntimeCmd{{Line: "set weight be_web/n2 7"}, {Line: "set weight be_web/nosuch 3"}, {Line: "set weight be_web/n3 7"}},
		ReadBack: []string{ServersStateQuery}}
	s, err := RuntimeScript(bad)
	if err != nil {
		t.Fatal(err)
	}
	rep, stderr, ok := runScriptSh(t, s, dir)
	if ok || rep.Failed != StepRuntime || !strings.Contains(stderr, "stats socket: set weight be_web/n2 7;set weight be_web/nosuch 3;set weight be_web/n3 7: ") ||
		!strings.Contains(stderr, "No such server.") {
		t.Errorf("a batch with a refused command: ok %v, failed at %q, stderr %q", ok, rep.Failed, stderr)
	}
	ss, err = ParseServersState(cli(t, dir, ServersStateQuery))
	if err != nil {
		t.Fatal(err)
	}
	if ss[1].Weight != 7 || ss[2].Server != "n3" || ss[2].Weight != 7 {
		t.Errorf("the commands around the refused one did not run: %v", ss[1:3])
	}
}

func joinLines(cs []RuntimeCmd) string {
	var l []string
	for _, c := range cs {
		l = append(l, c.Line)
	}
	return strings.Join(l, ";")
}
