package host

import (
	"fmt"
	"strings"
	"time"
)

// Drain is the servers a runtime change drains before it deletes them or
// leaves them at weight 0 (a node removed from the spec, or set to
// drain), and how long it waits for their sessions.
type Drain struct {
	Servers []string // "backend/server"
	Timeout time.Duration
	// Interval between two reads of the sessions; 1s when 0.
	Interval time.Duration
}

// drainPoll bounds the polls of a drain whatever its timeout says.
const maxDrainPolls = 100000

// polls is how many times the drain reads the sessions, and interval
// the wait between two reads.
func (d Drain) polls() (int, time.Duration) {
	interval := d.Interval
	if interval <= 0 {
		interval = time.Second
	}
	return min(max(int(d.Timeout/interval), 1), maxDrainPolls), interval
}

// bound is the longest the drain step may take: each read waits its
// interval and at most lbc_cli's 2 s timeout.
func (d Drain) bound() time.Duration {
	n, interval := d.polls()
	return time.Duration(n) * (interval + 2*time.Second)
}

// drainCmd sets every server of d to weight 0 (no new sessions; a
// persistent one still reaches it), then reads their current sessions
// (`show stat -1 4 -1`, column scur) until they are all 0 or the timeout
// passes, printing a progress marker at each read that finds sessions
// left. It prints "drained", or "timeout" and the servers left with their
// sessions (a warning, not a failure: the deletion then shuts them).
// Only a stats socket that does not answer fails the step.
func drainCmd(h Host, d Drain) string {
	polls, interval := d.polls()
	var b strings.Builder
	b.WriteString(cliFunc + rtFunc)
	pats := make([]string, len(d.Servers))
	zero := make([]RuntimeCmd, len(d.Servers))
	for i, id := range d.Servers {
		zero[i] = RuntimeCmd{Line: "set weight " + id + " 0"}
		pats[i] = q(id)
	}
	for _, c := range batch(zero) {
		fmt.Fprintf(&b, "  %s &&\n", rtCall(h, c))
	}
	fmt.Fprintf(&b, `  lbc_i=0 && while :; do
    lbc_st=$(lbc_cli %s <<'LBC_CLI'
show stat -1 4 -1
LBC_CLI
) || { echo 'stats socket: show stat: no answer' >&2; lbc_i=-1; break; }
    lbc_left=
    while IFS=, read -r lbc_px lbc_sv _ _ lbc_scur _; do
      case "$lbc_px/$lbc_sv" in %s) case $lbc_scur in ''|0) ;; *) lbc_left="$lbc_left $lbc_px/$lbc_sv:$lbc_scur" ;; esac ;; esac
    done <<LBC_STAT
$lbc_st
LBC_STAT
    [ -z "$lbc_left" ] && { echo drained; break; }
    lbc_i=$((lbc_i+1)); [ "$lbc_i" -ge %d ] && { echo "timeout$lbc_left"; break; }
    echo "%s$lbc_left"; sleep %.3f
  done && [ "$lbc_i" -ge 0 ]`, q(h.SocketPath()), strings.Join(pats, "|"), polls, progressPrefix, interval.Seconds())
	return b.String()
}

// DrainResult is what a drain step printed: whether it timed out, and
// the servers left then with their sessions ("be/s:2").
type DrainResult struct {
	Drained bool
	Left    []string
}

// ParseDrain reads the output of the drain step.
func ParseDrain(out []byte) (DrainResult, error) {
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		switch {
		case l == "drained":
			return DrainResult{Drained: true}, nil
		case strings.HasPrefix(l, "timeout"):
			return DrainResult{Left: strings.Fields(strings.TrimPrefix(l, "timeout"))}, nil
		}
	}
	return DrainResult{}, fmt.Errorf("drain: no result in %.80q", out)
}
