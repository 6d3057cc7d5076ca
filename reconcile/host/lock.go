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
	return fmt.Sprintf("%s && %s && exec flock -o %s %s sh -s", mkdirStateCmd(h.StateDir), stateDirCheck(h), mode, q(h.LockPath()))
}

// ExitUnsafeStateDir is the exit status of LockCommand when the state
// directory fails stateDirCheck; its stderr says why.
const ExitUnsafeStateDir = 70

// mkdirStateCmd makes the state directory (and its parents) unless it
// exists, writable by its owner only whatever the umask.
func mkdirStateCmd(d string) string {
	return fmt.Sprintf("{ [ -d %s ] || ( umask 022 && mkdir -p %s ); }", q(d), q(d))
}

// sharedDirs are directories that are never a state directory of their
// own: other software (or every user) writes there.
var sharedDirs = []string{"/", "/tmp", "/var/tmp", "/dev/shm", "/dev", "/run", "/var/run", "/run/lock", "/var/lock",
	"/run/user", "/etc", "/usr", "/usr/local", "/bin", "/sbin", "/lib", "/home", "/root", "/var", "/var/lib", "/opt", "/srv", "/mnt", "/media", "/proc", "/sys"}

// stateDirCheck is what the host checks before it trusts anything in the
// state directory, above all before the lock holder may run txn.sh (the
// armed rollback, run as the user lbc logs in as, root under sudo): the
// directory is not a symlink nor a well-known shared directory, is owned
// by that user, and no one else may write to it; an existing txn.sh is a
// regular file (not a symlink) with the same owner and mode. Otherwise it
// says why on stderr and exits ExitUnsafeStateDir: no lock is taken and
// nothing in the directory runs. It costs one process (stat -c, GNU
// coreutils'); the rest are shell builtins.
func stateDirCheck(h Host) string {
	var shared strings.Builder
	for i, d := range sharedDirs {
		if i > 0 {
			shared.WriteByte('|')
		}
		shared.WriteString(q(d))
	}
	return fmt.Sprintf(`{ lbc_sdc() {
  case "$1" in %s) echo "state directory $1 is a shared system directory" >&2; return 1;; esac
  if [ -L "$1" ] || [ ! -d "$1" ]; then echo "state directory $1 is a symlink or not a directory" >&2; return 1; fi
  if [ ! -O "$1" ]; then echo "state directory $1 is owned by uid $(stat -c %%u -- "$1"), not by uid $(id -u) that lbc runs as" >&2; return 1; fi
  lbc_t=
  if [ -e "$1/txn.sh" ] || [ -L "$1/txn.sh" ]; then
    if [ -L "$1/txn.sh" ] || [ ! -f "$1/txn.sh" ] || [ ! -O "$1/txn.sh" ]; then echo "$1/txn.sh is a symlink, not a regular file or not owned by uid $(id -u): not trusted" >&2; return 1; fi
    lbc_t="$1/txn.sh"
  fi
  if [ -n "$lbc_t" ]; then lbc_m=$(stat -c %%a -- "$1" "$lbc_t") || return 1; else lbc_m=$(stat -c %%a -- "$1") || return 1; fi
  lbc_d=${lbc_m%%%%[!0-7]*}; lbc_f=${lbc_m#"$lbc_d"}; lbc_f=${lbc_f#?}
  if [ $(( 0$lbc_d & 022 )) != 0 ]; then echo "state directory $1 has mode $lbc_d: others than its owner may write to it" >&2; return 1; fi
  if [ -n "$lbc_f" ] && [ $(( 0$lbc_f & 022 )) != 0 ]; then echo "$1/txn.sh has mode $lbc_f: others than its owner may write to it" >&2; return 1; fi
}; lbc_sdc %s || exit %d; }`, shared.String(), q(h.StateDir), ExitUnsafeStateDir)
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
func Prologue(h Host, owner, token string, keepalived bool, files []string) string {
	return "trap '' HUP PIPE\n" + stepFunc +
		fmt.Sprintf("sd=%s; lbc_tok=%s\n", q(h.StateDir), q(token)) +
		`lbc_end() { if [ -s "$sd/txn.sh" ]; then sh "$sd/txn.sh" > "$sd/txn.log" 2>&1 && rm -f "$sd/txn.sh"; fi; : > "$sd/lock.owner"; }` + "\n" +
		"trap lbc_end EXIT\n" +
		fmt.Sprintf(`printf '%%s\n' %s > "$sd/lock.owner"; echo %s`, q(owner), LockedLine) + "\n" +
		"lbc_step " + StepStaleCheck + "\n{ " + ReadScript(h, keepalived, files) + "\n" +
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
