package host

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// LockCommand takes the device lock and holds it while the session's stdin
// is open: flock runs `sh -s`, a shell that reads its commands from the
// session's stdin, as they come. The first ones are Prologue; then come
// the transaction's scripts (see Frame). flock -o keeps the lock in flock
// itself, so that no daemon a reload starts holds it. wait is how long
// flock waits for a lock someone else holds (0: fail at once, exit 1).
func LockCommand(h Host, wait time.Duration) string {
	mode := "-n"
	if wait > 0 {
		mode = "-w " + strconv.Itoa(int(max(wait.Round(time.Second), time.Second)/time.Second))
	}
	// exec: the login shell gives way to flock, one fork fewer.
	return fmt.Sprintf("%s && exec flock -o %s %s sh -s", mkdirCmd(h.StateDir), mode, q(h.LockPath()))
}

// Prologue is what the lock holder's shell runs first. It writes the
// owner, prints LockedLine, then reads the device as ReadScript does (step
// stale-check, ended by ReadOKLine or ReadFailedLine): the lock and the
// stale check cost one round trip. It defines lbc_run, which runs one
// script (Frame) in a subshell (a fork, no exec) with stdin from
// /dev/null and prints, after it, StderrLine(token) and the script's
// stderr when it failed, and the exit line that ParseExit reads. So a
// transaction costs one session, nothing it runs can overlap another
// script of it or the rollback below, and a script costs no process to
// receive it.
//
// When the shell exits (its stdin ended: the controller finished, died, or
// lost the connection; or a text it read did not parse) while a script is
// armed (<stateDir>/txn.sh, not empty), it runs that script: the host
// rolls itself back to the old state instead of staying half changed.
// Then it empties lock.owner (a redirection).
func Prologue(h Host, owner, token string, keepalived bool) string {
	return "trap '' HUP PIPE\n" + stepFunc +
		fmt.Sprintf("sd=%s; lbc_tok=%s\n", q(h.StateDir), q(token)) +
		`lbc_end() { if [ -s "$sd/txn.sh" ]; then sh "$sd/txn.sh" > "$sd/txn.log" 2>&1 && rm -f "$sd/txn.sh"; fi; : > "$sd/lock.owner"; }` + "\n" +
		"trap lbc_end EXIT\n" +
		fmt.Sprintf(`printf '%%s\n' %s > "$sd/lock.owner"; echo %s`, q(owner), LockedLine) + "\n" +
		"lbc_step " + StepStaleCheck + "\n{ " + ReadScript(h, keepalived) + "\n" +
		`} </dev/null && echo "` + ReadOKLine + `" || echo "` + ReadFailedLine + `"` + "\n# end of step " + StepStaleCheck + "\n" +
		`lbc_run() { ( lbc_script ) </dev/null 2> "$sd/run.err"; lbc_rc=$?` + "\n" +
		`  if [ $lbc_rc != 0 ]; then echo "` + stderrPrefix + `$lbc_tok"; cat "$sd/run.err"; fi; echo "` + exitPrefix + `$lbc_tok $lbc_rc"; }` + "\n"
}

// Frame is script as the lock holder receives it: the body of the
// function lbc_script, then the line that runs it. A text cut short
// anywhere fails to parse or does not run it, so nothing of a partial
// script runs.
func Frame(script string) string {
	return "lbc_script() {\n" + script + "\n}\nlbc_run\n"
}

// OwnerCommand prints who holds the device lock ("" when nobody wrote it).
func OwnerCommand(h Host) string { return "cat " + q(h.OwnerPath()) + " 2>/dev/null || true" }

// WaitUnlockedCommand waits, at most 30 s, for the lock holder of a lost
// session to end (it rolls back first when the transaction is armed),
// then prints whether the rollback script is still armed; ParseArmed reads
// the answer.
func WaitUnlockedCommand(h Host) string {
	return fmt.Sprintf("flock -w 30 %s sh -c %s", q(h.LockPath()),
		q(`if [ -s "$1" ]; then echo armed; else echo disarmed; fi`)) + " sh " + q(h.TxnPath())
}

// ParseArmed reads the answer of WaitUnlockedCommand.
func ParseArmed(out []byte) bool { return strings.TrimSpace(string(out)) == "armed" }
