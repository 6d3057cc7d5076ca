package host

import (
	"bufio"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Runtime changes: commands sent to the running HAProxy on its stats
// socket (<stateDir>/haproxy.sock) instead of a reload.
//
// A Change whose Runtime is set is applied without a new HAProxy process,
// as three scripts in the one lock session (RuntimeScript, CommitScript,
// and on failure RuntimeRollbackScript):
//
//   - stage, keep-last-good, arm, add-vips, swap: as for a reload, so the
//     file on the host always describes what runs and a later reload
//     changes nothing;
//   - drain (when Runtime.Drain is set): weight 0 for the servers to
//     delete or drain, then a wait, bounded by the drain timeout, for
//     their sessions to end, with progress markers (drainCmd);
//   - runtime: records the worker's Pid, then sends Runtime.Do in order,
//     a command a query, but for runs of commands whose success is an
//     empty answer, which share one query (batch); the first answer that
//     is not one its RuntimeCmd accepts fails the step, its stderr naming
//     the command (the batch) and the host's answer (at most 300 bytes of
//     it);
//   - runtime-verify: prints the worker's Pid again and the answer of each
//     Runtime.ReadBack query (ParseReadBack reads them; the first one asked
//     with show info, on one connection), for the controller to compare
//     with the new file; the host changes nothing;
//   - then the controller sends CommitScript (remove-vips, write-state),
//     or, on any difference, RuntimeRollbackScript: txn.sh restores the
//     files and sends Runtime.Undo, and reloads the restored file when an
//     undo command is refused; rollback-verify reads the runtime back
//     again, and the controller disarms (DisarmScript) once it matches
//     the old file, or reloads (ReloadAgainScript) when it does not.
//
// txn.sh holds the undo commands, so a controller that dies or loses the
// connection still leaves the host as it was: its lock holder runs txn.sh
// when the session ends.
//
// Adding a new kind of runtime operation (a certificate, a map entry):
//
//  1. build its RuntimeCmd values where the operation is known (package
//     reconcile): Line is the CLI command, of lbc's own words only (see
//     CheckRuntimeCmd: no quote, `;`, `#`, `$`, backslash or control
//     character; values come from lbc's validated spec or its rendered
//     file, never from a host); Payload, when the command takes one (HAProxy's
//     `<<` syntax: `set ssl cert FILE <<`), holds its lines; OK lists the
//     answers that mean success (each a substring; "" for an empty one),
//     none when success is an empty answer (`set weight`, `set map`):
//     such a command, without a payload, shares a query with its
//     neighbours of the same kind (batch);
//  2. append them to Runtime.Do, and their counterparts, which put the
//     old value back, to Runtime.Undo, in the order they must run (undo
//     the last change first). An undo command may run after only part of
//     Do ran, or twice: give it OK answers for "already so" too (`No such
//     server.` for a del server that undoes an add);
//  3. add the query that shows the result to Runtime.ReadBack and compare
//     its answer with the new file in reconcile (after runtime-verify)
//     and with the old one (after rollback-verify).
//
// The scripts, their golden files (testdata/scripts/runtime-*.txtar) and
// the fault matrix (reconcile/fault_test.go) then cover the new kind
// without further changes here.
type Runtime struct {
	Do   []RuntimeCmd
	Undo []RuntimeCmd
	// ReadBack are the queries whose answers runtime-verify and
	// rollback-verify print ("show servers state").
	ReadBack []string
	// Drain, when set, drains servers before Do (step drain).
	Drain *Drain
	// Maps are the host tables (map files) loaded into the running
	// HAProxy from the swapped file after Do, and from the restored one
	// by the undo (see maprt.go).
	Maps []string
	// Before are queries whose answers the runtime step prints after the
	// worker's pid and before Do (ParseReadBack reads them): what ran,
	// for lbc to compare with after a rollback ("show ssl cert PATH").
	Before []string
}

// RuntimeCmd is one command for HAProxy's stats socket.
type RuntimeCmd struct {
	Line string
	// Payload, when set, is sent after Line + " <<" and ended by an empty
	// line (HAProxy's payload syntax); its lines must not be empty.
	Payload string
	// PayloadFile, when set, is a file on the host whose lines (the empty
	// ones left out) are the payload: read there, never a word of the
	// script (a certificate bundle holds its key; see certrt.go).
	PayloadFile string
	// OK are the answers that mean success: the answer holds one of
	// them; "" stands for an empty answer. None: the answer must be empty.
	OK []string
}

// maxRuntimeLine bounds a command line (HAProxy's own buffer is larger).
const maxRuntimeLine = 4096

// CheckRuntimeCmd refuses a command that is not made of lbc's own words:
// one line of words separated by single spaces, each of
// [A-Za-z0-9._:/@%,=+\[\]-]; a payload of non-empty lines of
// [A-Za-z0-9+/= -] (PEM); answers of printable ASCII without a quote.
func CheckRuntimeCmd(c RuntimeCmd) error {
	if c.Line == "" || len(c.Line) > maxRuntimeLine {
		return fmt.Errorf("runtime command: empty or longer than %d bytes", maxRuntimeLine)
	}
	for _, w := range strings.Split(c.Line, " ") {
		if w == "" {
			return fmt.Errorf("runtime command %.80q: empty word", c.Line)
		}
		for i := 0; i < len(w); i++ {
			if !runtimeWordByte(w[i]) {
				return fmt.Errorf("runtime command %.80q: character %q is not allowed", c.Line, w[i])
			}
		}
	}
	if c.PayloadFile != "" {
		if c.Payload != "" || !strings.HasPrefix(c.PayloadFile, "/") {
			return fmt.Errorf("runtime command %.80q: a payload file must be an absolute path, without a payload", c.Line)
		}
		for i := 0; i < len(c.PayloadFile); i++ {
			if !runtimeWordByte(c.PayloadFile[i]) {
				return fmt.Errorf("runtime command %.80q: payload file character %q is not allowed", c.Line, c.PayloadFile[i])
			}
		}
	}
	if c.Payload != "" {
		for _, l := range strings.Split(strings.TrimSuffix(c.Payload, "\n"), "\n") {
			if l == "" {
				return fmt.Errorf("runtime command %.80q: payload has an empty line", c.Line)
			}
			for i := 0; i < len(l); i++ {
				if b := l[i]; !(isAlnum(b) || strings.IndexByte("+/= -", b) >= 0) {
					return fmt.Errorf("runtime command %.80q: payload character %q is not allowed", c.Line, b)
				}
			}
		}
	}
	for _, ok := range c.OK {
		if len(ok) > 200 {
			return fmt.Errorf("runtime command %.80q: an expected answer is too long", c.Line)
		}
		for i := 0; i < len(ok); i++ {
			if b := ok[i]; b < ' ' || b > '~' || b == '\'' || b == '"' || b == '\\' {
				return fmt.Errorf("runtime command %.80q: expected answer character %q is not allowed", c.Line, b)
			}
		}
	}
	return nil
}

func isAlnum(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9'
}

func runtimeWordByte(b byte) bool { return isAlnum(b) || strings.IndexByte("._:/@%,=+[]-", b) >= 0 }

// checkRuntime checks every command and query of r.
func checkRuntime(r *Runtime) error {
	for _, cs := range [][]RuntimeCmd{r.Do, r.Undo} {
		for _, c := range cs {
			if err := CheckRuntimeCmd(c); err != nil {
				return err
			}
		}
	}
	if r.Drain != nil {
		for _, id := range r.Drain.Servers {
			if err := CheckRuntimeCmd(RuntimeCmd{Line: "set weight " + id + " 0"}); err != nil {
				return err
			}
		}
	}
	for _, rb := range append(slices.Clone(r.ReadBack), r.Before...) {
		if err := CheckRuntimeCmd(RuntimeCmd{Line: rb}); err != nil {
			return err
		}
	}
	return checkMaps(r.Maps)
}

// rtFunc defines lbc_rt SOCKET CMD PAYLOAD [OK...]: it sends CMD (with its
// payload, when not empty) to the stats socket with lbc_cli (cliFunc) and
// succeeds when the answer holds one of the OKs (an empty OK: an empty answer;
// none: the answer must be empty).
// Otherwise it prints the command and at most 300 bytes of the answer on
// stderr and fails. Only lbc_cli runs a process: the command goes in
// through a here-document, not a pipe (no printf process beside it).
const rtFunc = `lbc_rt() { lbc_s=$1; lbc_c=$2; lbc_p=$3; shift 3
  if [ -n "$lbc_p" ]; then lbc_a=$(lbc_cli "$lbc_s" 2>&1 <<LBC_RT
$lbc_c <<
$lbc_p

LBC_RT
) || lbc_a="(no answer: $lbc_a)"
  else lbc_a=$(lbc_cli "$lbc_s" 2>&1 <<LBC_RT
$lbc_c
LBC_RT
) || lbc_a="(no answer: $lbc_a)"; fi
  [ $# -eq 0 ] && set -- ''
  for lbc_ok; do if [ -z "$lbc_ok" ]; then [ -z "$lbc_a" ] && return 0; else case $lbc_a in *"$lbc_ok"*) return 0 ;; esac; fi; done
  printf 'stats socket: %s: %.300s\n' "$lbc_c" "$lbc_a" >&2; return 1; }
`

// maxBatch bounds a line of joined commands (batch): HAProxy reads a
// command line into one buffer (tune.bufsize, 16384 bytes by default).
const maxBatch = 2048

// batchable reports whether c may share a line with others (batch): no
// payload, and success is an empty answer (set weight, set server
// state, enable health).
func batchable(c RuntimeCmd) bool {
	return c.Payload == "" && c.PayloadFile == "" && len(c.OK) == 0
}

// batch joins each run of consecutive batchable commands with ';' (the
// stats socket's command separator, which CheckRuntimeCmd keeps out of a
// command) into one command of at most maxBatch bytes: one connection,
// one lbc_cli process, instead of one a command. HAProxy 2.6 runs every
// command of the line in order, whatever the answer of one, and ends
// the answer of each with an empty line; a command substitution drops
// the trailing newlines, so the batch's answer is empty exactly when
// every command's is, and otherwise holds what a command answered (No
// such server.). The other commands keep a line of their own: an add
// or del server answers, and OK tells apart only one answer a line.
// Order is kept.
func batch(cs []RuntimeCmd) []RuntimeCmd {
	var out []RuntimeCmd
	joinable := false // the last of out is a batch that may grow
	for _, c := range cs {
		if !batchable(c) {
			out, joinable = append(out, c), false
			continue
		}
		if last := len(out) - 1; joinable && len(out[last].Line)+1+len(c.Line) <= maxBatch {
			out[last].Line += ";" + c.Line
			continue
		}
		out, joinable = append(out, RuntimeCmd{Line: c.Line}), true
	}
	return out
}

// rtCall is the call of lbc_rt for c.
func rtCall(h Host, c RuntimeCmd) string {
	fn, payload := "lbc_rt", c.Payload
	if c.PayloadFile != "" {
		fn, payload = "lbc_rtf", c.PayloadFile
	}
	args := []string{q(h.SocketPath()), q(c.Line), q(payload)}
	for _, ok := range c.OK {
		args = append(args, q(ok))
	}
	return fn + " " + strings.Join(args, " ")
}

// readBackCmd prints "pid N" (the worker that answers `show info`; with
// wait, once one answers, within 5 s), then,
// for each query, "answer I" and its answer, each line behind a "|" (so no
// answer line reads as a marker), at most 100,000 lines each (one awk: a
// host table's 10,000 lines in a shell loop cost a read per byte). It
// fails when HAProxy does not answer.
func readBackCmd(h Host, queries []string, wait bool) string {
	if !wait {
		return pidAnswersCmd(h, queries, false)
	}
	var b strings.Builder
	fmt.Fprintf(&b, infoFunc, statsCmd(h, infoQuery, "2>/dev/null"))
	// After txn.sh reloaded (an undo command refused), the new worker
	// answers once it has started: poll, at most 5 s.
	b.WriteString("  lbc_i=0; while lbc_info_get; [ -z \"$lbc_pid\" ] && [ \"$lbc_i\" -lt 50 ]; do lbc_i=$((lbc_i+1)); sleep 0.1; done\n")
	b.WriteString(pidAnswersCmd(h, queries, false))
	return b.String()
}

// pidAnswersCmd prints "pid N" and the answers of queries as readBackCmd
// does, at once (no wait), defining what it needs; with more, what follows
// may be joined by &&. The first query shares one connection and one awk
// with `show info` ("show info;QUERY"): HAProxy 2.6 ends the answer of
// show info with an empty line, as lbc_info_get relies on too, so awk
// takes the Pid from the lines before the first empty one and prefixes
// the lines after it, the answer, with "|" (its trailing empty lines
// dropped, as a command substitution drops them). No Pid, no answer:
// "haproxy did not answer on its stats socket". Each further query costs
// a connection of its own (answersCmd): answers do not all end with an
// empty line.
func pidAnswersCmd(h Host, queries []string, more bool) string {
	var b strings.Builder
	if len(queries) == 0 {
		fmt.Fprintf(&b, infoFunc, statsCmd(h, infoQuery, "2>/dev/null"))
		b.WriteString(`  lbc_info_get; [ -n "$lbc_pid" ] || { echo 'haproxy did not answer on its stats socket' >&2; false; } &&
  echo "pid $lbc_pid"`)
		if !more {
			b.WriteString("\n")
		}
		return b.String()
	}
	b.WriteString(cliFunc)
	fmt.Fprintf(&b, "  lbc_cli %s 2>/dev/null <<'LBC_CLI' | awk %s", q(h.SocketPath()), q(pidAnswerAwk))
	last := len(queries) == 1 && !more
	if !last {
		b.WriteString(" &&")
	}
	fmt.Fprintf(&b, "\nshow info;%s\nLBC_CLI\n", queries[0])
	if !last {
		b.WriteString("  :")
	}
	b.WriteString(answersCmd(h, queries[1:], 1, more))
	return b.String()
}

// pidAnswerAwk reads the answer of "show info;QUERY" (pidAnswersCmd).
const pidAnswerAwk = `f { if ($0 == "") { e++; next }
  for (; e > 0; e--) if (n++ < 100000) print "|"
  if (n++ < 100000) print "|" $0; next }
/^Pid:/ { p = $2 }
$0 == "" { if (p == "") exit; f = 1; print "pid " p; print "answer 0" }
END { if (!f) { print "haproxy did not answer on its stats socket" > "/dev/stderr"; exit 1 } }`

// answersCmd prints, for each query, "answer I" (I from first on) and its
// answer (see readBackCmd), joined to what comes before by &&; with more,
// what follows may be joined by && too.
func answersCmd(h Host, queries []string, first int, more bool) string {
	var b strings.Builder
	// A here-document's body starts on the line after its operator, so
	// the && that joins the next query ends that line.
	for i, rq := range queries {
		fmt.Fprintf(&b, ` &&
  echo 'answer %d' && lbc_a=$(lbc_cli %[3]s <<'LBC_CLI'
%[2]s
LBC_CLI
) &&
  awk 'NR <= 100000 { print "|" $0 }' <<LBC_ANSWER`, first+i, rq, q(h.SocketPath()))
		last := i == len(queries)-1 && !more
		if !last {
			b.WriteString(" &&")
		}
		b.WriteString("\n$lbc_a\nLBC_ANSWER\n")
		if !last {
			b.WriteString("  :")
		}
	}
	return b.String()
}

// RuntimeScript is a runtime change up to its verification: stage,
// keep-last-good, arm, add-vips and swap as ChangeScript writes them, then
// runtime and runtime-verify (see Runtime). It commits nothing: the
// controller compares what runtime-verify prints and sends CommitScript
// or RuntimeRollbackScript.
func RuntimeScript(c Change) (*Script, error) {
	if c.Runtime == nil {
		return nil, errors.New("runtime script: the change has no runtime part")
	}
	if err := checkRuntime(c.Runtime); err != nil {
		return nil, err
	}
	s, err := prepareScript(c, nil)
	if err != nil {
		return nil, err
	}
	h := c.Host
	var b strings.Builder
	b.WriteString(rtFunc + rtFileFunc(c.Runtime.Do))
	if len(c.Runtime.Maps) > 0 {
		b.WriteString(mapFunc)
	}
	b.WriteString(pidAnswersCmd(h, c.Runtime.Before, true))
	for _, rc := range batch(c.Runtime.Do) {
		b.WriteString(" &&\n  " + rtCall(h, rc))
	}
	b.WriteString(mapLoads(h, c.Runtime))
	if d := c.Runtime.Drain; d != nil && len(d.Servers) > 0 {
		s.step(StepDrain, drainCmd(h, *d))
		s.Bound = d.bound()
	}
	s.step(StepRuntime, b.String())
	s.step(StepRuntimeVerify, readBackCmd(h, c.Runtime.ReadBack, false))
	return s, nil
}

// CommitScript ends a runtime change the controller has verified:
// remove-vips and write-state, as ChangeScript ends. It refuses to run
// when the transaction is no longer armed.
func CommitScript(c Change) (*Script, error) {
	s := newScript(true)
	rm, err := removeVIPsCmd(c)
	if err != nil {
		return nil, err
	}
	next, err := writeFileCmd(c.Host.stateTmp(), string(c.State))
	if err != nil {
		return nil, err
	}
	s.step(StepRemoveVIPs, rm)
	s.step(StepCommit, commitCmd(c.Host, next))
	return s, nil
}

// RuntimeRollbackScript runs the armed txn.sh (which restores the files,
// sends Runtime.Undo and reloads when an undo command is refused), then
// reads the runtime back (rollback-verify) for the controller to compare
// with the old file. It does not disarm: DisarmScript does, once the
// controller has compared; ReloadAgainScript when the runtime differs.
func RuntimeRollbackScript(c Change) (*Script, error) {
	if c.Runtime == nil {
		return nil, errors.New("runtime rollback: the change has no runtime part")
	}
	h := c.Host
	s := newScript(true)
	s.step(StepRollback, "sh "+q(h.TxnPath()))
	s.step(StepRollbackVerify, readBackCmd(h, c.Runtime.ReadBack, true))
	return s, nil
}

// DisarmScript disarms a rolled-back transaction (step disarm).
func DisarmScript(c Change) *Script {
	s := newScript(true)
	s.step(StepDisarm, removeCmd(c.Host.TxnPath()))
	return s
}

// runtimeUndo is the part of txn.sh that puts the runtime back: every
// undo command is tried; when one is refused, the restored file is
// reloaded (from the server-state file's version line only, so the new
// process takes every value from the file).
func runtimeUndo(h Host, r *Runtime) string {
	var b strings.Builder
	b.WriteString(cliFunc + rtFunc + rtFileFunc(r.Undo) + "urc=0\n")
	if len(r.Maps) > 0 {
		b.WriteString(mapFunc)
	}
	for _, c := range batch(r.Undo) {
		fmt.Fprintf(&b, "%s || urc=1\n", rtCall(h, c))
	}
	b.WriteString(mapUndo(h, r))
	fmt.Fprintf(&b, "if [ $urc != 0 ]; then %s; ( %s ) || rc=1; fi\n", clearServerStateCmd(h), h.Reload)
	return b.String()
}

// ReadBack is what runtime-verify or rollback-verify printed.
type ReadBack struct {
	Pid     int
	Answers []string // one a query, in order
}

// ParseReadBack reads the output of a runtime-verify or rollback-verify
// step for n queries.
func ParseReadBack(out []byte, n int) (*ReadBack, error) {
	rb := &ReadBack{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	cur := -1
	var ans []strings.Builder
	sawPid := false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case !sawPid:
			p, ok := strings.CutPrefix(line, "pid ")
			pid, err := strconv.Atoi(p)
			if !ok || err != nil || pid <= 0 {
				return nil, fmt.Errorf("read back: want the worker's pid, got %.80q", line)
			}
			rb.Pid, sawPid = pid, true
		case strings.HasPrefix(line, "answer "):
			i, err := strconv.Atoi(strings.TrimPrefix(line, "answer "))
			if err != nil || i != cur+1 || i >= n {
				return nil, fmt.Errorf("read back: unexpected line %.80q", line)
			}
			cur = i
			ans = append(ans, strings.Builder{})
		case strings.HasPrefix(line, "|") && cur >= 0:
			ans[cur].WriteString(line[1:])
			ans[cur].WriteByte('\n')
		default:
			return nil, fmt.Errorf("read back: unexpected line %.80q", line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read back: %w", err)
	}
	if !sawPid || cur != n-1 {
		return nil, errors.New("read back: output cut short")
	}
	for i := range ans {
		rb.Answers = append(rb.Answers, ans[i].String())
	}
	return rb, nil
}
