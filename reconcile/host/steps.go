package host

import (
	"strconv"
	"strings"
)

// Step names, as a host prints them in its step markers, reported to
// progress and recorded in an apply's result.
const (
	StepConnect         = "connect"
	StepLock            = "lock"
	StepStaleCheck      = "stale-check"
	StepStage           = "stage"
	StepKeepLastGood    = "keep-last-good"
	StepArm             = "arm-rollback"
	StepAddVIPs         = "add-vips"
	StepSaveServerState = "save-server-state"
	StepSwap            = "swap"
	StepReload          = "reload"
	StepVerify          = "verify"
	StepRemoveVIPs      = "remove-vips"
	StepCommit          = "write-state"
	StepRollback        = "rollback"
	// StepRollbackVerify is the part of a rollback script that waits for
	// the old config to run again (and disarms once it does).
	StepRollbackVerify = "rollback-verify"

	// Steps of a runtime change (see Runtime), in the order they run
	// after swap: drain the servers to delete or drain, send the
	// operations on the stats socket, print what the runtime reads back;
	// disarm ends a runtime rollback once the controller has compared.
	StepDrain         = "drain"
	StepRuntime       = "runtime"
	StepRuntimeVerify = "runtime-verify"
	StepDisarm        = "disarm"
)

// The marker lines a host prints on the lock session's stdout. Every one
// is a whole line; none can be confused with data, which a host sends
// base64-encoded (files), as JSON (addresses) or after a marker that
// announces it (a failed script's stderr, a warning's text).
const (
	// markerPrefix starts every marker but "locked".
	markerPrefix = "==lbc "
	// stepPrefix + NAME: step NAME starts (lbc_step).
	stepPrefix = markerPrefix + "step "
	// LockedLine: the lock holder has the lock (its first line).
	LockedLine = "locked"
	// ReadOKLine and ReadFailedLine end the read under the lock.
	ReadOKLine     = markerPrefix + "read ok"
	ReadFailedLine = markerPrefix + "read failed"
	// warnFailedLine: the step that is running, a warning step, failed;
	// its output is the warning's text.
	warnFailedLine = markerPrefix + "warn-failed"
	// stderrPrefix + TOKEN: the script run last failed; its stderr follows,
	// up to its exit line.
	stderrPrefix = markerPrefix + "stderr "
	// exitPrefix + TOKEN + " " + CODE: the script run last has ended.
	exitPrefix = markerPrefix + "exit "
	// progressPrefix + TEXT: how the running step goes (a drain's
	// sessions left); ParseProgress reads it.
	progressPrefix = markerPrefix + "progress "
)

// stepFunc defines lbc_step NAME, which prints the step marker of NAME.
// The lock holder's prologue defines it; scripts call it.
const stepFunc = `lbc_step() { echo "` + stepPrefix + `$1" || :; }` + "\n"

// StepMarker is the line a host prints as step name starts.
func StepMarker(name string) string { return stepPrefix + name }

// ParseStep reads a step marker: the step that starts, and whether line
// is one.
func ParseStep(line string) (name string, ok bool) {
	return strings.CutPrefix(line, stepPrefix)
}

// StderrLine is the line after which the lock holder sends the stderr of
// the failed script of the session marked by token.
func StderrLine(token string) string { return stderrPrefix + token }

// ParseExit reads the line that ends a script of the session marked by
// token: its exit code, and whether line is that line.
func ParseExit(line, token string) (code int, ok bool) {
	rest, ok := strings.CutPrefix(line, exitPrefix+token+" ")
	if !ok {
		return 0, false
	}
	code, err := strconv.Atoi(rest)
	if err != nil {
		return 1, true
	}
	return code, true
}

// ParseProgress reads a progress marker: its text, with every character
// but lbc's own words' ([A-Za-z0-9._:/ -]) dropped (it is a host's text,
// shown at a terminal), at most 200 bytes; and whether line is one.
func ParseProgress(line string) (string, bool) {
	rest, ok := strings.CutPrefix(line, progressPrefix)
	if !ok {
		return "", false
	}
	b := make([]byte, 0, min(len(rest), 200))
	for i := 0; i < len(rest) && len(b) < 200; i++ {
		if c := rest[i]; isAlnum(c) || strings.IndexByte("._:/ -", c) >= 0 {
			b = append(b, c)
		}
	}
	return strings.TrimSpace(string(b)), true
}
