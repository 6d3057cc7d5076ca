// Package e2e holds lab end-to-end tests: lbc's schema, compiler and
// reconciler driven against real sshd, HAProxy and keepalived in network
// namespaces (internal/lab), with real traffic; it has no code of its own.
package e2e
