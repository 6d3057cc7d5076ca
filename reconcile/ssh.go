package reconcile

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"

	"lbc/internal/shquote"
	"lbc/reconcile/host"
)

// Errors an SSHDialer returns (wrapped) when it refuses a host or cannot log in.
var (
	ErrHostKeyUnknown = errors.New("host key unknown")
	ErrHostKeyChanged = errors.New("host key changed")
	ErrHostKeyRevoked = errors.New("host key revoked")
	ErrAuth           = errors.New("authentication failed")
)

// ErrOutputTooLarge is returned (wrapped) by Run when a command's stdout
// exceeds SSHConfig.MaxOutput.
var ErrOutputTooLarge = errors.New("output too large")

// ErrConnectionLost is returned (wrapped) by Run, Stream and Stream.Wait
// when the connection is gone. When the command had been sent, it may or may
// not have run, in part or in full.
var ErrConnectionLost = errors.New("connection lost")

// SSHConfig says how lbc connects to devices.
type SSHConfig struct {
	// KnownHosts is the path of the OpenSSH known_hosts file that every host
	// key is checked against. Required: there is no way to skip the check.
	KnownHosts string
	// KeyFile is an unencrypted private key. When empty, or when the key is
	// encrypted, the ssh-agent at $SSH_AUTH_SOCK is used.
	KeyFile string
	// ConnectTimeout bounds the TCP connect and the SSH handshake
	// (default 10s).
	ConnectTimeout time.Duration
	// MaxSessions bounds the sessions open at once on one connection
	// (default 8; sshd refuses more than its MaxSessions, 10 by default).
	MaxSessions int
	// MaxOutput is the most bytes of stdout Run accepts from one command
	// (DefaultMaxRead when 0): beyond it the command is killed and Run
	// fails at once with ErrOutputTooLarge.
	MaxOutput int64
}

const (
	defaultConnectTimeout = 10 * time.Second
	defaultMaxSessions    = 8
	maxStderr             = 4 << 10 // bytes of stderr kept in an ExitError
	keepAliveInterval     = 15 * time.Second
	openRetries           = 12 // session opens refused by the server
	openBackoffMin        = 10 * time.Millisecond
	openBackoffMax        = 500 * time.Millisecond
	cancelGrace           = 2 * time.Second // wait for a killed command's session
)

// sshTransport is a Transport over one SSH connection to one device.
type sshTransport struct {
	client *ssh.Client
	maxOut int64 // bytes of stdout Run accepts
	sudo   bool
	sem    chan struct{}
	dead   chan struct{} // closed when the connection has ended
	done   chan struct{} // closed by Close
	once   sync.Once
}

// SSHDialer connects to devices over SSH. It reads known_hosts and the
// key file once, when it is made: every connection of a run checks host
// keys against the same file and logs in with the same key.
type SSHDialer struct {
	cfg      SSHConfig
	hostKeys ssh.HostKeyCallback
	// signer is the key file's key; nil when the agent signs (no key
	// file, or an encrypted one: want is then its public half).
	signer ssh.Signer
	want   ssh.PublicKey
}

// NewSSHDialer reads cfg's known_hosts and key file. No error carries key
// material.
func NewSSHDialer(cfg SSHConfig) (*SSHDialer, error) {
	if cfg.KnownHosts == "" {
		return nil, errors.New("no known_hosts file given")
	}
	hostKeys, err := newHostKeyIndex(cfg.KnownHosts)
	if err != nil {
		return nil, fmt.Errorf("known_hosts: %w", err)
	}
	d := &SSHDialer{cfg: cfg, hostKeys: hostKeys}
	if d.signer, d.want, err = readKey(cfg.KeyFile); err != nil {
		return nil, err
	}
	return d, nil
}

// DialSSH connects to one device with a dialer made for it alone; a run
// that connects to several makes one SSHDialer.
func DialSSH(ctx context.Context, ep Endpoint, cfg SSHConfig) (Transport, error) {
	d, err := NewSSHDialer(cfg)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", ep.Device, err)
	}
	return d.Dial(ctx, ep)
}

// Dial connects to ep, checking its host key against known_hosts. The
// returned Transport runs every command on that one connection. Dial
// is a Dialer.
func (d *SSHDialer) Dial(ctx context.Context, ep Endpoint) (Transport, error) {
	port := ep.Port
	if port == 0 {
		port = 22
	}
	addr := net.JoinHostPort(ep.Address, strconv.Itoa(port))
	client, err := d.dial(ctx, ep, addr)
	if err != nil {
		return nil, fmt.Errorf("connect %s (%s): %w", ep.Device, addr, err)
	}
	n := d.cfg.MaxSessions
	if n <= 0 {
		n = defaultMaxSessions
	}
	maxOut := d.cfg.MaxOutput
	if maxOut <= 0 {
		maxOut = DefaultMaxRead
	}
	t := &sshTransport{
		client: client,
		maxOut: maxOut,
		sudo:   ep.Sudo && ep.User != "root",
		sem:    make(chan struct{}, n),
		dead:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	go func() {
		client.Wait()
		close(t.dead)
	}()
	go t.keepAlive()
	return t, nil
}

// kexAlgorithms is the key exchanges lbc offers, in order of preference:
// x/crypto/ssh's supported set, without the insecure ones its default
// still offers (diffie-hellman-group14-sha1), and with ECDH on P-256
// before curve25519. The post-quantum hybrid stays first, for hosts that
// have it (OpenSSH 9.9 and later). Among the classical ones, OpenSSH
// computes P-256 with OpenSSL's optimised code but curve25519 with its
// own portable reference code: on the lab's OpenSSH 9.2, sshd spends
// 2.9 ms less CPU per connection with P-256 (22.5 against 25.4 ms, 200
// connections each, three alternations), a tenth of what a connection
// costs the host. Both give about 128-bit security.
var kexAlgorithms = []string{
	ssh.KeyExchangeMLKEM768X25519,
	ssh.KeyExchangeECDHP256,
	ssh.KeyExchangeCurve25519,
	ssh.KeyExchangeECDHP384,
	ssh.KeyExchangeECDHP521,
	ssh.KeyExchangeDH14SHA256,
	ssh.KeyExchangeDH16SHA512,
}

func (d *SSHDialer) dial(ctx context.Context, ep Endpoint, addr string) (*ssh.Client, error) {
	cfg, hostKeys := d.cfg, d.hostKeys
	auth, closeAgent, err := d.authMethod()
	if err != nil {
		return nil, err
	}
	defer closeAgent()

	timeout := cfg.ConnectTimeout
	if timeout <= 0 {
		timeout = defaultConnectTimeout
	}
	nd := net.Dialer{Timeout: timeout}
	conn, err := nd.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	// Bound the handshake by the timeout and ctx as well.
	conn.SetDeadline(time.Now().Add(timeout))
	stop := context.AfterFunc(ctx, func() { conn.Close() })

	var keyErr error
	config := &ssh.ClientConfig{
		User:              ep.User,
		Auth:              []ssh.AuthMethod{auth},
		HostKeyAlgorithms: knownAlgorithms(hostKeys, addr, conn.RemoteAddr()),
		HostKeyCallback: func(hostname string, remote net.Addr, key ssh.PublicKey) error {
			keyErr = checkHostKey(hostKeys, hostname, remote, key, ep.Address, port(addr), cfg.KnownHosts)
			return keyErr
		},
		Timeout: timeout,
	}
	config.KeyExchanges = kexAlgorithms
	c, chans, reqs, err := ssh.NewClientConn(quickAck(conn), addr, config)
	if !stop() {
		if err == nil {
			c.Close()
		}
		conn.Close()
		return nil, ctx.Err()
	}
	if err != nil {
		conn.Close()
		switch {
		case keyErr != nil:
			return nil, keyErr
		case strings.Contains(err.Error(), "unable to authenticate"):
			return nil, fmt.Errorf("%w as %q: server refused the key(s) offered: %w", ErrAuth, ep.User, err)
		}
		return nil, err
	}
	conn.SetDeadline(time.Time{})
	return ssh.NewClient(c, chans, reqs), nil
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// hostKeyError is a refused host key: its message says what to do, and it
// unwraps to one of the ErrHostKey* sentinels.
type hostKeyError struct {
	kind error
	msg  string
}

func (e *hostKeyError) Error() string { return e.kind.Error() + ": " + e.msg }
func (e *hostKeyError) Unwrap() error { return e.kind }

func checkHostKey(db ssh.HostKeyCallback, hostname string, remote net.Addr, key ssh.PublicKey, host, port, file string) error {
	err := db(hostname, remote, key)
	if err == nil {
		return nil
	}
	offered := key.Type() + " " + ssh.FingerprintSHA256(key)
	scan := "ssh-keyscan -t " + keyscanType(key.Type())
	if port != "22" {
		scan += " -p " + port
	}
	scan += " " + shquote.Quote(host) + " >> " + shquote.Quote(file)
	var ke *knownhosts.KeyError
	var re *knownhosts.RevokedError
	switch {
	case errors.As(err, &re):
		return &hostKeyError{ErrHostKeyRevoked, fmt.Sprintf(
			"server offered %s, marked @revoked at %s:%d", offered, re.Revoked.Filename, re.Revoked.Line)}
	case errors.As(err, &ke) && len(ke.Want) == 0:
		return &hostKeyError{ErrHostKeyUnknown, fmt.Sprintf(
			"server offered %s, which is not in %s; compare that fingerprint with the host's own "+
				"(ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub on its console), then add it with: %s "+
				"and check that the added line shows the same fingerprint (ssh-keygen -lf %s)", offered, file, scan, shquote.Quote(file))}
	case errors.As(err, &ke):
		var known []string
		for _, k := range ke.Want {
			known = append(known, fmt.Sprintf("%s:%d has %s %s", k.Filename, k.Line, k.Key.Type(), ssh.FingerprintSHA256(k.Key)))
		}
		return &hostKeyError{ErrHostKeyChanged, fmt.Sprintf(
			"server offered %s, but %s; this may be an attack, or the host was reinstalled: "+
				"check the new fingerprint on the host's console before you replace the old line "+
				"(ssh-keygen -R %s -f %s, then %s, and check its fingerprint with ssh-keygen -lf %s)",
			offered, strings.Join(known, ", "), shquote.Quote(knownhosts.Normalize(net.JoinHostPort(host, port))), shquote.Quote(file), scan, shquote.Quote(file))}
	}
	return fmt.Errorf("check host key: %w", err)
}

func keyscanType(t string) string {
	switch {
	case strings.HasPrefix(t, "ecdsa-"):
		return "ecdsa"
	case strings.HasPrefix(t, "sk-ecdsa"):
		return "ecdsa-sk"
	case strings.HasPrefix(t, "sk-ssh-ed25519"):
		return "ed25519-sk"
	}
	return strings.TrimPrefix(t, "ssh-")
}

// probeKey is a key no known_hosts file holds; checking it returns the keys
// that are known for a host.
var probeKey = func() ssh.PublicKey {
	k, err := ssh.NewPublicKey(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public())
	if err != nil {
		panic(err)
	}
	return k
}()

// knownAlgorithms returns the host key algorithms of the keys known_hosts
// holds for addr, so that the server is asked for a key we can check (not an
// rsa key first when only its ed25519 key is known). Nil when none is known:
// the handshake then reports the offered key as unknown.
func knownAlgorithms(db ssh.HostKeyCallback, addr string, remote net.Addr) []string {
	var ke *knownhosts.KeyError
	if !errors.As(db(addr, remote, probeKey), &ke) {
		return nil
	}
	var algos []string
	seen := map[string]bool{}
	for _, k := range ke.Want {
		names := []string{k.Key.Type()}
		if names[0] == ssh.KeyAlgoRSA {
			names = []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256}
		}
		for _, n := range names {
			if !seen[n] {
				seen[n] = true
				algos = append(algos, n)
			}
		}
	}
	return algos
}

// readKey reads an unencrypted key file's signer, or, for an encrypted
// one, its public half (the agent must hold it). Both nil without a key
// file. No error carries key material.
func readKey(keyFile string) (signer ssh.Signer, want ssh.PublicKey, err error) {
	if keyFile == "" {
		return nil, nil, nil
	}
	pem, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("key file: %w", err)
	}
	signer, err = ssh.ParsePrivateKey(pem)
	clear(pem)
	var pm *ssh.PassphraseMissingError
	switch {
	case err == nil:
		return signer, nil, nil
	case errors.As(err, &pm):
		if os.Getenv("SSH_AUTH_SOCK") == "" {
			return nil, nil, fmt.Errorf("key file %s is encrypted and lbc does not ask for passphrases: "+
				"load it into ssh-agent (ssh-add %s) and set SSH_AUTH_SOCK", keyFile, shquote.Quote(keyFile))
		}
		return nil, pm.PublicKey, nil
	}
	return nil, nil, fmt.Errorf("key file %s: %w", keyFile, err)
}

// authMethod returns the key file's signer, or the agent's when there is no
// key file or it is encrypted. closeAgent closes the agent connection (after
// the handshake).
func (d *SSHDialer) authMethod() (m ssh.AuthMethod, closeAgent func(), err error) {
	if d.signer != nil {
		return ssh.PublicKeys(d.signer), func() {}, nil
	}
	keyFile, want := d.cfg.KeyFile, d.want
	sock := os.Getenv("SSH_AUTH_SOCK")
	if sock == "" {
		return nil, nil, errors.New("no key file given and SSH_AUTH_SOCK is not set (no ssh-agent)")
	}
	conn, err := net.Dial("unix", sock)
	if err != nil {
		return nil, nil, fmt.Errorf("ssh-agent: %w", err)
	}
	ag := agent.NewClient(conn)
	m = ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
		signers, err := ag.Signers()
		if err != nil || want == nil {
			return signers, err
		}
		for _, s := range signers {
			if bytes.Equal(s.PublicKey().Marshal(), want.Marshal()) {
				return []ssh.Signer{s}, nil
			}
		}
		return nil, fmt.Errorf("key file %s is encrypted and ssh-agent does not hold it: ssh-add %s", keyFile, shquote.Quote(keyFile))
	})
	return m, func() { conn.Close() }, nil
}

// keepAlive closes the connection when the server stops answering, so that
// a silently dead peer ends every command with an error instead of a hang.
func (t *sshTransport) keepAlive() {
	tick := time.NewTicker(keepAliveInterval)
	defer tick.Stop()
	for {
		select {
		case <-t.done:
			return
		case <-t.dead:
			return
		case <-tick.C:
		}
		switch err := t.ping(context.Background(), keepAliveInterval); {
		case err == nil:
		case errors.Is(err, net.ErrClosed): // closed by Close
			return
		default:
			t.client.Close()
			return
		}
	}
}

// ping sends a keepalive request and waits, at most timeout, for the
// server's answer; net.ErrClosed when Close was called meanwhile.
func (t *sshTransport) ping(ctx context.Context, timeout time.Duration) error {
	reply := make(chan error, 1)
	go func() {
		_, _, err := t.client.SendRequest("keepalive@openssh.com", true, nil)
		reply <- err
	}()
	select {
	case err := <-reply:
		return err
	case <-time.After(timeout):
		return errors.New("no answer to keepalive")
	case <-ctx.Done():
		return ctx.Err()
	case <-t.done:
		return net.ErrClosed
	}
}

// Alive reports whether the connection is open and the server answers a
// keepalive request within aliveTimeout.
func (t *sshTransport) Alive(ctx context.Context) bool {
	select {
	case <-t.dead:
		return false
	case <-t.done:
		return false
	default:
	}
	return t.ping(ctx, aliveTimeout) == nil
}

// session takes a slot of the semaphore and opens a session, retrying with
// backoff while the server refuses it (sshd's MaxSessions). release gives
// the slot back; call it once the session is closed.
func (t *sshTransport) session(ctx context.Context) (s *ssh.Session, release func(), err error) {
	select {
	case t.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	var once sync.Once
	release = func() { once.Do(func() { <-t.sem }) }
	backoff := openBackoffMin
	for attempt := 0; ; attempt++ {
		s, err = t.newSession(ctx)
		if err == nil {
			return s, release, nil
		}
		if errors.Is(err, ErrConnectionLost) || ctx.Err() != nil {
			release()
			return nil, nil, fmt.Errorf("open session: %w", err)
		}
		var oe *ssh.OpenChannelError
		if !errors.As(err, &oe) || (oe.Reason != ssh.Prohibited && oe.Reason != ssh.ResourceShortage) || attempt >= openRetries {
			release()
			return nil, nil, fmt.Errorf("open session: %w", err)
		}
		// Full jitter, so refused openers do not retry in step.
		wait := time.Duration(rand.Int64N(int64(backoff))) + backoff/2
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			release()
			return nil, nil, ctx.Err()
		}
		backoff = min(2*backoff, openBackoffMax)
	}
}

// newSession opens a session, or fails once the connection is gone: an
// x/crypto channel open racing with the connection's end can wait forever,
// so it is not waited for then.
func (t *sshTransport) newSession(ctx context.Context) (*ssh.Session, error) {
	select {
	case <-t.dead:
		return nil, ErrConnectionLost
	default:
	}
	type result struct {
		s   *ssh.Session
		err error
	}
	r := make(chan result, 1)
	go func() {
		s, err := t.client.NewSession()
		r <- result{s, err}
	}()
	var err error
	select {
	case res := <-r:
		return res.s, res.err
	case <-t.dead:
		err = ErrConnectionLost
	case <-ctx.Done():
		err = ctx.Err()
	}
	go func() {
		if res := <-r; res.s != nil {
			res.s.Close()
		}
	}()
	return nil, err
}

func (t *sshTransport) wrap(cmd string) string {
	if t.sudo {
		return host.Sudo(cmd)
	}
	return cmd
}

// Run runs cmd (wrapped in sudo when the device asks for it). Cancelling ctx
// sends KILL to the command and closes its session.
func (t *sshTransport) Run(ctx context.Context, cmd string, stdin io.Reader) ([]byte, error) {
	s, release, err := t.session(ctx)
	if err != nil {
		return nil, err
	}
	stdout := limitedBuffer{max: int(t.maxOut), full: make(chan struct{})}
	stderr := limitedBuffer{max: maxStderr, truncate: true}
	if stdin != nil {
		s.Stdin = stdin
	}
	s.Stdout = &stdout
	s.Stderr = &stderr
	done := make(chan error, 1)
	go func() {
		defer release()
		defer s.Close()
		done <- s.Run(t.wrap(cmd))
	}()
	kill := func() {
		s.Signal(ssh.SIGKILL)
		s.Close()
		select { // let the session end, so stdin is no longer read
		case <-done:
		case <-time.After(cancelGrace):
		}
	}
	select {
	case err = <-done:
	case <-stdout.full:
		// A host that sends more than it may (a config that is a
		// symlink to /dev/zero) is cut off at once: waiting for it to
		// end would wait forever.
		kill()
		return nil, fmt.Errorf("%w: stdout exceeds %d bytes", ErrOutputTooLarge, t.maxOut)
	case <-ctx.Done():
		kill()
		return nil, ctx.Err()
	}
	if err := exitError(cmd, err, &stderr); err != nil {
		return stdout.Bytes(), err
	}
	return stdout.Bytes(), nil
}

// exitError turns the error of a session's Wait into an *ExitError,
// ErrConnectionLost or a plain error.
func exitError(cmd string, err error, stderr *limitedBuffer) error {
	if err == nil {
		return nil
	}
	var ee *ssh.ExitError
	var me *ssh.ExitMissingError
	switch {
	case errors.As(err, &ee):
		return &ExitError{Cmd: cmd, Code: ee.ExitStatus(), Stderr: stderr.String()}
	case errors.As(err, &me), errors.Is(err, io.EOF):
		return fmt.Errorf("%s: %w", cmd, ErrConnectionLost)
	}
	return fmt.Errorf("%s: %w", cmd, err)
}

// Stream starts cmd and keeps it running until Close. Cancelling ctx also
// closes it.
func (t *sshTransport) Stream(ctx context.Context, cmd string) (Stream, error) {
	s, release, err := t.session(ctx)
	if err != nil {
		return nil, err
	}
	st := &sshStream{cmd: cmd, s: s, release: release, stderr: limitedBuffer{max: maxStderr, truncate: true}}
	fail := func(err error) (Stream, error) {
		s.Close()
		release()
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	if st.stdin, err = s.StdinPipe(); err != nil {
		return fail(err)
	}
	if st.stdout, err = s.StdoutPipe(); err != nil {
		return fail(err)
	}
	s.Stderr = &st.stderr
	started := make(chan error, 1)
	go func() { started <- s.Start(t.wrap(cmd)) }()
	select {
	case err = <-started:
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = ErrConnectionLost
			}
			return fail(err)
		}
	case <-ctx.Done():
		s.Close()
		go func() { <-started; release() }()
		return nil, ctx.Err()
	}
	st.stopCtx = context.AfterFunc(ctx, func() { st.Close() })
	return st, nil
}

type sshStream struct {
	cmd     string
	s       *ssh.Session
	stdin   io.WriteCloser
	stdout  io.Reader
	stderr  limitedBuffer
	release func()
	stopCtx func() bool

	waitOnce sync.Once
	waitErr  error
}

func (st *sshStream) Stdin() io.WriteCloser { return st.stdin }
func (st *sshStream) Stdout() io.Reader     { return st.stdout }

// Wait waits for the command to end. After Close it returns what the
// command's end was reported as, or ErrConnectionLost.
func (st *sshStream) Wait() error {
	st.waitOnce.Do(func() {
		err := st.s.Wait()
		st.release()
		st.waitErr = exitError(st.cmd, err, &st.stderr)
	})
	return st.waitErr
}

// Close closes stdin and the session. The remote command sees end of input
// on stdin (a lock held by `flock LOCK cat` is released).
func (st *sshStream) Close() error {
	st.stopCtx()
	err := st.stdin.Close()
	if cerr := st.s.Close(); cerr != nil && !errors.Is(cerr, io.EOF) && err == nil {
		err = cerr
	}
	go st.Wait() // give the session slot back once the channel is gone
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return err
}

// Close closes the connection; running commands see it end.
func (t *sshTransport) Close() error {
	t.once.Do(func() { close(t.done) })
	err := t.client.Close()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// limitedBuffer keeps at most max bytes: it fails the write beyond them, or
// drops them and marks the text truncated.
type limitedBuffer struct {
	full      chan struct{} // closed at the first write beyond max, when not nil
	mu        sync.Mutex
	buf       bytes.Buffer
	max       int
	truncate  bool
	truncated bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	room := b.max - b.buf.Len()
	if len(p) <= room {
		return b.buf.Write(p)
	}
	if !b.truncate {
		if b.full != nil && !b.truncated {
			close(b.full)
		}
		b.truncated = true
		return 0, fmt.Errorf("output exceeds %d bytes", b.max)
	}
	b.buf.Write(p[:max(room, 0)])
	b.truncated = true
	return len(p), nil
}

func (b *limitedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Bytes()
}

// String is the text, trimmed, with "[truncated]" when bytes were dropped.
func (b *limitedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := strings.TrimSpace(b.buf.String())
	if b.truncated {
		s += " [truncated]"
	}
	return s
}
