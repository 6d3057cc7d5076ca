// Package classify decides whether a device's change of haproxy.cfg can be
// carried by HAProxy 2.6's runtime API (the stats socket) without a reload,
// and lists the runtime operations it would take: server weights, server
// states (drain, maint, ready), server addresses, and servers added to or
// deleted from a backend that exists on both sides. Everything else, and
// every file it cannot read as lbc's own unedited rendering, is a reload.
//
// It compares the two rendered files only, so it does no I/O and knows
// nothing of specs or hosts; the reconciler feeds it the live file and the
// compiler's output, and sends, waits for drains and verifies elsewhere.
//
// What HAProxy 2.6 accepts at runtime, checked against haproxy 2.6.12 and
// doc/management.txt:
//   - "set weight": any value 0..256 in a backend of a dynamic algorithm
//     (roundrobin, leastconn, first); in a static one (static-rr, source,
//     uri) only 0 or the initial weight, which the file may no longer say
//     after earlier runtime changes, so only a change to 0 is runtime there.
//   - "add server": only in a backend of a dynamic algorithm ("Backend must
//     use a dynamic load balancing to support dynamic servers"), without a
//     "cookie" ("'cookie' option is not accepted for dynamic server"), and
//     default-server is not inherited: an added server carries its
//     backend's default-server keywords itself, and its health check is
//     off until "enable health".
//   - "del server": in any backend, once the server is in maintenance and
//     has no connection left: a deletion is always preceded by a drain.
//
// The server-state file (load-server-state-from-file global), measured on
// haproxy 2.6.12 across a reload: a server whose configured weight changed
// takes the new file's weight; one whose configured weight did not keeps
// the runtime weight the state file holds (a weight set by hand on the
// socket survives a reload of an unchanged file); adding or removing
// "disabled" in the file wins over the state file's admin state.
//
// The first line (header) and the global "description lbc:<ConfigID>" line
// differ between any two renderings and are not compared; comments are
// not compared either. A runtime apply therefore leaves `show info`'s
// description at the old ConfigID: its verification must compare servers,
// not the description.
package classify
