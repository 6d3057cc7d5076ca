package host

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestVerifyParsers(t *testing.T) {
	f, err := readConfig([]byte("global\n    description lbc:0123\nfrontend a\n    bind 203.0.113.10:80\n    bind ipv6@[2001:db8::1]:443 ssl\n"))
	if binds := f.binds; err != nil || len(binds) != 2 || binds[0].String() != "203.0.113.10:80" || binds[1].String() != "[2001:db8::1]:443" {
		t.Errorf("binds %v %v", binds, err)
	}
	if f, _ := readConfig([]byte("global\n    description lbc:0123\n")); f.desc != "lbc:0123" {
		t.Errorf("description %q", f.desc)
	}
}

// fakeHostPath returns a PATH of one directory holding the programs the
// host code runs besides the stats client and ss (sleep, cat, sh), and a
// fake stats client named client (nc.openbsd or socat) and a fake ss that
// answer what the test puts in their environment. No other client is on
// that PATH, so the code must find and use that one.
func fakeHostPath(t *testing.T, client string) string {
	dir := t.TempDir()
	for _, p := range []string{"sleep", "cat", "sh"} {
		real, err := exec.LookPath(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(real, filepath.Join(dir, p)); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, client), []byte("#!/bin/sh\ncat >/dev/null\nprintf 'Name: HAProxy\\nPid: %s\\ndescription: %s\\n\\n%s\\n' \"$FAKE_PID\" \"$FAKE_DESC\" \"$FAKE_STAT\"\n"), 0o755)
	os.WriteFile(filepath.Join(dir, "ss"), []byte("#!/bin/sh\nprintf '%s\\n' \"$FAKE_SS\"\n"), 0o755)
	return dir
}

// The verify code runs on the host: it passes only when a new process runs
// the config and every bind listens, and says why not otherwise, in bash
// and in /bin/sh, with either stats client; binds are read from the
// listeners' stats rows of the same answer, or, for a config without
// option socket-stats, from ss.
func TestHAProxyVerifierOnTheHost(t *testing.T) {
	body := "frontend a\n    bind 203.0.113.10:80\nfrontend b\n    bind [2001:db8::1]:443\n"
	withStats := []byte("global\n    description lbc:00aa\n\ndefaults\n    option socket-stats\n" + body)
	withoutStats := []byte("global\n    description lbc:00aa\n\ndefaults\n    option dontlognull\n" + body)
	v := HAProxyVerifier{Timeout: 200 * time.Millisecond, Interval: 20 * time.Millisecond}
	listening := "LISTEN 0      4096   203.0.113.10:80      0.0.0.0:*\nLISTEN 0      4096   [2001:db8::1]:443    [::]:*"
	rows := "# pxname,svname,status,addr\nfe_a,sock-1,OPEN,203.0.113.10:80,\nfe_b,sock-1,OPEN,[2001:db8::1]:443,"
	cases := []struct {
		name                string
		cfg                 []byte
		pid, desc, stat, ss string
		fail                string // "" when it must pass
	}{
		{"runs", withStats, "42", "lbc:00aa", rows, "", ""},
		{"old process", withStats, "7", "lbc:00aa", rows, "", "haproxy still runs the old process (pid 7)"},
		{"no answer", withStats, "", "", "", "", "haproxy did not answer"},
		{"other config", withStats, "42", "lbc:ffff", rows, "", `haproxy runs config "lbc:ffff", not "lbc:00aa"`},
		{"no listener", withStats, "42", "lbc:00aa", "fe_a,sock-1,OPEN,203.0.113.10:80,", "", "frontend [2001:db8::1]:443 is not listening"},
		{"other port", withStats, "42", "lbc:00aa", "fe_a,sock-1,OPEN,203.0.113.10:8080,\nfe_b,sock-1,OPEN,[2001:db8::1]:443,", "", "frontend 203.0.113.10:80 is not listening"},
		{"ss: runs", withoutStats, "42", "lbc:00aa", "", listening, ""},
		{"ss: wildcard", withoutStats, "42", "lbc:00aa", "", "LISTEN 0 4096 0.0.0.0:80 0.0.0.0:*\nLISTEN 0 4096 *:443 *:*", ""},
		{"ss: not bound", withoutStats, "42", "lbc:00aa", rows, "LISTEN 0 4096 203.0.113.10:80 0.0.0.0:*", "frontend [2001:db8::1]:443 is not listening"},
	}
	for _, run := range []struct{ shell, client string }{{"bash", "socat"}, {"sh", "socat"}, {"bash", "nc.openbsd"}, {"sh", "nc.openbsd"}} {
		shell, err := exec.LookPath(run.shell)
		if err != nil {
			t.Fatalf("%s: %v", run.shell, err)
		}
		dir := fakeHostPath(t, run.client)
		for _, c := range cases {
			t.Run(run.shell+"/"+run.client+"/"+c.name, func(t *testing.T) {
				code, err := v.After(Host{StateDir: "/nonexistent"}, c.cfg)
				if err != nil {
					t.Fatal(err)
				}
				cmd := exec.Command(shell, "-c", "lbc_before=7\n"+code+"\n")
				cmd.Env = append(os.Environ(), "PATH="+dir,
					"FAKE_PID="+c.pid, "FAKE_DESC="+c.desc, "FAKE_STAT="+c.stat, "FAKE_SS="+c.ss)
				var stderr strings.Builder
				cmd.Stderr = &stderr
				err = cmd.Run()
				switch {
				case c.fail == "" && err != nil:
					t.Errorf("failed: %v: %s", err, stderr.String())
				case c.fail != "" && err == nil:
					t.Errorf("passed, want failure %q", c.fail)
				case c.fail != "" && !strings.Contains(stderr.String(), c.fail):
					t.Errorf("stderr %q, want %q", stderr.String(), c.fail)
				}
			})
		}
	}
	with, _ := readConfig(withStats)
	without, _ := readConfig(withoutStats)
	if !with.socketStats || without.socketStats {
		t.Errorf("socketStats: %v %v, want true false", with.socketStats, without.socketStats)
	}
}

// The Pid before the reload is needed only when the description does not
// change: a new description on the socket proves a new process by itself.
func TestNeedsBefore(t *testing.T) {
	v := HAProxyVerifier{}
	a := []byte("global\n    description lbc:00aa\n")
	b := []byte("global\n    description lbc:00bb\n")
	for _, c := range []struct {
		old, new []byte
		want     bool
	}{
		{a, b, false},
		{nil, b, false},
		{a, a, true},
		{a, []byte("global\n"), true},
	} {
		if got := v.NeedsBefore(c.old, c.new); got != c.want {
			t.Errorf("NeedsBefore(%q, %q) = %v, want %v", c.old, c.new, got, c.want)
		}
	}
}

// Both stats clients get HAProxy's real answers: the info query verify
// asks, a batch of set weight (an empty answer), show info with show
// servers state on one connection as runtime-verify reads it, and the
// server-state dump that save-server-state writes (the same
// bytes with either client), run by /bin/sh with only that client on the
// PATH.
func TestStatsClientsAgainstHAProxy(t *testing.T) {
	var missing []string
	for _, p := range []string{"haproxy", "socat", "nc.openbsd"} {
		if _, err := exec.LookPath(p); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v not installed (CI set)", missing)
		}
		t.Skipf("%v not installed", missing)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "haproxy.cfg")
	h := Host{StateDir: dir, Config: cfg}
	os.WriteFile(cfg, []byte("global\n    stats socket "+h.SocketPath()+" mode 600 level admin\n    description lbc:5eed\n\n"+
		"defaults\n    mode http\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\n\n"+
		"backend be_web\n    server n1 127.0.0.1:9 weight 7\n    server n2 127.0.0.1:10 weight 3\n"), 0o644)
	// save-server-state reads the staged file: the same one here.
	if err := os.Symlink(cfg, staged(cfg)); err != nil {
		t.Fatal(err)
	}
	hap := exec.Command("haproxy", "-db", "-f", cfg)
	if err := hap.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hap.Process.Kill(); hap.Wait() })
	for i := 0; i < 200; i++ { // up to 2 s for the socket
		if _, err := os.Stat(h.SocketPath()); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	dumps := map[string]string{}
	for _, client := range []string{"socat", "nc.openbsd"} {
		path := t.TempDir()
		for _, p := range []string{client, "cat", "awk"} {
			real, _ := exec.LookPath(p)
			if err := os.Symlink(real, filepath.Join(path, p)); err != nil {
				t.Fatal(err)
			}
		}
		run := func(code string) string {
			cmd := exec.Command("/bin/sh", "-c", code)
			cmd.Env = append(os.Environ(), "PATH="+path)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v: %s", client, err, out)
			}
			return string(out)
		}
		info := run(fmt.Sprintf(infoFunc, statsCmd(h, infoQuery, "")) + "lbc_info_get; printf 'pid=%s desc=%s\\n' \"$lbc_pid\" \"$lbc_desc\"\n")
		if want := fmt.Sprintf("pid=%d desc=lbc:5eed\n", hap.Process.Pid); info != want {
			t.Errorf("%s: info %q, want %q", client, info, want)
		}
		// A batch of commands that answer nothing, then show info with
		// show servers state on one connection (runtime-verify).
		out := run(cliFunc + rtFunc + rtCall(h, batch([]RuntimeCmd{{Line: "set weight be_web/n1 7"}, {Line: "set weight be_web/n2 3"}})[0]) +
			" && echo batch-ok\n" + pidAnswersCmd(h, []string{ServersStateQuery}, false))
		rest, ok := strings.CutPrefix(out, "batch-ok\n")
		rb, err := ParseReadBack([]byte(rest), 1)
		if !ok || err != nil || rb.Pid != hap.Process.Pid || !strings.Contains(rb.Answers[0], " be_web 2 n2 127.0.0.1 ") {
			t.Errorf("%s: batch and read back: %v\n%s", client, err, out)
		}
		run(saveServerStateCmd(h))
		b, err := os.ReadFile(h.ServerStatePath())
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(b), "1\n") || !strings.Contains(string(b), " be_web ") || !strings.Contains(string(b), " n2 ") {
			t.Errorf("%s: server-state dump:\n%s", client, b)
		}
		// Field 10 of a server's line counts the seconds since its
		// last change: the two dumps may fall in different seconds.
		lines := strings.Split(string(b), "\n")
		for i, l := range lines {
			if f := strings.Fields(l); len(f) > 10 && !strings.HasPrefix(l, "#") {
				f[9] = "-"
				lines[i] = strings.Join(f, " ")
			}
		}
		dumps[client] = strings.Join(lines, "\n")
		os.Remove(h.ServerStatePath())
	}
	if dumps["socat"] != dumps["nc.openbsd"] {
		t.Errorf("server-state dumps differ:\nsocat:\n%s\nnc.openbsd:\n%s", dumps["socat"], dumps["nc.openbsd"])
	}
}
