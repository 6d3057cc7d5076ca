package host

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A weight or a maintenance set on the socket (a runtime apply, or a hand
// on the host) must not survive lbc's reload: the file says what runs. A
// real HAProxy starts with weight 10, is set to weight 11 and to forced
// maintenance on its socket; lbc's dump is taken; a new HAProxy starts from
// a config that says weight 10 and no maintenance (what a reload to the
// file does, with load-server-state-from-file) and must run 10, ready. Its
// health columns still cross.
//
// Server n2's address and port are set on the socket too (issue 12 item
// 6): HAProxy 2.6 would take the dumped port over the file's, so its line
// is dropped and it runs the file's address and port after the reload.
func TestServerStateDropsRuntimeValues(t *testing.T) {
	dir := t.TempDir()
	h := Host{StateDir: dir, Config: filepath.Join(dir, "haproxy.cfg")}
	stateCfg := "    server-state-file " + h.ServerStatePath() + "\n"
	cfg := func() string {
		c := rtConfig(dir, 10, "    server n2 127.0.0.1:9002 weight 1\n")
		c = strings.Replace(c, "level admin\n", "level admin\n"+stateCfg, 1)
		return strings.Replace(c, "defaults\n", "defaults\n    load-server-state-from-file global\n", 1)
	}
	startHAProxy(t, dir, cfg())
	// save-server-state reads the staged file (the one the reload loads).
	if err := os.WriteFile(staged(h.Config), []byte(cfg()), 0o644); err != nil {
		t.Fatal(err)
	}
	sh := func(code string) string {
		out, err := exec.Command("sh", "-c", code).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %s\n%s", err, out, code)
		}
		return string(out)
	}
	cli := func(cmd string) string { return sh(cliFunc + statsCmd(h, cmd, "")) }
	cli("set weight be_web/n1 11")
	cli("set server be_web/n1 state maint")
	if got := cli("set server be_web/n2 addr 127.0.0.2 port 9003"); !strings.Contains(got, "changed from") {
		t.Fatalf("set server addr: %q", got)
	}
	if got := cli("get weight be_web/n1"); !strings.HasPrefix(got, "11 ") {
		t.Fatalf("runtime weight not set: %q", got)
	}
	sh(saveServerStateCmd(h))
	dump, err := os.ReadFile(h.ServerStatePath())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(dump), " be_web 1 n1 ") || strings.Contains(string(dump), " n2 ") {
		t.Fatalf("want n1's line and not n2's in the dump:\n%s", dump)
	}

	// The old process goes; a new one starts from the file and the dump.
	sh("pkill -f '^haproxy -db -f " + h.Config + "$' || :")
	os.Remove(h.SocketPath())
	startHAProxy(t, dir, cfg())
	if got := cli("get weight be_web/n1"); !strings.HasPrefix(got, "10 ") {
		t.Errorf("after the reload: weight %q, want 10 as the file says (dump:\n%s)", got, dump)
	}
	for _, l := range strings.Split(cli("show servers state be_web"), "\n") {
		if f := strings.Fields(l); len(f) > 9 && f[3] == "n1" && f[6] != "0" {
			t.Errorf("after the reload: admin state %s, want 0 (ready as the file says): %s", f[6], l)
		}
		if f := strings.Fields(l); len(f) > 18 && f[3] == "n2" && (f[4] != "127.0.0.1" || f[18] != "9002") {
			t.Errorf("after the reload: n2 runs %s port %s, want 127.0.0.1 port 9002 as the file says (dump:\n%s)", f[4], f[18], dump)
		}
	}
}
