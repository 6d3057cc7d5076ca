// Package sshtest runs an in-process SSH server for tests: it executes exec
// requests with the local /bin/sh and can inject faults before or after any
// command, and (Options.Steps) at any step of a transaction, as the host
// announces it on the live session (see StepFault). It is not a general
// SSH server (no shell, pty, env or forwarding).
package sshtest

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"lbc/reconcile/host"
	"lbc/schema"
)

// Fault is what the server does with one command instead of (or after)
// running it. The zero Fault runs the command normally.
type Fault struct {
	kind   faultKind
	code   int
	stderr string
	delay  time.Duration
}

type faultKind int

const (
	faultNone faultKind = iota
	faultExit
	faultCutBefore
	faultCutAfter
	faultDelay
)

var (
	// NoFault runs the command normally (the zero Fault).
	NoFault = Fault{}
	// CutBefore closes the whole TCP connection instead of running the command.
	CutBefore = Fault{kind: faultCutBefore}
	// CutAfter runs the command (its output is sent), then closes the TCP
	// connection before sending its exit status.
	CutAfter = Fault{kind: faultCutAfter}
)

// Delay accepts the command, waits d (a slow login: an overloaded host,
// a slow shell start-up), then runs it normally.
func Delay(d time.Duration) Fault {
	return Fault{kind: faultDelay, delay: d}
}

// FailExit does not run the command; the session writes stderr and exits
// with code.
func FailExit(code int, stderr string) Fault {
	return Fault{kind: faultExit, code: code, stderr: stderr}
}

// Options configures a Server.
type Options struct {
	// Hook, when set, is called before each command (possibly from several
	// goroutines at once) and says what to do with it.
	Hook func(cmd string) Fault
	// MaxSessions refuses a session channel (ssh.Prohibited, like sshd's
	// MaxSessions) when that many are already open on the connection.
	// Zero means unlimited.
	MaxSessions int
	// ExtraHostKey makes the server also hold an ECDSA P-256 host key that
	// KnownHostsFile does not list (a client that asks for ECDSA before
	// ed25519, as x/crypto/ssh does by default, gets that one).
	ExtraHostKey bool
	// KeyExchanges, when set, is the only key exchanges the server
	// accepts (x/crypto/ssh's defaults otherwise).
	KeyExchanges []string
	// LateExit delays the exit status of every command by that long after
	// the end of its output (EOF), as a busy sshd may: a client that
	// closes the session on EOF loses the status.
	LateExit time.Duration
	// Steps makes the server follow the step markers of every session
	// and run them with its tool wrappers, so that Inject can fail or cut
	// a step where it runs (see StepFault).
	Steps bool
}

// Server is a running test SSH server. It stops on t.Cleanup.
type Server struct {
	t         testing.TB
	opts      Options
	ln        net.Listener
	addr      netip.AddrPort
	hostKey   ssh.PublicKey
	config    *ssh.ServerConfig
	dir       string
	keyFile   string
	knownFile string

	wg    sync.WaitGroup
	steps *steps // Options.Steps

	mu       sync.Mutex
	closed   bool
	conns    map[net.Conn]struct{}
	procs    map[*os.Process]struct{}
	commands []string
	kex      []string // the key exchange of each public key offered
	open     int
	peak     int
	refused  int
	accepted int
}

// Start starts a server on 127.0.0.1:0 with a fresh ed25519 host key that
// accepts one fresh ed25519 client key (KeyFile) for any user name.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	s := &Server{t: t, opts: opts, dir: t.TempDir(),
		conns: map[net.Conn]struct{}{}, procs: map[*os.Process]struct{}{}}

	_, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("sshtest: host key: %v", err)
	}
	hostSigner, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		t.Fatalf("sshtest: host key: %v", err)
	}
	s.hostKey = hostSigner.PublicKey()

	clientPub, keyFile := WriteKey(t, s.dir, "id_ed25519", "")
	s.keyFile = keyFile
	clientBlob := string(clientPub.Marshal())

	s.config = &ssh.ServerConfig{
		PublicKeyCallback: func(md ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if a, ok := md.(ssh.AlgorithmsConnMetadata); ok {
				s.mu.Lock()
				s.kex = append(s.kex, a.Algorithms().KeyExchange)
				s.mu.Unlock()
			}
			if string(key.Marshal()) == clientBlob {
				return nil, nil
			}
			return nil, errors.New("sshtest: key not authorized")
		},
	}
	s.config.KeyExchanges = opts.KeyExchanges
	s.config.AddHostKey(hostSigner)
	if opts.Steps {
		if err := s.startSteps(); err != nil {
			t.Fatalf("sshtest: %v", err)
		}
	}
	if opts.ExtraHostKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatalf("sshtest: host key: %v", err)
		}
		signer, err := ssh.NewSignerFromKey(k)
		if err != nil {
			t.Fatalf("sshtest: host key: %v", err)
		}
		s.config.AddHostKey(signer)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("sshtest: listen: %v", err)
	}
	s.ln = ln
	s.addr = netip.MustParseAddrPort(ln.Addr().String())

	s.knownFile = filepath.Join(s.dir, "known_hosts")
	line := knownhosts.Line([]string{s.addr.String()}, s.hostKey) + "\n"
	if err := os.WriteFile(s.knownFile, []byte(line), 0o600); err != nil {
		t.Fatalf("sshtest: %v", err)
	}

	s.wg.Add(1)
	go s.accept(ln)
	t.Cleanup(s.stop)
	return s
}

// StopListening closes the listening socket: connecting is refused
// (connections open now go on) until Listen.
func (s *Server) StopListening() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		s.ln.Close()
		s.ln = nil
	}
}

// Listen listens again, on the same address, after StopListening.
func (s *Server) Listen() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil || s.closed {
		return
	}
	var ln net.Listener
	var err error
	for i := 0; i < 100; i++ { // the port may linger for a moment
		if ln, err = net.Listen("tcp", s.addr.String()); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		s.t.Errorf("sshtest: listen again: %v", err)
		return
	}
	s.ln = ln
	s.wg.Add(1)
	go s.accept(ln)
}

// WriteKey writes a fresh ed25519 private key in OpenSSH format to
// dir/name (mode 0600), encrypted when passphrase is not empty, and returns
// its public key and path.
func WriteKey(t testing.TB, dir, name, passphrase string) (ssh.PublicKey, string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("sshtest: client key: %v", err)
	}
	var block *pem.Block
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(priv, "")
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte(passphrase))
	}
	if err != nil {
		t.Fatalf("sshtest: client key: %v", err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatalf("sshtest: client key: %v", err)
	}
	return sshPub, path
}

// Addr is the address the server listens on.
func (s *Server) Addr() netip.AddrPort { return s.addr }

// HostKey is the server's host public key.
func (s *Server) HostKey() ssh.PublicKey { return s.hostKey }

// KnownHostsFile is a known_hosts file holding the server's host key as
// "[127.0.0.1]:port ssh-ed25519 ...".
func (s *Server) KnownHostsFile() string { return s.knownFile }

// KeyFile is the unencrypted private key the server accepts.
func (s *Server) KeyFile() string { return s.keyFile }

// Device returns a device that points at the server (address, port and the
// current user name); its other fields are left for the test to fill.
func (s *Server) Device(name string) *schema.Device {
	userName := "root"
	if u, err := user.Current(); err == nil {
		userName = u.Username
	}
	return &schema.Device{
		Name:    name,
		Address: s.addr.Addr().String(),
		SSH:     schema.SSH{User: userName, Port: int(s.addr.Port())},
	}
}

// Commands returns every command requested so far, in arrival order,
// including those a Hook failed or cut.
func (s *Server) Commands() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.commands...)
}

// KeyExchanges returns the key exchange negotiated for each public key a
// client offered, in order.
func (s *Server) KeyExchanges() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.kex...)
}

// Connections is the number of TCP connections accepted so far.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}

// Sessions is the number of session channels open now.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.open
}

// PeakSessions is the largest number of session channels open at once.
func (s *Server) PeakSessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

// Refused is the number of session channels refused for MaxSessions.
func (s *Server) Refused() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refused
}

// CutAll closes every open TCP connection (new ones are still accepted).
func (s *Server) CutAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}

func (s *Server) stop() {
	s.StopListening()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.CutAll()
	s.mu.Lock()
	for p := range s.procs {
		syscall.Kill(-p.Pid, syscall.SIGKILL)
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.t.Errorf("sshtest: server goroutines still running 10s after stop")
	}
}

func (s *Server) accept(ln net.Listener) {
	defer s.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.accepted++
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(c)
	}
}

func (s *Server) serveConn(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		c.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	sc, chans, reqs, err := ssh.NewServerConn(c, s.config)
	if err != nil {
		return
	}
	c.SetDeadline(time.Time{})
	defer sc.Close()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ssh.DiscardRequests(reqs)
	}()

	var mu sync.Mutex // guards open on this connection
	open := 0
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "only session channels")
			continue
		}
		mu.Lock()
		if s.opts.MaxSessions > 0 && open >= s.opts.MaxSessions {
			mu.Unlock()
			s.mu.Lock()
			s.refused++
			s.mu.Unlock()
			nc.Reject(ssh.Prohibited, "open failed")
			continue
		}
		open++
		mu.Unlock()
		ch, chReqs, err := nc.Accept()
		if err != nil {
			mu.Lock()
			open--
			mu.Unlock()
			continue
		}
		s.mu.Lock()
		s.open++
		s.peak = max(s.peak, s.open)
		s.mu.Unlock()
		// A session stops counting when the server sends its close (the
		// client cannot reuse the slot before it sees that close) or, if it
		// never does, when the channel is gone.
		ss := &session{ch: ch}
		ss.close = sync.OnceFunc(func() {
			s.mu.Lock()
			s.open--
			s.mu.Unlock()
			mu.Lock()
			open--
			mu.Unlock()
			ch.Close()
		})
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveSession(c, ss, chReqs)
			ss.close()
		}()
	}
}

// session is one session channel and the process it runs, if any.
type session struct {
	ch    ssh.Channel
	close func() // stop counting the session, close the channel
	mu    sync.Mutex
	proc  *os.Process
}

func (ss *session) signal(sig syscall.Signal) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.proc != nil {
		syscall.Kill(-ss.proc.Pid, sig)
	}
}

var signals = map[string]syscall.Signal{
	"HUP": syscall.SIGHUP, "INT": syscall.SIGINT, "KILL": syscall.SIGKILL,
	"TERM": syscall.SIGTERM, "QUIT": syscall.SIGQUIT, "USR1": syscall.SIGUSR1,
	"USR2": syscall.SIGUSR2, "PIPE": syscall.SIGPIPE, "ALRM": syscall.SIGALRM,
}

func (s *Server) serveSession(conn net.Conn, ss *session, reqs <-chan *ssh.Request) {
	var done chan struct{}
	// Serve requests until the client closes the channel or the connection
	// dies; the exec goroutine closes the channel when its command ends.
	for req := range reqs {
		switch req.Type {
		case "exec":
			var p struct{ Command string }
			if done != nil || ssh.Unmarshal(req.Payload, &p) != nil {
				req.Reply(false, nil)
				continue
			}
			done = make(chan struct{})
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer close(done)
				s.exec(conn, req, ss, p.Command)
			}()
		case "signal":
			var p struct{ Signal string }
			if ssh.Unmarshal(req.Payload, &p) == nil {
				if sig, ok := signals[p.Signal]; ok {
					ss.signal(sig)
				}
			}
			if req.WantReply {
				req.Reply(false, nil)
			}
		default: // env, pty-req, shell, subsystem, ...
			if req.WantReply {
				req.Reply(false, nil)
			}
		}
	}
	if done != nil {
		<-done
	}
}

func (s *Server) exec(conn net.Conn, req *ssh.Request, ss *session, cmdline string) {
	ch := ss.ch
	s.mu.Lock()
	s.commands = append(s.commands, cmdline)
	s.mu.Unlock()
	var f Fault
	if s.opts.Hook != nil {
		f = s.opts.Hook(cmdline)
	}
	if s.steps != nil {
		switch a, msg := s.steps.commandFault(cmdline); a {
		case Fail:
			f = FailExit(1, msg)
		case Cut:
			f = CutBefore
		}
	}
	if f.kind == faultCutBefore {
		conn.Close()
		return
	}
	req.Reply(true, nil)
	if f.kind == faultDelay {
		time.Sleep(f.delay)
	}
	if f.kind == faultExit {
		io.WriteString(ch.Stderr(), f.stderr)
		sendExit(ch, f.code, "")
		ss.close()
		return
	}

	cmd := exec.Command("/bin/sh", "-c", cmdline)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var sess *stepSession
	if s.steps != nil {
		var env []string
		var err error
		if sess, env, err = s.newStepSession(conn, cmdline); err != nil {
			io.WriteString(ch.Stderr(), err.Error()+"\n")
			sendExit(ch, 127, "")
			ss.close()
			return
		}
		defer sess.close()
		cmd.Env = env
	}
	// stdout is a pipe of our own, forwarded line by line (so that a cut
	// at a step marker comes right after it) and, like sshd, closed when
	// the channel is gone: the host's later writes fail with EPIPE.
	outR, outW, err := os.Pipe()
	if err != nil {
		io.WriteString(ch.Stderr(), "sshtest: "+err.Error()+"\n")
		sendExit(ch, 127, "")
		ss.close()
		return
	}
	cmd.Stdout = outW
	cmd.Stderr = ch.Stderr()
	cmd.WaitDelay = 2 * time.Second
	stdin, err := cmd.StdinPipe()
	if err == nil {
		ss.mu.Lock()
		err = cmd.Start()
		if err == nil {
			ss.proc = cmd.Process
			s.mu.Lock()
			s.procs[cmd.Process] = struct{}{}
			// A command whose exec request came in before the server
			// stopped may start after stop killed every process it
			// knew (a cut connection's `sleep 30` then outlived the
			// test): kill it here, under the same lock.
			if s.closed {
				syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			}
			s.mu.Unlock()
		}
		ss.mu.Unlock()
	}
	outW.Close()
	if err != nil {
		outR.Close()
		io.WriteString(ch.Stderr(), "sshtest: "+err.Error()+"\n")
		sendExit(ch, 127, "")
		ss.close()
		return
	}
	outDone := make(chan struct{})
	go func() {
		defer close(outDone)
		copyOut(ch, outR, sess)
	}()
	// Copy the channel to the command's stdin; this ends when the client
	// sends EOF or the channel closes (after the exit status below).
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.copyIn(stdin, ch, sess)
		stdin.Close()
	}()
	err = cmd.Wait()
	ss.mu.Lock()
	ss.proc = nil
	ss.mu.Unlock()
	s.mu.Lock()
	delete(s.procs, cmd.Process)
	s.mu.Unlock()
	// A process the command left behind may hold stdout open: bounded.
	select {
	case <-outDone:
	case <-time.After(2 * time.Second):
		outR.Close()
		<-outDone
	}

	if f.kind == faultCutAfter {
		conn.Close()
		return
	}
	code, sig := 0, ""
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			for name, n := range signals {
				if n == ws.Signal() {
					sig = name
				}
			}
			if sig == "" {
				code = 128 + int(ws.Signal())
			}
		}
	} else if err != nil {
		code = 255
	}
	ch.CloseWrite()
	if s.opts.LateExit > 0 {
		time.Sleep(s.opts.LateExit)
	}
	sendExit(ch, code, sig)
	ss.close()
}

// sendExit sends exit-signal when sig is set, else exit-status.
func sendExit(ch ssh.Channel, code int, sig string) {
	if sig != "" {
		ch.SendRequest("exit-signal", false, ssh.Marshal(struct {
			Signal     string
			CoreDumped bool
			Error      string
			Lang       string
		}{Signal: sig}))
		return
	}
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(code))
	ch.SendRequest("exit-status", false, b[:])
}

// copyOut forwards the command's stdout to the channel, a line at a time,
// noting the step markers it carries. When the channel is gone it closes
// the pipe, as sshd does.
func copyOut(ch ssh.Channel, r *os.File, sess *stepSession) {
	defer r.Close()
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			if _, werr := ch.Write(line); werr != nil {
				if sess != nil {
					sess.stopped()
				}
				return
			}
			if sess != nil && err == nil {
				if step, ok := host.ParseStep(string(line[:len(line)-1])); ok {
					sess.saw(step)
				}
			}
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			if sess != nil {
				sess.stopped()
			}
			return
		}
	}
}

// copyIn copies the channel to the command's stdin, recording it and, for
// a CutInTransit fault, cutting the connection before the text that
// starts its step.
func (s *Server) copyIn(stdin io.Writer, ch ssh.Channel, sess *stepSession) {
	if sess == nil {
		io.Copy(stdin, ch)
		return
	}
	var held []byte // the tail that may be the start of the text
	buf := make([]byte, 32<<10)
	for {
		n, err := ch.Read(buf)
		if n > 0 {
			st := s.steps
			st.mu.Lock()
			st.input.Write(buf[:n])
			st.mu.Unlock()
			data := append(held, buf[:n]...)
			held = nil
			if f, text := sess.inTransit(); f != nil {
				if i := strings.Index(string(data), text); i >= 0 {
					st.mu.Lock()
					f.starts++
					act := f.starts == max(f.Nth, 1) && st.fire(f)
					st.mu.Unlock()
					if act {
						stdin.Write(data[:i])
						sess.cut(f.Refuse)
						return
					}
				} else {
					// Hold back the longest tail that begins the text.
					for k := min(len(text)-1, len(data)); k > 0; k-- {
						if strings.HasPrefix(text, string(data[len(data)-k:])) {
							held = append([]byte(nil), data[len(data)-k:]...)
							data = data[:len(data)-k]
							break
						}
					}
				}
			}
			if _, werr := stdin.Write(data); werr != nil {
				return
			}
		}
		if err != nil {
			if len(held) > 0 {
				stdin.Write(held)
			}
			return
		}
	}
}
