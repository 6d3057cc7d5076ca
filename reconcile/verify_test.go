package reconcile

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestVerifyParsers(t *testing.T) {
	binds, err := configBinds([]byte("global\n    description lbc:0123\nfrontend a\n    bind 203.0.113.10:80\n    bind ipv6@[2001:db8::1]:443 ssl\n"))
	if err != nil || len(binds) != 2 || binds[0].String() != "203.0.113.10:80" || binds[1].String() != "[2001:db8::1]:443" {
		t.Errorf("binds %v %v", binds, err)
	}
	if d := configDescription([]byte("global\n    description lbc:0123\n")); d != "lbc:0123" {
		t.Errorf("description %q", d)
	}
}

// The verify code runs on the host: it passes only when a new process runs
// the config and every bind listens, and says why not otherwise, in bash
// and in /bin/sh; binds are read from the listeners' stats rows of the same
// answer, or, for a config without option socket-stats, from ss.
func TestHAProxyVerifierOnTheHost(t *testing.T) {
	dir := t.TempDir()
	// Fake socat and ss answer what the test puts in their environment.
	os.WriteFile(filepath.Join(dir, "socat"), []byte("#!/bin/sh\ncat >/dev/null\nprintf 'Name: HAProxy\\nPid: %s\\ndescription: %s\\n\\n%s\\n' \"$FAKE_PID\" \"$FAKE_DESC\" \"$FAKE_STAT\"\n"), 0o755)
	os.WriteFile(filepath.Join(dir, "ss"), []byte("#!/bin/sh\nprintf '%s\\n' \"$FAKE_SS\"\n"), 0o755)
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
	for _, shell := range []string{"bash", "sh"} {
		if _, err := exec.LookPath(shell); err != nil {
			t.Fatalf("%s: %v", shell, err)
		}
		for _, c := range cases {
			t.Run(shell+"/"+c.name, func(t *testing.T) {
				code, err := v.After(Host{StateDir: "/nonexistent"}, c.cfg)
				if err != nil {
					t.Fatal(err)
				}
				cmd := exec.Command(shell, "-c", "lbc_before=7\n"+code+"\n")
				cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"),
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
	if !socketStats(withStats) || socketStats(withoutStats) {
		t.Errorf("socketStats: %v %v, want true false", socketStats(withStats), socketStats(withoutStats))
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
