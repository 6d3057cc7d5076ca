// Package reconcile reads what each device runs over SSH, plans the
// difference from what the compiler rendered, and applies it per device as
// one transaction that rolls itself back; it leaves placement and rendering
// to the compiler and argument parsing and output choice to the CLI.
//
// BuildPlan reads every device in one round trip (config, state.json,
// keepalived.conf, addresses) and returns a Plan: plain data with unified
// diffs, the VIPs to add and remove, the fingerprints of what it saw and the
// files apply would write. Save and LoadPlan keep it in a file; the CLI
// renders it (text, JSON, markdown), as it does status and apply results
// and decides exit codes: this package returns data and errors only.
//
// What runs on a host, and how its answers are read, is package host
// (reconcile/host): the steps and their markers, the read, lock, change,
// rollback and verify scripts, all text in and out; its testdata/scripts
// holds the exact scripts of representative changes. This package sends
// them and decides what to do with the answers:
//
//   - plan.go, diff.go: BuildPlan and the Plan it returns; status.go:
//     ReadStatus; havip.go: who holds each HA VIP;
//   - apply.go: Apply and one device's transaction (tx): the stale check,
//     the change, rollback and what happened after a lost connection;
//     guard.go: the revision guard (ApplyOptions.Guard), asked under each
//     device's lock; waves.go: the order of HA pairs; planapply.go:
//     PlanApply (lbc apply DIR), each device read, planned and changed on
//     one connection, unit by unit (a device, or the devices HA pairs
//     join), at most Parallelism connections open at once;
//   - lock.go: the lock session (the lock holder's, which runs the
//     scripts sent to it) and Locks, the locks a plan keeps for apply;
//   - script.go: runs a host.Script on the lock session and reads its
//     report;
//   - transport.go: Transport, the narrow interface to one device (run a
//     command, stream one, know whether the connection answers), Endpoint
//     and Dialer; ssh.go: SSHDialer (known_hosts and the key read once a
//     run) and the SSH transport; conns.go: Conns, one connection a
//     device kept across a run;
//   - host.go: the host protocol's types as this package hands them out.
//
// Apply runs, per device: lock, stale check, the revision guard (a host
// running a newer revision is refused: OutcomeRefused), stage and check, keep
// last-known-good, arm the rollback script, add VIPs, save server state,
// swap, reload, verify (decided on the host), remove VIPs, write
// state.json (which also disarms): one session on one connection, the
// lock holder's, which runs the script sent to it. Locks keeps, when
// planning under the lock (PlanApply does), the plan's lock sessions and
// their connections for Apply; Conns keeps a connection a device across
// the cycles of lbc watch. On the host, the lock
// holder runs the armed rollback script when its session ends, so a
// controller that dies or loses its connection mid-way leaves the host in
// its old state, or in the new one if the script got to commit; the next
// plan shows the whole change, or none of it.
package reconcile
