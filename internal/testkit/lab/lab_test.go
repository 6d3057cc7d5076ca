package lab

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAddressing(t *testing.T) {
	for _, c := range []struct {
		index            int
		prefix, vips, gw string
	}{
		{1, "198.18.2.0/23", "198.18.3.0/24", "198.18.2.1"},
		{7, "198.18.14.0/23", "198.18.15.0/24", "198.18.14.1"},
		{128, "198.19.0.0/23", "198.19.1.0/24", "198.19.0.1"},
		{255, "198.19.254.0/23", "198.19.255.0/24", "198.19.254.1"},
	} {
		p, v, gw := addressing(c.index)
		if p.String() != c.prefix || v.String() != c.vips || gw.String() != c.gw {
			t.Errorf("addressing(%d) = %s %s %s, want %s %s %s", c.index, p, v, gw, c.prefix, c.vips, c.gw)
		}
	}
}

func TestOptionsRejected(t *testing.T) {
	for _, o := range []Options{
		{Name: "toolong", Devices: 1},
		{Name: "Abc", Devices: 1},
		{Name: "a-b", Devices: 1},
		{Name: "ab", Devices: 0},
		{Name: "ab", Devices: 90},
		{Name: "ab", Devices: 1, Index: 256},
		{Name: "ab", Devices: 1, Zones: []string{"a b"}},
	} {
		if _, err := Start(context.Background(), o); err == nil {
			t.Errorf("Start(%+v) succeeded", o)
		}
	}
}

func TestLab(t *testing.T) {
	l := ForTest(t, Options{Devices: 2, Nodes: 2, Keepalived: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// The system ssh client with the lab's key and known_hosts, host key
	// checking on: proves the host keys and the authorized key.
	for _, d := range l.Devices {
		cmd := exec.CommandContext(ctx, "ssh", "-F", "/dev/null",
			"-o", "UserKnownHostsFile="+l.KnownHosts, "-o", "StrictHostKeyChecking=yes",
			"-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
			"-i", l.KeyFile, "root@"+d.Address.String(), "haproxy -v; ip -o addr show dev eth0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("ssh %s: %v\n%s", d.Name, err, out)
		}
		if !strings.Contains(string(out), "HAProxy version 2.") || !strings.Contains(string(out), d.Address.String()+"/23") {
			t.Errorf("ssh %s: unexpected output:\n%s", d.Name, out)
		}
	}

	checkSkipsBashrc(ctx, t, l)

	// A host key that is not the device's is refused.
	other := filepath.Join(t.TempDir(), "known_hosts")
	kh, _ := os.ReadFile(l.KnownHosts)
	lines := strings.Split(strings.TrimSpace(string(kh)), "\n")
	// device 1's address with device 2's key
	swapped := strings.Fields(lines[0])[0] + " " + strings.Join(strings.Fields(lines[1])[1:], " ") + "\n"
	os.WriteFile(other, []byte(swapped), 0o644)
	out, err := exec.CommandContext(ctx, "ssh", "-F", "/dev/null",
		"-o", "UserKnownHostsFile="+other, "-o", "StrictHostKeyChecking=yes",
		"-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
		"-i", l.KeyFile, "root@"+l.Devices[0].Address.String(), "true").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "HOST IDENTIFICATION HAS CHANGED") {
		t.Errorf("ssh with a wrong host key: err %v, output:\n%s", err, out)
	}

	for _, n := range l.Nodes {
		body, err := l.Get(ctx, n.URL())
		if err != nil || body != n.Name {
			t.Errorf("GET %s = %q, %v; want %q", n.URL(), body, err, n.Name)
		}
	}

	// The device's haproxy runs master-worker with the config the spec
	// names, and the reload and check commands work as written.
	d := l.Devices[0]
	if out, err := l.Exec(ctx, 1, "sh", "-c", d.Check+" "+d.Config); err != nil {
		t.Errorf("check: %v\n%s", err, out)
	}
	cfg, err := l.ReadFile(1, "haproxy.cfg")
	if err != nil {
		t.Fatal(err)
	}
	vip := l.VIP(1)
	cfg = append(cfg, []byte("\nfrontend f1\n\tbind "+vip.String()+":80\n\thttp-request return status 200 content-type text/plain string via-d1\n")...)
	if err := os.WriteFile(d.Config, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := l.Exec(ctx, 1, "ip", "addr", "replace", vip.String()+"/24", "dev", "eth0"); err != nil {
		t.Fatalf("add VIP: %v\n%s", err, out)
	}
	if out, err := l.Exec(ctx, 1, "sh", "-c", d.Reload); err != nil {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	url := "http://" + vip.String() + "/"
	if err := poll(ctx, 5*time.Second, func() error {
		_, err := l.Get(ctx, url)
		return err
	}); err != nil {
		t.Fatalf("VIP after reload: %v", err)
	}
	if body, _ := l.Get(ctx, url); body != "via-d1" {
		t.Errorf("GET %s = %q, want via-d1", url, body)
	}

	// Stop and start haproxy: the VIP goes away and comes back.
	if err := l.StopHAProxy(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Get(ctx, url); err == nil {
		t.Errorf("GET %s succeeded with haproxy stopped", url)
	}
	if err := l.StartHAProxy(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if body, err := l.Get(ctx, url); err != nil || body != "via-d1" {
		t.Errorf("GET %s after restart = %q, %v", url, body, err)
	}

	// An SSH session held open is cut by KillSSHSessions; sshd still
	// accepts new ones.
	hold := exec.CommandContext(ctx, "ssh", "-F", "/dev/null",
		"-o", "UserKnownHostsFile="+l.KnownHosts, "-o", "StrictHostKeyChecking=yes",
		"-o", "BatchMode=yes", "-i", l.KeyFile, "root@"+d.Address.String(), "sleep 60")
	if err := hold.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- hold.Wait() }()
	if err := poll(ctx, 10*time.Second, func() error {
		if len(l.procsIn(d.NS, func(c string) bool { return strings.HasPrefix(c, "sleep 60") })) == 0 {
			return os.ErrNotExist
		}
		return nil
	}); err != nil {
		t.Fatalf("session did not start: %v", err)
	}
	if err := l.KillSSHSessions(ctx, 1); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Error("ssh session ended with success after its sshd was killed")
		}
	case <-time.After(10 * time.Second):
		t.Error("ssh session still open 10 s after KillSSHSessions")
	}
	if out, err := exec.CommandContext(ctx, "ssh", "-F", "/dev/null",
		"-o", "UserKnownHostsFile="+l.KnownHosts, "-o", "StrictHostKeyChecking=yes",
		"-o", "BatchMode=yes", "-i", l.KeyFile, "root@"+d.Address.String(), "true").CombinedOutput(); err != nil {
		t.Errorf("ssh after KillSSHSessions: %v\n%s", err, out)
	}

	// Close removes the namespaces, the bridge and the directory.
	dir := l.Dir
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	for _, ns := range append([]string{d.NS, l.Devices[1].NS}, l.Nodes[0].NS, l.Nodes[1].NS) {
		if _, err := os.Stat(filepath.Join(netnsDir, ns)); err == nil {
			t.Errorf("namespace %s still there after Close", ns)
		}
	}
	if _, err := os.Stat(dir); err == nil {
		t.Errorf("dir %s still there after Close", dir)
	}
	if out, err := exec.Command("ip", "link", "show", l.Bridge).CombinedOutput(); err == nil {
		t.Errorf("bridge %s still there after Close:\n%s", l.Bridge, out)
	}
}

// checkSkipsBashrc checks that a command run through a lab device's sshd
// by root's bash does not read ~/.bashrc (sshd_config SetEnv SHLVL=1): bash
// counts itself a nested shell (SHLVL 2), and nothing that ~/.bashrc adds
// to PATH, found by running bash here the way sshd would, is there.
func checkSkipsBashrc(ctx context.Context, t *testing.T, l *Lab) {
	t.Helper()
	passwd, _ := os.ReadFile("/etc/passwd")
	shell, home := "", ""
	for _, line := range strings.Split(string(passwd), "\n") {
		if f := strings.Split(line, ":"); len(f) == 7 && f[0] == "root" {
			home, shell = f[5], f[6]
		}
	}
	if filepath.Base(shell) != "bash" {
		t.Logf("root's shell is %q, not bash: no ~/.bashrc to skip", shell)
		return
	}
	out, err := exec.CommandContext(ctx, "ssh", "-F", "/dev/null",
		"-o", "UserKnownHostsFile="+l.KnownHosts, "-o", "StrictHostKeyChecking=yes",
		"-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
		"-i", l.KeyFile, "root@"+l.Devices[0].Address.String(), `printf '%s\n' "$SHLVL" "$PATH"`).Output()
	if err != nil {
		t.Fatalf("ssh: %v\n%s", err, out)
	}
	got := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(got) != 2 || got[0] != "2" {
		t.Fatalf("ssh: SHLVL, PATH = %q, want SHLVL 2 (bash started with SHLVL=1 skips ~/.bashrc)", got)
	}
	// What ~/.bashrc does to PATH when bash reads it (SSH_CLIENT set,
	// SHLVL unset), against the same bash with SHLVL=1.
	path := func(shlvl ...string) map[string]bool {
		env := append([]string{"HOME=" + home, "PATH=/usr/bin:/bin", "SSH_CLIENT=198.18.0.1 40000 22"}, shlvl...)
		cmd := exec.CommandContext(ctx, shell, "-c", `printf '%s' "$PATH"`)
		cmd.Env = env
		b, _ := cmd.Output()
		m := map[string]bool{}
		for _, p := range strings.Split(string(b), ":") {
			m[p] = true
		}
		return m
	}
	withRC, without := path(), path("SHLVL=1")
	var added []string
	for p := range withRC {
		if !without[p] {
			added = append(added, p)
		}
	}
	if len(added) == 0 {
		t.Logf("~/.bashrc adds nothing to PATH here: only SHLVL checked")
	}
	for _, p := range strings.Split(got[1], ":") {
		for _, a := range added {
			if p == a {
				t.Errorf("ssh: PATH %s has %s, which ~/.bashrc adds: bash read it", got[1], a)
			}
		}
	}
}
