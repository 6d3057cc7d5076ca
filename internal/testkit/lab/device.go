package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startTimeout bounds each wait for a daemon to come up.
const startTimeout = 15 * time.Second

func (l *Lab) device(i int) (*Device, error) {
	if i < 1 || i > len(l.Devices) {
		return nil, fmt.Errorf("lab %s: no device %d (have 1..%d)", l.Name, i, len(l.Devices))
	}
	return &l.Devices[i-1], nil
}

func (l *Lab) startDevice(ctx context.Context, i int) error {
	d := &l.Devices[i-1]
	if err := l.makeNamespace(ctx, d.NS, fmt.Sprintf("%s-d%d", l.Bridge, i), d.Address); err != nil {
		return fmt.Errorf("lab %s: namespace: %w", d.Name, err)
	}
	if err := l.startSSHD(ctx, d); err != nil {
		return fmt.Errorf("lab %s: sshd: %w", d.Name, err)
	}
	if err := writeKeepalivedScript(d); err != nil {
		return fmt.Errorf("lab %s: %w", d.Name, err)
	}
	if err := os.WriteFile(d.Config, []byte(initialConfig(d)), 0o644); err != nil {
		return fmt.Errorf("lab %s: %w", d.Name, err)
	}
	// A server-state file holding only its version line: haproxy warns
	// about a missing or empty one.
	if err := os.WriteFile(filepath.Join(d.StateDir, "server-state"), []byte("1\n"), 0o644); err != nil {
		return fmt.Errorf("lab %s: %w", d.Name, err)
	}
	if err := l.startHAProxy(ctx, d); err != nil {
		return fmt.Errorf("lab %s: haproxy: %w", d.Name, err)
	}
	return nil
}

// sshdConfig keeps OpenSSH's defaults where lbc must cope with them on a
// real host: MaxSessions 10, MaxStartups 10:30:100.
//
// SetEnv SHLVL=1: the lab's devices log in as the controller machine's own
// root, whose shell is bash, and bash started by sshd for a command reads
// ~/.bashrc when its SHLVL says it is a top-level shell (SHLVL unset or 0).
// Whatever that file does (here `pyenv init`, ~0.2 s of CPU idle and over
// 0.6 s under load) would be paid by every remote command of every tool
// the bench compares, which a real load balancer's root does not pay.
// With SHLVL=1 from sshd (SetEnv overrides the client's environment),
// bash counts itself a nested shell and skips ~/.bashrc; nothing else
// changes (the command still runs in root's login shell, with sshd's
// environment). TestSSHSkipsBashrc checks it.
const sshdConfig = `# lbc lab device %[1]s
SetEnv SHLVL=1
ListenAddress %[2]s:22
HostKey %[3]s/ssh_host_ed25519_key
PidFile %[3]s/sshd.pid
AuthorizedKeysFile %[4]s/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
UseDNS no
PrintMotd no
MaxSessions 10
Subsystem sftp internal-sftp
LogLevel INFO
`

func (l *Lab) startSSHD(ctx context.Context, d *Device) error {
	cfg := filepath.Join(d.Dir, "sshd_config")
	text := fmt.Sprintf(sshdConfig, d.Name, d.Address, d.Dir, l.Dir)
	if l.stepLog {
		if err := l.writeStepLog(d); err != nil {
			return err
		}
		text = strings.Replace(text, "SetEnv SHLVL=1\n", "SetEnv SHLVL=1 PATH="+stepLogPath(d)+"\n", 1)
	}
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		return err
	}
	if _, err := run(ctx, "", "ip", "netns", "exec", d.NS, "/usr/sbin/sshd",
		"-f", cfg, "-E", filepath.Join(d.Dir, "sshd.log")); err != nil {
		return err
	}
	addr := netip.AddrPortFrom(d.Address, 22).String()
	return poll(ctx, startTimeout, func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		c.Close()
		return nil
	})
}

// initialConfig is what a fresh device runs before lbc applies anything:
// HAProxy 2.6 in master-worker mode starts without any proxy, so it has
// only a global section (with the admin stats socket the reconciler uses)
// and defaults.
func initialConfig(d *Device) string {
	return fmt.Sprintf(`# lbc lab device %s: initial configuration
global
	stats socket %s/haproxy.sock mode 600 level admin expose-fd listeners
	server-state-file %s/server-state
	maxconn 4096

defaults
	mode http
	timeout connect 5s
	timeout client 30s
	timeout server 30s
`, d.Name, d.StateDir, d.StateDir)
}

func (d *Device) haproxyPidFile() string { return filepath.Join(d.StateDir, "haproxy.pid") }

// startHAProxy starts the device's haproxy in master-worker mode with its
// current config and waits until its master socket lists a worker.
func (l *Lab) startHAProxy(ctx context.Context, d *Device) error {
	pidFile := d.haproxyPidFile()
	master := filepath.Join(d.StateDir, "master.sock")
	os.Remove(pidFile)
	if _, err := run(ctx, "", "ip", "netns", "exec", d.NS, "/usr/sbin/haproxy",
		"-W", "-D", "-p", pidFile, "-S", master, "-f", d.Config); err != nil {
		return err
	}
	return poll(ctx, startTimeout, func() error {
		if _, err := readPid(pidFile); err != nil {
			return err
		}
		n, err := masterWorkers(master)
		if err == nil && n == 0 {
			err = errors.New("master lists no worker yet")
		}
		return err
	})
}

// masterWorkers asks an haproxy master socket "show proc" and counts the
// workers it lists.
func masterWorkers(sock string) (int, error) {
	c, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("show proc\n")); err != nil {
		return 0, err
	}
	// The master CLI answers once the client has shut its side down.
	if uc, ok := c.(*net.UnixConn); ok {
		uc.CloseWrite()
	}
	b, err := io.ReadAll(c)
	if err != nil {
		return 0, err
	}
	n, in := 0, false
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, "# workers"):
			in = true
		case strings.HasPrefix(line, "#"):
			in = false
		case in && strings.Contains(line, " worker "):
			n++
		}
	}
	return n, nil
}

// StartHAProxy starts device dev's haproxy (1-based) with its current
// config, as a host's init system would after a crash or a stop.
func (l *Lab) StartHAProxy(ctx context.Context, dev int) error {
	d, err := l.device(dev)
	if err != nil {
		return err
	}
	if err := l.startHAProxy(ctx, d); err != nil {
		return fmt.Errorf("lab %s: start haproxy: %w", d.Name, err)
	}
	return nil
}

// StopHAProxy stops device dev's haproxy, master and workers (SIGTERM, then
// SIGKILL after 3 s), and removes its pid file.
func (l *Lab) StopHAProxy(ctx context.Context, dev int) error {
	d, err := l.device(dev)
	if err != nil {
		return err
	}
	pids := l.procsIn(d.NS, func(cmdline string) bool {
		return strings.HasPrefix(cmdline, "/usr/sbin/haproxy -W ") && strings.Contains(cmdline, " -f "+d.Config+" ")
	})
	if err := stopPids(ctx, pids); err != nil {
		return fmt.Errorf("lab %s: stop haproxy: %w", d.Name, err)
	}
	os.Remove(d.haproxyPidFile())
	return nil
}

// procsIn returns the processes in namespace ns whose command line (NULs
// turned into spaces) satisfies match.
func (l *Lab) procsIn(ns string, match func(cmdline string) bool) []int {
	var out []int
	for _, p := range livePids(pidsIn([]string{ns})) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p))
		if err != nil {
			continue
		}
		if match(strings.ReplaceAll(string(b), "\x00", " ")) {
			out = append(out, p)
		}
	}
	return out
}

// stopPids sends SIGTERM, waits up to 3 s, then SIGKILL and up to 2 s.
func stopPids(ctx context.Context, pids []int) error {
	alive := func() []int {
		var a []int
		for _, p := range livePids(pids) {
			a = append(a, p)
		}
		return a
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		for _, p := range alive() {
			syscall.Kill(p, sig)
		}
		wait := 3 * time.Second
		if sig == syscall.SIGKILL {
			wait = 2 * time.Second
		}
		err := poll(ctx, wait, func() error {
			if a := alive(); len(a) > 0 {
				return fmt.Errorf("pids %v still running", a)
			}
			return nil
		})
		if err == nil {
			return nil
		}
		if sig == syscall.SIGKILL || ctx.Err() != nil {
			return err
		}
	}
	return nil
}

func readPid(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return 0, fmt.Errorf("%s: no pid in %q", path, b)
	}
	return pid, nil
}

// KillSSHSessions kills (SIGKILL) the per-connection sshd processes of
// device dev, cutting every SSH connection to it as a network failure or a
// killed controller would; the listening sshd keeps running.
func (l *Lab) KillSSHSessions(ctx context.Context, dev int) error {
	d, err := l.device(dev)
	if err != nil {
		return err
	}
	listener, err := readPid(filepath.Join(d.Dir, "sshd.pid"))
	if err != nil {
		return fmt.Errorf("lab %s: kill ssh sessions: %w", d.Name, err)
	}
	var sessions []int
	for _, p := range livePids(pidsIn([]string{d.NS})) {
		if p != listener && parentPid(p) == listener {
			sessions = append(sessions, p)
		}
	}
	for _, p := range sessions {
		syscall.Kill(p, syscall.SIGKILL)
	}
	err = poll(ctx, 3*time.Second, func() error {
		if a := livePids(sessions); len(a) > 0 {
			return fmt.Errorf("pids %v still running", a)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("lab %s: kill ssh sessions: %w", d.Name, err)
	}
	return nil
}

func parentPid(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0
	}
	pp, _ := strconv.Atoi(f[1])
	return pp
}

// ReadFile reads a file of device dev: name is absolute, or relative to
// the device's directory ("haproxy.cfg", "state/state.json").
func (l *Lab) ReadFile(dev int, name string) ([]byte, error) {
	d, err := l.device(dev)
	if err != nil {
		return nil, err
	}
	if !filepath.IsAbs(name) {
		name = filepath.Join(d.Dir, name)
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("lab %s: %w", d.Name, err)
	}
	return b, nil
}

// Exec runs a command in device dev's namespace and returns its combined
// output.
func (l *Lab) Exec(ctx context.Context, dev int, args ...string) ([]byte, error) {
	d, err := l.device(dev)
	if err != nil {
		return nil, err
	}
	if len(args) == 0 {
		return nil, errors.New("lab: exec: no command")
	}
	cmd := execCommand(ctx, append([]string{"netns", "exec", d.NS}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("lab %s: exec %s: %w", d.Name, strings.Join(args, " "), err)
	}
	return out, nil
}

// StatsQuery sends one command to the HAProxy stats socket at sock and
// returns its answer, within bounded waits (2 s to connect, 5 s in all).
func StatsQuery(t testing.TB, sock, cmd string) string {
	t.Helper()
	c, err := net.DialTimeout("unix", sock, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "%s\n", cmd)
	var b strings.Builder
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		b.WriteString(sc.Text() + "\n")
	}
	return b.String()
}
