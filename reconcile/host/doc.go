// Package host is the host protocol: the shell text lbc sends to a device
// and the parsers of what the device answers. It does no I/O: every
// function takes text or data and returns text or data, so what runs as
// root on a host can be read, diffed and tested here (the golden files in
// testdata/ hold the exact scripts of representative changes).
//
// Where each part lives:
//
//   - host.go: Host (a device's paths and commands) and the files lbc keeps
//     in its state directory;
//   - steps.go: the step names and every marker line a host prints
//     ("==lbc step NAME" and the others), with their parsers; the in-process
//     SSH server of the tests reads the same markers through ParseStep;
//   - read.go: the read script (config, state.json, keepalived.conf,
//     addresses in one round trip) and ParseRead;
//   - state.go: state.json;
//   - lock.go: the lock holder (flock around `sh -s`), its prologue (owner,
//     the read under the lock, lbc_run) and how a script is framed for it;
//   - script.go: Script, a sequence of named steps, and Report, what its
//     output says (steps done, the failed one, warnings);
//   - change.go: Change, the narrow description of one device's change,
//     and the change, rollback (txn.sh), rollback-verify and reload-again
//     scripts built from it;
//   - verify.go: Verifier and HAProxyVerifier, the on-host wait for a
//     reload to take effect;
//   - serverstate.go: HAProxy's server-state file across a reload;
//   - shell.go: quoting, file writes and address commands shared by the
//     scripts.
//
// Connecting, sending the text and reading the answer are the transport's
// (package reconcile); what to change is the plan's.
package host
