package sshtest

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"lbc/reconcile/host"
)

// run runs cmd on s over a real SSH client and returns its stdout and
// exit error.
func run(t *testing.T, s *Server, cmd string) (string, error) {
	t.Helper()
	key, err := os.ReadFile(s.KeyFile())
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ssh.Dial("tcp", s.Addr().String(), &ssh.ClientConfig{
		User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.FixedHostKey(s.HostKey()), Timeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	out, err := sess.Output(cmd)
	return string(out), err
}

// Every Fail fault takes effect, each on the first command of its step,
// also when the server's end of the reply FIFO outlives its answer: the
// next wrapper's open then meets that end and reads EOF at first. Before
// the wrappers read again on an empty answer, that EOF let the failed
// command run (about one fault-matrix case in 14); with the server's end
// kept open 20 ms it did for nearly every step here.
func TestEveryFailTakesEffect(t *testing.T) {
	replyLinger = 20 * time.Millisecond
	t.Cleanup(func() { replyLinger = 0 })
	s := Start(t, Options{Steps: true})
	const n = 20
	var faults []StepFault
	for k := 1; k <= n; k++ {
		faults = append(faults, StepFault{Step: fmt.Sprint("s", k), Action: Fail, Tool: "cat"})
	}
	s.Inject(faults...)
	// The holder's shell (sh on the server's PATH: bash whose echo is a
	// command), a marker then two cats per step: the first must fail,
	// the second run.
	script := fmt.Sprintf(`for k in $(seq 1 %d); do echo "%s"s$k; cat /dev/null && echo "ran $k" || echo "failed $k"; cat /dev/null && echo "ran $k"; done`,
		n, host.StepMarker(""))
	out, err := run(t, s, "sh -c "+quote(script))
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var want []string
	for k := 1; k <= n; k++ {
		want = append(want, host.StepMarker(fmt.Sprint("s", k)), fmt.Sprint("failed ", k), fmt.Sprint("ran ", k))
	}
	if got := strings.Split(strings.TrimSpace(out), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("output:\n%s\nwant:\n%s", out, strings.Join(want, "\n"))
	}
	if f := s.Fired(); len(f) != n {
		t.Errorf("%d faults fired, want %d", len(f), n)
	}
}
