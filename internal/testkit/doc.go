// Package testkit holds nothing itself: its subpackages are lbc's test
// infrastructure, kept apart from the product packages (cmd, schema,
// compiler, reconcile and the rest of internal). lab runs real HAProxy hosts
// in network namespaces (and can log and hold the steps a host runs),
// sshtest is an in-process SSH server that fails or cuts a transaction at
// any step, on the host, as the step markers announce it, testproc runs the lbc binary in tests, gen writes the large
// generated spec tree, and e2e holds the end-to-end tests against the lab.
// No product package may import them outside its tests.
package testkit
