package sshtest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"lbc/reconcile/host"
)

// Step faults. A transaction on a host is a sequence of named steps, each
// announced by the marker line "==lbc step NAME" that the host prints on
// the session's stdout before the step's body runs. With Options.Steps the
// server follows those markers on the live session and injects a fault at
// a chosen step, on the host, where the step runs:
//
//   - Every session runs with a PATH whose first directory holds wrappers
//     of the tools a step runs (mv, cp, rm, base64, cat, haproxy, nc, the
//     test's own fake ip and reload with WrapTool, ...). A wrapper asks the
//     server before and after the real command (through two FIFOs of the
//     session): the server answers "fail" to the command it is told to
//     fail (the wrapper prints "sshtest: injected failure ..." on stderr
//     and exits 1 without running it), or cuts the connection after it.
//   - The lock holder's shell (`sh`, found on PATH) is bash with the echo
//     and printf builtins disabled, so that the markers, and the writes
//     made with printf, are commands too: a step made only of shell
//     builtins (keep-last-good, arm) still has a command that can fail,
//     and the host waits at each marker until the server has seen it on
//     the session's stdout and acted (cut, paused). Fault decisions thus
//     come from the markers as the controller receives them, not from
//     the script's text, and nothing in the product's code is there for
//     the test.
//
// A cut closes the TCP connection as a dead network would: the server
// stops forwarding and closes the process's stdout (later writes fail with
// EPIPE, as with sshd) and its stdin (the holder's shell reads EOF); the
// processes go on.

// Action is what a StepFault does.
type Action int

const (
	// Fail makes a command of the step fail instead of running.
	Fail Action = iota + 1
	// Cut cuts the connection at the step's marker: the controller has
	// received the marker and nothing after it; the host then runs the
	// step.
	Cut
	// CutAfterCommand cuts the connection right after a command of the step
	// ran (in the middle of the step).
	CutAfterCommand
	// CutInTransit cuts the connection while a script is on its way to
	// the host: the host receives its text up to the line that starts
	// the step, and nothing after it.
	CutInTransit
	// Pause calls Then at the step's marker; the host waits until it
	// returns.
	Pause
)

// StepFault is one fault at one step.
type StepFault struct {
	Step   string // the step, as its marker names it
	Nth    int    // the Nth time the step starts since Inject (its marker, or its text for CutInTransit); 0 means 1
	Action Action
	// Tool, for Fail and CutAfterCommand, is the base name of the command;
	// "" means any command the server follows.
	Tool string
	// Count, for Fail and CutAfterCommand, is which of those commands in the
	// step (1: the first); 0 means 1.
	Count int
	// Refuse, for the cuts, makes the server refuse new connections
	// (nothing listens) from the cut until Listen.
	Refuse bool
	// Where, when set, limits the fault to sessions whose command
	// contains it (a device's state directory, say).
	Where string
	// Command, when set, puts a Fail or Cut on the exec request itself
	// (the lock, which comes before any marker): the Nth request whose
	// command contains Command is not run; Fail exits 1 saying so, Cut
	// cuts the connection. Step is then only the fault's name.
	Command string
	// Then is what Pause runs.
	Then func()
}

func (f StepFault) String() string {
	n := max(f.Nth, 1)
	step := f.Step
	if n > 1 {
		step += "#" + strconv.Itoa(n)
	}
	cmd := f.Tool
	if cmd == "" {
		cmd = "a command"
	}
	if c := max(f.Count, 1); c > 1 {
		cmd += " #" + strconv.Itoa(c)
	}
	if f.Command != "" {
		cmd = "the command"
	}
	switch f.Action {
	case Fail:
		return "failed " + cmd + " at " + step
	case Cut:
		return "cut at " + step
	case CutAfterCommand:
		return "cut after " + cmd + " at " + step
	case CutInTransit:
		return "cut in transit before " + step
	case Pause:
		return "paused at " + step
	}
	return "unknown fault at " + step
}

// faultState is an injected fault and what it has seen.
type faultState struct {
	StepFault
	starts int // times its step started (on sessions it applies to)
	cmds   int // commands counted in the step where it is active
	fired  bool
}

// steps is the server's step-fault state.
type steps struct {
	toolDir, ctlDir, bashEnv string

	mu     sync.Mutex
	faults []*faultState
	fired  []StepFault
	off    bool // injection disabled: faults are followed but never act
	nextID int
	input  strings.Builder
}

// tools the server wraps, found on PATH when the server starts.
var wrappedTools = []string{"mv", "cp", "rm", "ln", "mkdir", "cat", "base64", "haproxy", "nc.openbsd", "socat", "keepalived"}

// startSteps lays out the wrappers.
func (s *Server) startSteps() error {
	st := &steps{toolDir: filepath.Join(s.dir, "tools"), ctlDir: filepath.Join(s.dir, "ctl")}
	for _, d := range []string{st.toolDir, st.ctlDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		return fmt.Errorf("bash, the lock holder's shell in step tests: %w", err)
	}
	st.bashEnv = filepath.Join(s.dir, "bash_env")
	if err := os.WriteFile(st.bashEnv, []byte("enable -n echo printf\n"), 0o644); err != nil {
		return err
	}
	for _, name := range []string{"echo", "printf"} {
		real, err := exec.LookPath(name)
		if err != nil {
			return err
		}
		if err := WrapTool(filepath.Join(st.toolDir, name), name, real); err != nil {
			return err
		}
	}
	// sh: asks before it runs (a rollback runs `sh txn.sh`), then is bash.
	sh := "#!/bin/sh\n" + askFunc + askBefore("sh") + "BASH_ENV=" + quote(st.bashEnv) + " exec " + quote(bash) + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(st.toolDir, "sh"), []byte(sh), 0o755); err != nil {
		return err
	}
	for _, name := range wrappedTools {
		real, err := exec.LookPath(name)
		if err != nil {
			continue // not installed: nothing to wrap
		}
		if err := WrapTool(filepath.Join(st.toolDir, name), name, real); err != nil {
			return err
		}
	}
	s.steps = st
	return nil
}

// quote single-quotes s for sh.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// askFunc is the start of every wrapper: c, the session's FIFOs' base
// path, and sshtest_ask REQUEST, which sends a request and sets a to the
// server's answer.
//
// The wrapper opens the reply FIFO (read-write) before it sends the
// request and keeps it open until it has read the answer. A wrapper that
// opened it read-only after its request lost answers: its open could
// succeed on the server's end of the answer before (read already, about
// to be closed) and read end-of-file, taken for "ok"; or the server's
// open could succeed on the reader of that answer, which then closed,
// and the write failed. A failed command then ran, or a marker's wrapper
// went on before the server acted at it (about one fault-matrix case in
// 14). Held open from before the request, the FIFO has this wrapper as
// its reader when the answer is written, and it never reads end-of-file.
const askFunc = `c="$SSHTEST_CTL/$SSHTEST_SESSION"
sshtest_ask() { a=; { echo "$1" > "$c.req"; IFS= read -r a; } <> "$c.rep"; }
`

// askBefore is the wrapper code that asks the server about command name
// before it runs, and fails when told to. Commands that a wrapped command
// runs itself are not asked about (SSHTEST_IN).
func askBefore(name string) string {
	return `if [ -z "$SSHTEST_IN" ] && [ -p "$c.req" ]; then
  sshtest_ask "b ` + name + `"
  case $a in "fail "*) echo "sshtest: ${a#fail }" >&2; exit 1;; esac
fi
`
}

// WrapTool writes at path an executable that runs real (with the same
// arguments) as command name, asking the server before and after it as
// a step runs it (see Action). A test host's own fake tools (ip, reload)
// are wrapped with it so that faults can fail them or cut after them.
func WrapTool(path, name, real string) error {
	marker := host.StepMarker("")
	var b strings.Builder
	b.WriteString("#!/bin/sh\n# sshtest wrapper of " + name + "\n" + askFunc)
	if name == "echo" {
		// A marker: printed, then reported; the server acts once it has
		// seen it on the session's stdout, and the host waits for that.
		b.WriteString(`case "$*" in ` + quote(marker) + `*) if [ -z "$SSHTEST_IN" ] && [ -p "$c.req" ]; then
  ` + quote(real) + ` "$@"; rc=$?; m="$*"; sshtest_ask "m ${m#` + quote(marker) + `}"; exit $rc
fi;; esac
`)
	}
	b.WriteString(askBefore(name))
	b.WriteString(`if [ -n "$SSHTEST_IN" ] || [ ! -p "$c.req" ]; then exec ` + quote(real) + " \"$@\"; fi\n")
	b.WriteString("SSHTEST_IN=1 " + quote(real) + " \"$@\"\nrc=$?\n")
	b.WriteString(`sshtest_ask "a ` + name + ` $rc"` + "\nexit $rc\n")
	return os.WriteFile(path, []byte(b.String()), 0o755)
}

// Inject replaces the step faults (and forgets what fired): the counts
// of Nth start from now.
func (s *Server) Inject(faults ...StepFault) {
	st := s.mustSteps()
	st.mu.Lock()
	defer st.mu.Unlock()
	st.faults = nil
	for _, f := range faults {
		st.faults = append(st.faults, &faultState{StepFault: f})
	}
	st.fired = nil
}

// SetInjection turns injection on (the default) or off. Off, faults are
// followed as on but none acts or fires: a test run so must report that
// no fault fired.
func (s *Server) SetInjection(on bool) {
	st := s.mustSteps()
	st.mu.Lock()
	st.off = !on
	st.mu.Unlock()
}

// Fired returns the faults that acted, in order.
func (s *Server) Fired() []StepFault {
	st := s.mustSteps()
	st.mu.Lock()
	defer st.mu.Unlock()
	return append([]StepFault(nil), st.fired...)
}

// Input returns everything sessions received on their stdin (the scripts
// a lock holder was sent), in order.
func (s *Server) Input() string {
	st := s.mustSteps()
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.input.String()
}

func (s *Server) mustSteps() *steps {
	if s.steps == nil {
		s.t.Fatal("sshtest: step faults need Options.Steps")
	}
	return s.steps
}

// fire records f as fired and reports whether it may act (injection on,
// not fired yet). Call with st.mu held.
func (st *steps) fire(f *faultState) bool {
	if st.off || f.fired {
		return false
	}
	f.fired = true
	st.fired = append(st.fired, f.StepFault)
	return true
}

// commandFault returns the action of the Command fault that takes the
// exec request cmd, if any, and the message of a Fail.
func (st *steps) commandFault(cmd string) (Action, string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, f := range st.faults {
		if f.Command == "" || !strings.Contains(cmd, f.Command) || f.Where != "" && !strings.Contains(cmd, f.Where) {
			continue
		}
		f.starts++
		if f.starts == max(f.Nth, 1) && st.fire(f) {
			return f.Action, "sshtest: injected failure of the command at step " + f.Step + "\n"
		}
	}
	return 0, ""
}

// stepSession is one exec session followed for step faults.
type stepSession struct {
	s    *Server
	id   int
	cmd  string
	conn net.Conn

	mu      sync.Mutex
	seen    map[string]int // markers forwarded on stdout, by step
	asked   map[string]int // markers the host reported, by step
	dead    bool           // stdout no longer forwarded (cut)
	step    string         // the step running now
	active  []*faultState  // the faults of the step running now
	cutOnce sync.Once

	req     *os.File
	reqPath string
	repPath string
	done    chan struct{}
}

// newStepSession makes the session's FIFOs and starts answering them.
func (s *Server) newStepSession(conn net.Conn, cmd string) (*stepSession, []string, error) {
	st := s.steps
	st.mu.Lock()
	st.nextID++
	id := st.nextID
	st.mu.Unlock()
	ss := &stepSession{s: s, id: id, cmd: cmd, conn: conn, seen: map[string]int{}, asked: map[string]int{}, done: make(chan struct{})}
	base := filepath.Join(st.ctlDir, strconv.Itoa(id))
	ss.reqPath, ss.repPath = base+".req", base+".rep"
	for _, p := range []string{ss.reqPath, ss.repPath} {
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			return nil, nil, fmt.Errorf("sshtest: mkfifo: %w", err)
		}
	}
	// O_RDWR: the server's end never sees EOF between two wrappers.
	req, err := os.OpenFile(ss.reqPath, os.O_RDWR, 0)
	if err != nil {
		return nil, nil, err
	}
	ss.req = req
	go ss.serve()
	env := append(os.Environ(),
		"PATH="+st.toolDir+":"+os.Getenv("PATH"),
		"SSHTEST_CTL="+st.ctlDir, "SSHTEST_SESSION="+strconv.Itoa(id), "SSHTEST_IN=")
	return ss, env, nil
}

// close stops answering and removes the FIFOs.
func (ss *stepSession) close() {
	ss.req.Close()
	<-ss.done
	os.Remove(ss.reqPath)
	os.Remove(ss.repPath)
}

func (ss *stepSession) serve() {
	defer close(ss.done)
	sc := bufio.NewScanner(ss.req)
	for sc.Scan() {
		reply := ss.handle(sc.Text())
		ss.reply(reply)
	}
}

// reply writes one line to the reply FIFO once the wrapper has opened it
// (bounded: a wrapper killed meanwhile never does).
func (ss *stepSession) reply(line string) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		f, err := os.OpenFile(ss.repPath, os.O_WRONLY|syscall.O_NONBLOCK, 0)
		if errors.Is(err, syscall.ENXIO) {
			time.Sleep(200 * time.Microsecond)
			continue
		}
		if err != nil {
			return
		}
		f.WriteString(line + "\n")
		if replyLinger > 0 {
			time.Sleep(replyLinger)
		}
		f.Close()
		return
	}
}

// replyLinger keeps the server's end of the reply FIFO open that long
// after each answer (tests of the wrappers' protocol: the window in
// which a wrapper's open can meet the end of the answer before).
var replyLinger time.Duration

func (ss *stepSession) applies(f *faultState) bool {
	return f.Where == "" || strings.Contains(ss.cmd, f.Where)
}

// handle answers one wrapper request: "m STEP" (a marker printed),
// "b TOOL" (before a command), "a TOOL RC" (after it).
func (ss *stepSession) handle(line string) string {
	kind, arg, _ := strings.Cut(line, " ")
	st := ss.s.steps

	switch kind {
	case "m":
		step := arg
		ss.waitSeen(step)
		st.mu.Lock()
		ss.mu.Lock()
		ss.step = step
		ss.active = ss.active[:0]
		ss.mu.Unlock()
		var pause []func()
		for _, f := range st.faults {
			if f.Step != step || f.Action == CutInTransit || f.Command != "" || !ss.applies(f) {
				continue
			}
			f.starts++
			if f.starts != max(f.Nth, 1) {
				continue
			}
			switch f.Action {
			case Cut:
				if st.fire(f) {
					ss.cut(f.Refuse)
				}
			case Pause:
				if st.fire(f) && f.Then != nil {
					pause = append(pause, f.Then)
				}
			case Fail, CutAfterCommand:
				f.cmds = 0
				ss.mu.Lock()
				ss.active = append(ss.active, f)
				ss.mu.Unlock()
			}
		}
		st.mu.Unlock()
		for _, p := range pause {
			p()
		}
		return "ok"
	case "b", "a":
		tool, _, _ := strings.Cut(arg, " ")
		want := Fail
		if kind == "a" {
			want = CutAfterCommand
		}
		st.mu.Lock()
		defer st.mu.Unlock()
		ss.mu.Lock()
		active, step := append([]*faultState(nil), ss.active...), ss.step
		ss.mu.Unlock()
		for _, f := range active {
			if f.Action != want || (f.Tool != "" && f.Tool != tool) {
				continue
			}
			f.cmds++
			if f.cmds != max(f.Count, 1) || !st.fire(f) {
				continue
			}
			if want == Fail {
				return "fail injected failure of " + tool + " at step " + step
			}
			ss.cut(f.Refuse)
		}
		return "ok"
	}
	return "ok"
}

// waitSeen waits (bounded) until the session's stdout has carried as many
// markers of step as the host reported, so that the controller has the
// marker before the server acts on it.
func (ss *stepSession) waitSeen(step string) {
	ss.mu.Lock()
	ss.asked[step]++
	n := ss.asked[step]
	ss.mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		ss.mu.Lock()
		ok := ss.dead || ss.seen[step] >= n
		ss.mu.Unlock()
		if ok {
			return
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// saw records a marker forwarded on stdout.
func (ss *stepSession) saw(step string) {
	ss.mu.Lock()
	ss.seen[step]++
	ss.mu.Unlock()
}

// stopped records that stdout is no longer forwarded.
func (ss *stepSession) stopped() {
	ss.mu.Lock()
	ss.dead = true
	ss.mu.Unlock()
}

// cut closes the session's TCP connection, and the listener too when
// refuse is set.
func (ss *stepSession) cut(refuse bool) {
	ss.cutOnce.Do(func() {
		if refuse {
			ss.s.StopListening()
		}
		ss.conn.Close()
	})
}

// inTransit returns the fault that cuts the session's stdin before text
// "lbc_step STEP\n" (the first one armed that applies), and the text.
func (ss *stepSession) inTransit() (*faultState, string) {
	st := ss.s.steps
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, f := range st.faults {
		if f.Action == CutInTransit && f.Command == "" && !f.fired && ss.applies(f) {
			return f, "lbc_step " + f.Step + "\n"
		}
	}
	return nil, ""
}
