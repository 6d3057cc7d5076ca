// Package testproc runs a long-lived command for a test, as a user would
// in a shell, and waits, bounded, for what it prints.
package testproc

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// Proc is a running command.
type Proc struct {
	t       *testing.T
	cmd     *exec.Cmd
	stdout  Buffer
	stderr  Buffer
	seen    int // stdout up to here has been matched already
	wait    time.Duration
	done    chan struct{}
	waitErr error
}

// Start runs name with args in dir, with env added to this process's
// environment. It lives at most max and is killed in t.Cleanup whatever
// happens; WaitFor and Stop wait at most wait. On failure the test logs
// what it printed.
func Start(t *testing.T, dir string, max, wait time.Duration, env []string, name string, args ...string) *Proc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), max)
	p := &Proc{t: t, wait: wait, done: make(chan struct{})}
	p.cmd = exec.CommandContext(ctx, name, args...)
	p.cmd.Dir = dir
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout = &p.stdout
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		cancel()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s %s stdout:\n%s", name, strings.Join(args, " "), p.stdout.String())
			t.Logf("%s %s stderr:\n%s", name, strings.Join(args, " "), p.stderr.String())
		}
	})
	return p
}

// WaitFor waits until the stdout printed since the previous WaitFor
// matches last, then checks that the chunk up to the end of that match
// also matches every pattern in also. It returns the chunk and moves past
// it. Patterns are multi-line regular expressions (^ and $ match at line
// boundaries).
func (p *Proc) WaitFor(last string, also ...string) string {
	p.t.Helper()
	re := regexp.MustCompile("(?m)" + last)
	deadline := time.Now().Add(p.wait)
	for {
		out := p.stdout.String()[p.seen:]
		if loc := re.FindStringIndex(out); loc != nil {
			chunk := out[:loc[1]]
			p.seen += loc[1]
			for _, a := range also {
				if !regexp.MustCompile("(?m)" + a).MatchString(chunk) {
					p.t.Errorf("output before %q lacks %q:\n%s", last, a, chunk)
				}
			}
			return chunk
		}
		select {
		case <-p.done:
			p.t.Fatalf("exited (%v) before printing %q\n--- stdout\n%s--- stderr\n%s", p.waitErr, last, p.stdout.String(), p.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("no %q on stdout within %v", last, p.wait)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Rest is the stdout not matched by a WaitFor yet.
func (p *Proc) Rest() string { return p.stdout.String()[p.seen:] }

// Stdout is everything printed on stdout so far.
func (p *Proc) Stdout() string { return p.stdout.String() }

// Stderr is everything printed on stderr so far.
func (p *Proc) Stderr() string { return p.stderr.String() }

// Stop sends sig, waits for the command to end and returns how it ended
// (nil: exit 0). The test fails when it does not end in time.
func (p *Proc) Stop(sig os.Signal) error {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(p.wait):
		p.t.Fatalf("still running %v after %v", p.wait, sig)
	}
	return p.waitErr
}

// Buffer is a bytes.Buffer safe for concurrent writers and readers.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
