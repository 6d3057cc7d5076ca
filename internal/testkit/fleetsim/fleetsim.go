// Package fleetsim simulates a fleet of lbc hosts in one process, for
// measuring the controller at a scale that network namespaces with real
// sshd and HAProxy do not reach on a small machine. It is honest about
// what it is:
//
//   - each host is an SSH server of its own on a loopback port (one
//     ed25519 host key for all, listed per port in known_hosts), speaking
//     the real SSH protocol (x/crypto/ssh), and a directory;
//   - every command lbc sends runs, as sent, in the real /bin/sh, in the
//     host's directory, with the real flock, base64, mv and the rest;
//   - HAProxy is not run. Three stand-ins in the fleet's bin/ take its
//     place: the device's check command is the shell's `test -s` (the file
//     exists and is not empty: no process); its reload command is
//     bin/reload (one sh and one awk: it writes what lbc's verify reads
//     from the stats socket, a new Pid, the config's description and a
//     listener row per bind); nc.openbsd (one sh, and a cat for `show
//     info`) answers the stats socket from that file. ip(8) is bin/ip (one
//     sh; a grep and a mv to change an address), which keeps each host's
//     addresses in a file: no address is added to this machine.
//
// So the controller's work (compile, SSH, scripts, parsing, plan, views)
// is real, and a host's is the same shell script lbc runs everywhere,
// minus HAProxy's check and reload (0.04-0.12 s of a real host's CPU each,
// DESIGN.md).
package fleetsim

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

// Fleet is a running simulated fleet.
type Fleet struct {
	Dir        string // bin/, h<i>/ (each host's directory), keys, known_hosts
	KeyFile    string
	KnownHosts string
	Hosts      []Host

	config *ssh.ServerConfig
	bin    string
	lns    []net.Listener
	wg     sync.WaitGroup

	mu                 sync.Mutex
	closed             bool
	conns              map[net.Conn]struct{}
	open, peak, total  int
	sessions, peakSess int
	commands           int
	dials              map[string]int // connections accepted, by host name
}

// Host is one simulated host.
type Host struct {
	Name string
	Port int
	Dir  string
}

// Stats are the fleet's counters.
type Stats struct {
	Connections     int // open now
	PeakConnections int // most open at once
	TotalConns      int
	PeakSessions    int
	Commands        int
}

// Start makes dir (which must not exist or be empty) and starts n hosts.
func Start(dir string, n int) (*Fleet, error) {
	if n < 1 || n > 20000 {
		return nil, fmt.Errorf("fleetsim: %d hosts: want 1 to 20000", n)
	}
	dir, err := filepath.Abs(dir) // the devices' paths must be absolute
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f := &Fleet{Dir: dir, bin: filepath.Join(dir, "bin"), conns: map[net.Conn]struct{}{}, dials: map[string]int{}}
	if err := f.writeBin(); err != nil {
		return nil, err
	}
	_, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	hostSigner, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		return nil, err
	}
	clientPub, clientPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(clientPriv, "")
	if err != nil {
		return nil, err
	}
	f.KeyFile = filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(f.KeyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, err
	}
	sshClientPub, err := ssh.NewPublicKey(clientPub)
	if err != nil {
		return nil, err
	}
	want := string(sshClientPub.Marshal())
	f.config = &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			if string(k.Marshal()) == want {
				return nil, nil
			}
			return nil, errors.New("unknown key")
		},
	}
	f.config.AddHostKey(hostSigner)
	var kh strings.Builder
	for i := 1; i <= n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("fleetsim: listen: %w", err)
		}
		f.lns = append(f.lns, ln)
		h := Host{Name: fmt.Sprintf("sim-%05d", i), Port: ln.Addr().(*net.TCPAddr).Port, Dir: filepath.Join(dir, fmt.Sprintf("h%05d", i))}
		for _, d := range []string{h.Dir, filepath.Join(h.Dir, "state")} {
			if err := os.MkdirAll(d, 0o700); err != nil {
				f.Close()
				return nil, err
			}
		}
		f.Hosts = append(f.Hosts, h)
		fmt.Fprintf(&kh, "[127.0.0.1]:%d %s", h.Port, ssh.MarshalAuthorizedKey(hostSigner.PublicKey()))
		f.wg.Add(1)
		go f.accept(ln, h)
	}
	f.KnownHosts = filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(f.KnownHosts, []byte(kh.String()), 0o600); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Close stops every host and waits for their commands.
func (f *Fleet) Close() {
	f.mu.Lock()
	f.closed = true
	for _, ln := range f.lns {
		ln.Close()
	}
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// Stats returns the counters.
func (f *Fleet) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return Stats{Connections: f.open, PeakConnections: f.peak, TotalConns: f.total, PeakSessions: f.peakSess, Commands: f.commands}
}

// ResetPeak returns the counters and starts the peaks again from now.
func (f *Fleet) ResetPeak() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := Stats{Connections: f.open, PeakConnections: f.peak, TotalConns: f.total, PeakSessions: f.peakSess, Commands: f.commands}
	f.peak, f.peakSess = f.open, f.sessions
	return st
}

// Dials returns, by host name, the connections each host accepted since
// the last call (a host that accepted none is left out), and starts
// counting again from zero.
func (f *Fleet) Dials() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.dials
	f.dials = map[string]int{}
	return d
}

// DevicesCUE is a CUE file (package spec) declaring every host as a device.
func (f *Fleet) DevicesCUE(vipNetwork string) string {
	q := strconv.Quote
	var b strings.Builder
	b.WriteString("// Devices of a simulated fleet (internal/testkit/fleetsim).\npackage spec\n\n")
	for i, h := range f.Hosts {
		zone := "az-a"
		if i%2 == 1 {
			zone = "az-b"
		}
		fmt.Fprintf(&b, "devices: %s: {\n\taddress: \"127.0.0.1\"\n\tssh: {user: \"root\", port: %d}\n\tzone: %q\n", q(h.Name), h.Port, zone)
		b.WriteString("\tcapacity: {balancers: 100}\n\tvipInterface: \"sim0\"\n")
		fmt.Fprintf(&b, "\tvipNetworks: [%s]\n", q(vipNetwork))
		cfg := filepath.Join(h.Dir, "haproxy.cfg")
		sock := filepath.Join(h.Dir, "state", "haproxy.sock")
		fmt.Fprintf(&b, "\thaproxy: {\n\t\tconfig: %s\n\t\treload: %s\n\t\tcheck: \"test -s\"\n\t}\n", q(cfg), q("sh "+filepath.Join(f.bin, "reload")+" "+cfg+" "+sock))
		fmt.Fprintf(&b, "\tstateDir: %s\n}\n\n", q(filepath.Join(h.Dir, "state")))
	}
	return b.String()
}

func (f *Fleet) accept(ln net.Listener, h Host) {
	defer f.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		if f.closed {
			f.mu.Unlock()
			c.Close()
			return
		}
		f.conns[c] = struct{}{}
		f.open++
		f.total++
		f.dials[h.Name]++
		f.peak = max(f.peak, f.open)
		f.wg.Add(1)
		f.mu.Unlock()
		go f.serveConn(c, h)
	}
}

func (f *Fleet) serveConn(c net.Conn, h Host) {
	defer f.wg.Done()
	// The connection stops counting as open when it ends (the client
	// closed it, or it failed), not when this server has also waited for
	// the processes its sessions started: under load that wait kept a
	// closed connection counted while the client's next one opened.
	closed := sync.OnceFunc(func() {
		c.Close()
		f.mu.Lock()
		delete(f.conns, c)
		f.open--
		f.mu.Unlock()
	})
	defer closed()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	sc, chans, reqs, err := ssh.NewServerConn(c, f.config)
	if err != nil {
		return
	}
	c.SetDeadline(time.Time{})
	defer sc.Close()
	go ssh.DiscardRequests(reqs)
	var wg sync.WaitGroup
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "only session channels")
			continue
		}
		ch, chReqs, err := nc.Accept()
		if err != nil {
			continue
		}
		f.mu.Lock()
		f.sessions++
		f.peakSess = max(f.peakSess, f.sessions)
		f.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.serveSession(ch, chReqs, h)
			ch.Close()
			f.mu.Lock()
			f.sessions--
			f.mu.Unlock()
		}()
	}
	closed() // chans ends with the connection
	wg.Wait()
}

func (f *Fleet) serveSession(ch ssh.Channel, reqs <-chan *ssh.Request, h Host) {
	var done chan struct{}
	var proc struct {
		sync.Mutex
		p *os.Process
	}
	for req := range reqs {
		switch req.Type {
		case "exec":
			var p struct{ Command string }
			if done != nil || ssh.Unmarshal(req.Payload, &p) != nil {
				req.Reply(false, nil)
				continue
			}
			req.Reply(true, nil)
			done = make(chan struct{})
			go func() {
				defer close(done)
				f.exec(ch, h, p.Command, func(pr *os.Process) { proc.Lock(); proc.p = pr; proc.Unlock() })
				ch.Close() // after the exit status: the client's Wait returns
			}()
		case "signal":
			proc.Lock()
			if proc.p != nil {
				syscall.Kill(-proc.p.Pid, syscall.SIGTERM)
			}
			proc.Unlock()
			if req.WantReply {
				req.Reply(false, nil)
			}
		default:
			if req.WantReply {
				req.Reply(false, nil)
			}
		}
	}
	if done != nil {
		<-done
	}
}

func (f *Fleet) exec(ch ssh.Channel, h Host, cmdline string, started func(*os.Process)) {
	f.mu.Lock()
	f.commands++
	f.mu.Unlock()
	cmd := exec.Command("/bin/sh", "-c", cmdline)
	cmd.Dir = h.Dir
	cmd.Env = []string{"PATH=" + f.bin + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + h.Dir, "SIM_HOST=" + h.Dir, "LC_ALL=C"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout = ch
	cmd.Stderr = ch.Stderr()
	cmd.WaitDelay = 2 * time.Second
	stdin, err := cmd.StdinPipe()
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		io.WriteString(ch.Stderr(), "fleetsim: "+err.Error()+"\n")
		sendExit(ch, 127)
		return
	}
	started(cmd.Process)
	go func() {
		io.Copy(stdin, ch)
		stdin.Close()
	}()
	err = cmd.Wait()
	started(nil)
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
		if code < 0 {
			code = 255
		}
	} else if err != nil {
		code = 255
	}
	ch.CloseWrite()
	sendExit(ch, code)
}

func sendExit(ch ssh.Channel, code int) {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(code))
	ch.SendRequest("exit-status", false, b[:])
}

// The stand-ins (see the package comment).
var standIns = map[string]string{
	// reload CONFIG SOCK: what a reload leaves for verify.
	"reload": `#!/bin/sh
cfg=$1 sock=$2
n=100; [ -f "$sock.pid" ] && read -r n < "$sock.pid"; n=$((n+1)); echo "$n" > "$sock.pid"
awk -v pid="$n" '
/^[ \t]+description / { if (d == "") d = $2 }
/^[ \t]+bind / { a = $2; sub(/^ipv[46]@/, "", a); b[++nb] = a }
END { print "Pid: " pid; print "description: " d; print ""; for (i = 1; i <= nb; i++) print "fe,l" i "," b[i] "," }
' "$cfg" > "$sock.info.new" && mv -f "$sock.info.new" "$sock.info"
`,
	// nc.openbsd -N -U -w 2 SOCK: HAProxy's stats socket, from the file reload wrote.
	"nc.openbsd": `#!/bin/sh
for a; do sock=$a; done
[ -f "$sock.info" ] || exit 1
IFS= read -r q
case $q in
*"show info"*) exec cat "$sock.info" ;;
*"show servers state"*) printf '1\n# be_id be_name srv_id srv_name srv_addr srv_op_state\n' ;;
esac
`,
	// ip: -j addr show; addr replace A/P dev I; addr del A/P dev I
	"ip": `#!/bin/sh
f=$SIM_HOST/addrs
case "$1 $2" in
"-j addr")
	printf '[{"ifname":"lo","addr_info":[{"local":"127.0.0.1","prefixlen":8}]}'
	if [ -s "$f" ]; then while read -r a p i; do printf ',{"ifname":"%s","addr_info":[{"local":"%s","prefixlen":%s}]}' "$i" "$a" "$p"; done < "$f"; fi
	echo ']' ;;
"addr replace")
	a=${3%/*} p=${3#*/}
	{ [ -f "$f" ] && grep -v "^$a " "$f"; echo "$a $p $5"; } > "$f.new"; mv -f "$f.new" "$f" ;;
"addr del")
	a=${3%/*}
	[ -f "$f" ] && grep -q "^$a " "$f" || exit 2
	grep -v "^$a " "$f" > "$f.new"; mv -f "$f.new" "$f" ;;
*) echo "fleetsim ip: not simulated: $*" >&2; exit 1 ;;
esac
`,
}

func (f *Fleet) writeBin() error {
	if err := os.MkdirAll(f.bin, 0o755); err != nil {
		return err
	}
	for name, body := range standIns {
		if err := os.WriteFile(filepath.Join(f.bin, name), []byte(body), 0o755); err != nil {
			return err
		}
	}
	return nil
}
