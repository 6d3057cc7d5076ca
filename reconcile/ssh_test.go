package reconcile_test

import (
	"bufio"
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"

	"lbc/internal/testkit/sshtest"
	"lbc/reconcile"
)

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func dial(t testing.TB, srv *sshtest.Server, cfg reconcile.SSHConfig) reconcile.Transport {
	t.Helper()
	if cfg.KnownHosts == "" {
		cfg.KnownHosts = srv.KnownHostsFile()
	}
	if cfg.KeyFile == "" {
		cfg.KeyFile = srv.KeyFile()
	}
	tr, err := reconcile.DialSSH(testCtx(t), reconcile.EndpointOf(srv.Device("lb-t1")), cfg)
	if err != nil {
		t.Fatalf("DialSSH: %v", err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func TestSSHRun(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{})
	tr := dial(t, srv, reconcile.SSHConfig{})
	ctx := testCtx(t)

	out, err := tr.Run(ctx, "echo hello; echo noise >&2", nil)
	if err != nil || string(out) != "hello\n" {
		t.Fatalf("Run = %q, %v; want %q, nil", out, err, "hello\n")
	}
	out, err = tr.Run(ctx, "tr a-z A-Z", strings.NewReader("upload\n"))
	if err != nil || string(out) != "UPLOAD\n" {
		t.Fatalf("Run with stdin = %q, %v; want %q, nil", out, err, "UPLOAD\n")
	}
	want := []string{"echo hello; echo noise >&2", "tr a-z A-Z"}
	if got := srv.Commands(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("server ran %q, want %q", got, want)
	}
}

// lbc negotiates ECDH on P-256 with a host that also offers curve25519
// (OpenSSH computes P-256 with OpenSSL, curve25519 with slower portable
// code), keeps the post-quantum hybrid for hosts that have it, and never
// offers diffie-hellman-group14-sha1.
func TestSSHKeyExchange(t *testing.T) {
	for _, c := range []struct {
		server []string
		want   string // "" when the dial must fail
	}{
		{[]string{ssh.KeyExchangeCurve25519, ssh.KeyExchangeECDHP256, ssh.KeyExchangeDH14SHA256}, ssh.KeyExchangeECDHP256},
		{nil, ssh.KeyExchangeMLKEM768X25519},
		{[]string{ssh.KeyExchangeCurve25519}, ssh.KeyExchangeCurve25519},
		{[]string{ssh.InsecureKeyExchangeDH14SHA1}, ""},
	} {
		srv := sshtest.Start(t, sshtest.Options{KeyExchanges: c.server})
		tr, err := reconcile.DialSSH(testCtx(t), reconcile.EndpointOf(srv.Device("lb-t1")), reconcile.SSHConfig{KnownHosts: srv.KnownHostsFile(), KeyFile: srv.KeyFile()})
		if c.want == "" {
			if err == nil {
				tr.Close()
				t.Errorf("server with %v: dial succeeded, want a refusal", c.server)
			}
			continue
		}
		if err != nil {
			t.Errorf("server with %v: %v", c.server, err)
			continue
		}
		tr.Close()
		if got := srv.KeyExchanges(); len(got) == 0 || got[0] != c.want {
			t.Errorf("server with %v: negotiated %v, want %s", c.server, got, c.want)
		}
	}
}

func TestSSHExitError(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{Hook: func(cmd string) sshtest.Fault {
		if cmd == "haproxy -c -f /x" {
			return sshtest.FailExit(2, "[ALERT] config invalid\n")
		}
		return sshtest.NoFault
	}})
	tr := dial(t, srv, reconcile.SSHConfig{})
	ctx := testCtx(t)

	for _, c := range []struct {
		cmd, stderr string
		code        int
	}{
		{"echo partial; echo '  oops  ' >&2; exit 3", "oops", 3},
		{"haproxy -c -f /x", "[ALERT] config invalid", 2},
	} {
		_, err := tr.Run(ctx, c.cmd, nil)
		var ee *reconcile.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("Run(%q) = %v, want *ExitError", c.cmd, err)
		}
		if ee.Code != c.code || ee.Stderr != c.stderr || ee.Cmd != c.cmd {
			t.Errorf("Run(%q) = %+v, want code %d stderr %q", c.cmd, ee, c.code, c.stderr)
		}
	}

	// Stderr is capped.
	_, err := tr.Run(ctx, "head -c 100000 /dev/zero | tr '\\0' x >&2; exit 1", nil)
	var ee *reconcile.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("Run = %v, want *ExitError", err)
	}
	if len(ee.Stderr) > 4200 || !strings.HasSuffix(ee.Stderr, "[truncated]") {
		t.Errorf("stderr of 100000 bytes kept as %d bytes ending %q", len(ee.Stderr), ee.Stderr[max(0, len(ee.Stderr)-20):])
	}
}

func TestSSHHostKeyUnknown(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{})
	empty := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(empty, []byte("# nothing yet\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := reconcile.DialSSH(testCtx(t), reconcile.EndpointOf(srv.Device("lb-t1")), reconcile.SSHConfig{KnownHosts: empty, KeyFile: srv.KeyFile()})
	if !errors.Is(err, reconcile.ErrHostKeyUnknown) {
		t.Fatalf("DialSSH = %v, want ErrHostKeyUnknown", err)
	}
	msg := err.Error()
	t.Log(msg)
	for _, want := range []string{"lb-t1", srv.Addr().String(), ssh.FingerprintSHA256(srv.HostKey()), empty, "ssh-keyscan -t ed25519 -p"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
	if len(srv.Commands()) != 0 {
		t.Errorf("commands ran on an unverified host: %q", srv.Commands())
	}
}

func TestSSHHostKeyChanged(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{})
	other := sshtest.Start(t, sshtest.Options{})
	// known_hosts says srv's address has other's key.
	kh := filepath.Join(t.TempDir(), "known_hosts")
	line := knownhosts.Line([]string{srv.Addr().String()}, other.HostKey()) + "\n"
	if err := os.WriteFile(kh, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := reconcile.DialSSH(testCtx(t), reconcile.EndpointOf(srv.Device("lb-t1")), reconcile.SSHConfig{KnownHosts: kh, KeyFile: srv.KeyFile()})
	if !errors.Is(err, reconcile.ErrHostKeyChanged) {
		t.Fatalf("DialSSH = %v, want ErrHostKeyChanged", err)
	}
	t.Log(err)
	for _, want := range []string{"lb-t1", ssh.FingerprintSHA256(srv.HostKey()), ssh.FingerprintSHA256(other.HostKey()), kh + ":1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// The server also holds an ECDSA key, which x/crypto would ask for before
// ed25519; only the ed25519 key is in known_hosts, so DialSSH must ask for it.
func TestSSHHostKeyAlgorithmFromKnownHosts(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{ExtraHostKey: true})
	tr := dial(t, srv, reconcile.SSHConfig{})
	if _, err := tr.Run(testCtx(t), "true", nil); err != nil {
		t.Fatal(err)
	}
}

func TestSSHNoKnownHosts(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{})
	for _, kh := range []string{"", filepath.Join(t.TempDir(), "missing")} {
		_, err := reconcile.DialSSH(testCtx(t), reconcile.EndpointOf(srv.Device("lb-t1")), reconcile.SSHConfig{KnownHosts: kh, KeyFile: srv.KeyFile()})
		if err == nil || !strings.Contains(err.Error(), "known_hosts") {
			t.Errorf("DialSSH with known_hosts %q = %v, want an error about known_hosts", kh, err)
		}
	}
}

// A dialer reads known_hosts and the key file once, when it is made:
// every device of a run is dialled with what it read then (the files
// gone or emptied afterwards change nothing).
func TestSSHDialerReadsFilesOnce(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{})
	dir := t.TempDir()
	kh, key := filepath.Join(dir, "known_hosts"), filepath.Join(dir, "id")
	for src, dst := range map[string]string{srv.KnownHostsFile(): kh, srv.KeyFile(): key} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	d, err := reconcile.NewSSHDialer(reconcile.SSHConfig{KnownHosts: kh, KeyFile: key})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(kh, nil, 0o600)
	os.Remove(key)
	for _, name := range []string{"lb-t1", "lb-t2"} {
		tr, err := d.Dial(testCtx(t), reconcile.EndpointOf(srv.Device(name)))
		if err != nil {
			t.Fatalf("dial %s after the files changed: %v", name, err)
		}
		tr.Close()
	}
	if _, err := reconcile.NewSSHDialer(reconcile.SSHConfig{KnownHosts: kh, KeyFile: key}); err == nil {
		t.Error("a new dialer read the removed key file")
	}
}

func TestSSHWrongClientKey(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{})
	_, key := sshtest.WriteKey(t, t.TempDir(), "other", "")
	_, err := reconcile.DialSSH(testCtx(t), reconcile.EndpointOf(srv.Device("lb-t1")), reconcile.SSHConfig{KnownHosts: srv.KnownHostsFile(), KeyFile: key})
	if !errors.Is(err, reconcile.ErrAuth) {
		t.Fatalf("DialSSH = %v, want ErrAuth", err)
	}
	t.Log(err)
	if !strings.HasPrefix(err.Error(), "connect lb-t1 (127.0.0.1:") {
		t.Errorf("error %q does not start with the device and address", err)
	}
}

// encryptKey writes srv's client key encrypted with a passphrase.
func encryptKey(t *testing.T, srv *sshtest.Server) (path string, raw any) {
	t.Helper()
	b, err := os.ReadFile(srv.KeyFile())
	if err != nil {
		t.Fatal(err)
	}
	raw, err = ssh.ParseRawPrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKeyWithPassphrase(raw, "", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(t.TempDir(), "id_encrypted")
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, raw
}

func TestSSHEncryptedKeyWithoutAgent(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{})
	key, _ := encryptKey(t, srv)
	t.Setenv("SSH_AUTH_SOCK", "")
	_, err := reconcile.DialSSH(testCtx(t), reconcile.EndpointOf(srv.Device("lb-t1")), reconcile.SSHConfig{KnownHosts: srv.KnownHostsFile(), KeyFile: key})
	if err == nil || !strings.Contains(err.Error(), "encrypted") || !strings.Contains(err.Error(), "ssh-add") {
		t.Fatalf("DialSSH = %v, want an error saying the key is encrypted", err)
	}
	b, _ := os.ReadFile(key)
	for _, line := range strings.Split(string(b), "\n")[1:3] {
		if strings.Contains(err.Error(), line) {
			t.Errorf("error holds key material: %v", err)
		}
	}
}

// startAgent serves an in-process ssh-agent holding key and sets SSH_AUTH_SOCK.
func startAgent(t *testing.T, key any) {
	t.Helper()
	kr := agent.NewKeyring()
	if err := kr.Add(agent.AddedKey{PrivateKey: key}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() { defer wg.Done(); agent.ServeAgent(kr, c) }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	t.Setenv("SSH_AUTH_SOCK", sock)
}

func TestSSHAgent(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{})
	key, raw := encryptKey(t, srv)
	startAgent(t, raw)
	for _, keyFile := range []string{"", key} {
		tr, err := reconcile.DialSSH(testCtx(t), reconcile.EndpointOf(srv.Device("lb-t1")), reconcile.SSHConfig{KnownHosts: srv.KnownHostsFile(), KeyFile: keyFile})
		if err != nil {
			t.Fatalf("DialSSH with agent, key file %q: %v", keyFile, err)
		}
		if _, err := tr.Run(testCtx(t), "true", nil); err != nil {
			t.Error(err)
		}
		tr.Close()
	}
}

func TestSSHSudo(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{Hook: func(string) sshtest.Fault { return sshtest.FailExit(0, "") }})
	dev := srv.Device("lb-t1")
	dev.SSH.User, dev.SSH.Sudo = "deploy", true
	tr, err := reconcile.DialSSH(testCtx(t), reconcile.EndpointOf(dev), reconcile.SSHConfig{KnownHosts: srv.KnownHostsFile(), KeyFile: srv.KeyFile()})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if _, err := tr.Run(testCtx(t), "cat '/etc/it'\\''s' && echo $HOME", nil); err != nil {
		t.Fatal(err)
	}
	want := `sudo -n sh -c 'cat '\''/etc/it'\''\'\'''\''s'\'' && echo $HOME'`
	if got := srv.Commands(); len(got) != 1 || got[0] != want {
		t.Errorf("server got %q, want [%q]", got, want)
	}
	// And the wrapped command means the same to a shell.
	out, err := exec.Command("/bin/sh", "-c", strings.Replace(want, "sudo -n ", "", 1)+" 2>&1; true").Output()
	if err != nil || !strings.Contains(string(out), "/etc/it's") {
		t.Errorf("unwrapped command printed %q, %v; want it to name /etc/it's", out, err)
	}
}

func TestSSHBadAddress(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{})
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skip("no IPv6 loopback")
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // nothing listens there now
	dev := srv.Device("lb-v6")
	dev.Address, dev.SSH.Port = "::1", port
	_, err = reconcile.DialSSH(testCtx(t), reconcile.EndpointOf(dev), reconcile.SSHConfig{KnownHosts: srv.KnownHostsFile(), KeyFile: srv.KeyFile()})
	want := fmt.Sprintf("connect lb-v6 ([::1]:%d): ", port)
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("DialSSH = %v, want an error starting %q", err, want)
	}
}

func runMany(t *testing.T, tr reconcile.Transport, n int) {
	t.Helper()
	ctx := testCtx(t)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := tr.Run(ctx, fmt.Sprintf("sleep 0.05; echo %d", i), nil)
			if err == nil && string(out) != fmt.Sprintf("%d\n", i) {
				err = fmt.Errorf("run %d printed %q", i, out)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestSSHConcurrentRuns(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{MaxSessions: 10})
	runMany(t, dial(t, srv, reconcile.SSHConfig{}), 50)
	if p := srv.PeakSessions(); p > 8 {
		t.Errorf("%d sessions open at once, want at most 8", p)
	}
	t.Logf("peak sessions %d, refused %d", srv.PeakSessions(), srv.Refused())
}

// A server that allows fewer sessions than the client's limit refuses some;
// the client retries them.
func TestSSHSessionRetry(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{MaxSessions: 3})
	runMany(t, dial(t, srv, reconcile.SSHConfig{}), 50)
	if srv.Refused() == 0 {
		t.Errorf("server refused no session: retry untested")
	}
	t.Logf("peak sessions %d, refused %d", srv.PeakSessions(), srv.Refused())
}

func TestSSHStreamHoldsLock(t *testing.T) {
	if _, err := exec.LookPath("flock"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("flock missing")
		}
		t.Skip("flock missing")
	}
	srv := sshtest.Start(t, sshtest.Options{})
	tr := dial(t, srv, reconcile.SSHConfig{})
	ctx := testCtx(t)
	lock := filepath.Join(t.TempDir(), "lock")
	tryLock := "flock -n " + lock + " true"

	st, err := tr.Stream(ctx, "flock -n "+lock+" sh -c 'echo locked; exec cat >/dev/null'")
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(st.Stdout()).ReadString('\n')
	if err != nil || line != "locked\n" {
		t.Fatalf("stream printed %q, %v; want %q", line, err, "locked\n")
	}
	var ee *reconcile.ExitError
	if _, err := tr.Run(ctx, tryLock, nil); !errors.As(err, &ee) || ee.Code != 1 {
		t.Fatalf("second flock while the stream is open = %v, want exit status 1", err)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := tr.Run(ctx, tryLock, nil)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lock still held 5s after Close: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSSHStreamWait(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{})
	tr := dial(t, srv, reconcile.SSHConfig{})
	st, err := tr.Stream(testCtx(t), "read x; echo got $x; exit 4")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	fmt.Fprintln(st.Stdin(), "it")
	line, _ := bufio.NewReader(st.Stdout()).ReadString('\n')
	var ee *reconcile.ExitError
	if err := st.Wait(); !errors.As(err, &ee) || ee.Code != 4 || line != "got it\n" {
		t.Errorf("stream printed %q and ended with %v; want %q and exit status 4", line, err, "got it\n")
	}
}

// within fails the test if f does not return within d.
func within(t *testing.T, d time.Duration, what string, f func()) time.Duration {
	t.Helper()
	start := time.Now()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s: still running after %v", what, d)
	}
	return time.Since(start)
}

func TestSSHCutConnection(t *testing.T) {
	for _, fault := range []struct {
		name  string
		fault sshtest.Fault
	}{{"before", sshtest.CutBefore}, {"after", sshtest.CutAfter}} {
		t.Run(fault.name, func(t *testing.T) {
			srv := sshtest.Start(t, sshtest.Options{Hook: func(cmd string) sshtest.Fault {
				if strings.Contains(cmd, "cut-here") {
					return fault.fault
				}
				return sshtest.NoFault
			}})
			tr := dial(t, srv, reconcile.SSHConfig{})
			ctx := testCtx(t)
			if _, err := tr.Run(ctx, "true", nil); err != nil {
				t.Fatal(err)
			}
			within(t, 5*time.Second, "cut command", func() {
				_, err := tr.Run(ctx, "echo cut-here", nil)
				if !errors.Is(err, reconcile.ErrConnectionLost) {
					t.Errorf("Run on a cut connection = %v, want ErrConnectionLost", err)
				}
			})
			within(t, 5*time.Second, "command after the cut", func() {
				if _, err := tr.Run(ctx, "true", nil); err == nil {
					t.Errorf("Run after the cut succeeded")
				}
			})
		})
	}
	t.Run("during", func(t *testing.T) {
		srv := sshtest.Start(t, sshtest.Options{})
		tr := dial(t, srv, reconcile.SSHConfig{})
		go func() {
			for i := 0; i < 250 && srv.Sessions() == 0; i++ {
				time.Sleep(20 * time.Millisecond)
			}
			srv.CutAll()
		}()
		within(t, 10*time.Second, "sleep 30 on a cut connection", func() {
			if _, err := tr.Run(testCtx(t), "sleep 30", nil); !errors.Is(err, reconcile.ErrConnectionLost) {
				t.Errorf("Run = %v, want ErrConnectionLost", err)
			}
		})
	})
}

func TestSSHCancel(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{})
	tr := dial(t, srv, reconcile.SSHConfig{})
	ctx, cancel := context.WithTimeout(testCtx(t), 200*time.Millisecond)
	defer cancel()
	took := within(t, 5*time.Second, "cancelled sleep 30", func() {
		if _, err := tr.Run(ctx, "sleep 30", nil); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Run = %v, want context.DeadlineExceeded", err)
		}
	})
	if took > 2*time.Second {
		t.Errorf("cancelled Run took %v", took)
	}
	// The remote command was killed, not left running.
	for i := 0; srv.Sessions() > 0; i++ {
		if i == 100 {
			t.Fatalf("%d sessions still open 2s after cancel", srv.Sessions())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := tr.Run(testCtx(t), "true", nil); err != nil {
		t.Errorf("connection unusable after a cancelled command: %v", err)
	}
}

func TestSSHStreamEndsWithContext(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{})
	tr := dial(t, srv, reconcile.SSHConfig{})
	ctx, cancel := context.WithCancel(testCtx(t))
	st, err := tr.Stream(ctx, "exec cat >/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cancel()
	within(t, 5*time.Second, "Wait after cancel", func() {
		if err := st.Wait(); err == nil {
			t.Errorf("Wait after cancel = nil, want an error")
		}
	})
}

// Dialing, running, streaming, cancelling and closing leave no goroutine
// behind, on the client or the server.
func TestSSHNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Run("work", func(t *testing.T) {
		srv := sshtest.Start(t, sshtest.Options{})
		tr := dial(t, srv, reconcile.SSHConfig{})
		ctx := testCtx(t)
		runMany(t, tr, 10)
		st, err := tr.Stream(ctx, "exec cat >/dev/null")
		if err != nil {
			t.Fatal(err)
		}
		st.Close()
		st.Wait()
		cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		tr.Run(cctx, "sleep 30", nil)
		cancel()
		if err := tr.Close(); err != nil {
			t.Error(err)
		}
	})
	var after int
	for range 100 {
		if after = runtime.NumGoroutine(); after <= before {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	buf := make([]byte, 1<<16)
	t.Errorf("%d goroutines before, %d after:\n%s", before, after, buf[:runtime.Stack(buf, true)])
}

func BenchmarkDialSSH(b *testing.B) {
	srv := sshtest.Start(b, sshtest.Options{})
	ctx := testCtx(b)
	cfg := reconcile.SSHConfig{KnownHosts: srv.KnownHostsFile(), KeyFile: srv.KeyFile()}
	d, err := reconcile.NewSSHDialer(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ep := reconcile.EndpointOf(srv.Device("lb-b1"))
	for b.Loop() {
		tr, err := d.Dial(ctx, ep)
		if err != nil {
			b.Fatal(err)
		}
		tr.Close()
	}
}

func BenchmarkRun(b *testing.B) {
	srv := sshtest.Start(b, sshtest.Options{Hook: func(string) sshtest.Fault { return sshtest.FailExit(0, "") }})
	tr := dial(b, srv, reconcile.SSHConfig{})
	ctx := testCtx(b)
	for b.Loop() {
		if _, err := tr.Run(ctx, "true", nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRunShell runs a real /bin/sh -c true on the test server.
func BenchmarkRunShell(b *testing.B) {
	srv := sshtest.Start(b, sshtest.Options{})
	tr := dial(b, srv, reconcile.SSHConfig{})
	ctx := testCtx(b)
	for b.Loop() {
		if _, err := tr.Run(ctx, "true", nil); err != nil {
			b.Fatal(err)
		}
	}
}
