package lab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"lbc/reconcile/host"
)

// The step log (Options.StepLog). A device's sshd then gives every session
// a PATH whose first directory is <Dir>/steplog, which holds two wrappers:
// sh, which is bash with the echo builtin disabled (so that the lock
// holder's step markers are printed by a command), and echo, which, for a
// step marker, appends the step's name to <Dir>/steps.log and, when
// <Dir>/steps.pause names that step, waits there (at most 30 s) until the
// file is gone, before it prints the marker. A test reads on the host
// which step a transaction has reached, and can hold the host at a step
// while it does something to the controller (kill it). flock, the lock
// command, is wrapped too: it logs "lock" (and pauses there) before it
// runs, as if the lock were a step with a marker. A fourth wrapper,
// mv, fails (once) when <Dir>/steps.fail names the step the log shows the
// host in: a change then fails at swap and rolls back, so that a test can
// hold the host in the rollback too. A fifth, nc.openbsd (lbc's
// stats-socket client), fails (once) the query that starts with the
// command <Dir>/steps.failcli holds (FailCLI). Nothing of lbc changes: the scripts
// it sends run as they would, through these tools.

// stepLogMax bounds a pause at a step, in 10 ms rounds.
const stepLogMax = 3000

func (l *Lab) writeStepLog(d *Device) error {
	bin := filepath.Join(d.Dir, "steplog")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return err
	}
	real := map[string]string{}
	for _, name := range []string{"bash", "echo", "mv", "flock"} {
		p, err := exec.LookPath(name)
		if err != nil {
			return fmt.Errorf("step log: %w", err)
		}
		real[name] = p
	}
	bash, echo, mv, flock := real["bash"], real["echo"], real["mv"], real["flock"]
	// pause waits while the pause file names step $s.
	pause := fmt.Sprintf(`n=0
while [ $n -lt %[2]d ] && [ -e %[1]s ]; do
  p=; read -r p < %[1]s
  [ "$p" = "$s" ] || break
  sleep 0.01; n=$((n+1))
done
`, d.pauseFile(), stepLogMax)
	env := filepath.Join(bin, "bash_env")
	marker := host.StepMarker("")
	files := map[string]string{
		"bash_env": "enable -n echo\n",
		"sh":       fmt.Sprintf("#!/bin/sh\nBASH_ENV=%s exec %s \"$@\"\n", env, bash),
		"echo": fmt.Sprintf(`#!/bin/sh
# lab step log: the step markers of lbc's lock holder
case "$*" in %[1]q*)
  s="$*"; s=${s#%[1]q}
  echo "$s" >> %[2]s
  %[3]s;;
esac
exec %[4]s "$@"
`, marker, d.StepLog(), pause, echo),
		"flock": fmt.Sprintf(`#!/bin/sh
# lab step log: the lock, logged as step lock
s=lock
echo "$s" >> %[1]s
%[2]s
exec %[3]s "$@"
`, d.StepLog(), pause, flock),
		"mv": fmt.Sprintf(`#!/bin/sh
# lab step log: mv, failed once in the step steps.fail names
if [ -e %[1]s ]; then
  f=; read -r f < %[1]s
  cur=; while IFS= read -r l; do cur=$l; done < %[2]s
  if [ -n "$f" ] && [ "$f" = "$cur" ]; then
    rm -f %[1]s
    echo "lab: injected failure of mv at step $cur" >&2
    exit 1
  fi
fi
exec %[3]s "$@"
`, d.failFile(), d.StepLog(), mv),
	}
	if nc, err := exec.LookPath("nc.openbsd"); err == nil {
		// Buffered only while a failure waits: $(cat; echo x) keeps the
		// input's final empty line, which ends a payload.
		files["nc.openbsd"] = fmt.Sprintf(`#!/bin/sh
# lab step log: nc.openbsd, failed once when its input starts with the
# stats-socket command steps.failcli holds
if [ -e %[1]s ]; then
  f=; read -r f < %[1]s
  in=$(cat; echo x); in=${in%%x}
  case $in in "$f"*)
    rm -f %[1]s
    echo "lab: injected failure of nc.openbsd: $f" >&2
    exit 1;;
  esac
  printf '%%s' "$in" | %[2]s "$@"; exit $?
fi
exec %[2]s "$@"
`, d.failCLIFile(), nc)
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(text), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// stepLogPath is the PATH a step-logging device's sessions get.
func stepLogPath(d *Device) string {
	return filepath.Join(d.Dir, "steplog") + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
}

// StepLog is the file where a device started with Options.StepLog logs
// each step its lbc transactions reach, one name a line.
func (d *Device) StepLog() string { return filepath.Join(d.Dir, "steps.log") }

func (d *Device) pauseFile() string { return filepath.Join(d.Dir, "steps.pause") }
func (d *Device) failFile() string  { return filepath.Join(d.Dir, "steps.fail") }

// FailAt makes the first mv the device runs in step fail, once (swap
// renames the staged config with mv).
func (d *Device) FailAt(step string) error {
	return os.WriteFile(d.failFile(), []byte(step+"\n"), 0o644)
}

func (d *Device) failCLIFile() string { return filepath.Join(d.Dir, "steps.failcli") }

// FailCLI makes the first stats-socket query the device's lbc scripts
// send that starts with command fail, once (a step-logging device with
// nc.openbsd installed).
func (d *Device) FailCLI(command string) error {
	return os.WriteFile(d.failCLIFile(), []byte(command+"\n"), 0o644)
}

// CLIFailed reports whether the failure FailCLI asked for fired.
func (d *Device) CLIFailed() bool {
	_, err := os.Stat(d.failCLIFile())
	return errors.Is(err, os.ErrNotExist)
}

// Steps returns the steps logged so far.
func (d *Device) Steps() []string {
	b, err := os.ReadFile(d.StepLog())
	if err != nil {
		return nil
	}
	return strings.Fields(string(b))
}

// ClearSteps empties the step log.
func (d *Device) ClearSteps() error { return os.WriteFile(d.StepLog(), nil, 0o644) }

// PauseAt makes the device's transactions wait at step (when they reach
// its marker) until Resume, at most 30 s.
func (d *Device) PauseAt(step string) error {
	return os.WriteFile(d.pauseFile(), []byte(step+"\n"), 0o644)
}

// Resume lets a paused transaction go on.
func (d *Device) Resume() error {
	if err := os.Remove(d.pauseFile()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// WaitStep waits, at most max, until the step log holds step; it returns
// the log then.
func (d *Device) WaitStep(step string, max time.Duration) ([]string, error) {
	deadline := time.Now().Add(max)
	for {
		steps := d.Steps()
		for _, s := range steps {
			if s == step {
				return steps, nil
			}
		}
		if time.Now().After(deadline) {
			return steps, fmt.Errorf("lab %s: step %s not reached in %v (log %q)", d.Name, step, max, steps)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
