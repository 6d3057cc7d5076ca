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
func TestServerStateDropsRuntimeValues(t *testing.T) {
	dir := t.TempDir()
	h := Host{StateDir: dir, Config: filepath.Join(dir, "haproxy.cfg")}
	stateCfg := "    server-state-file " + h.ServerStatePath() + "\n"
	cfg := func() string {
		c := rtConfig(dir, 10, "")
		c = strings.Replace(c, "level admin\n", "level admin\n"+stateCfg, 1)
		return strings.Replace(c, "defaults\n", "defaults\n    load-server-state-from-file global\n", 1)
	}
	startHAProxy(t, dir, cfg())
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
	if got := cli("get weight be_web/n1"); !strings.HasPrefix(got, "11 ") {
		t.Fatalf("runtime weight not set: %q", got)
	}
	sh(saveServerStateCmd(h))
	dump, err := os.ReadFile(h.ServerStatePath())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(dump), " be_web ") {
		t.Fatalf("no server line in the dump:\n%s", dump)
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
	}
}
