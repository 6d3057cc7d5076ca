package reconcile

import (
	"context"
	"fmt"
	"io"
)

// Transport runs shell commands on one device. The SSH transport (ssh.go)
// is the real one; tests use it against an in-process SSH server.
// Every command line given to a Transport is already quoted (internal/shquote);
// a Transport adds sudo when the device asks for it.
type Transport interface {
	// Run runs cmd on the host, feeding stdin (may be nil), and returns its
	// stdout. A command that exits non-zero returns an *ExitError.
	Run(ctx context.Context, cmd string, stdin io.Reader) ([]byte, error)
	// Stream starts cmd and leaves it running; its life is tied to the
	// returned Stream (used for the device lock: closing stdin ends it).
	Stream(ctx context.Context, cmd string) (Stream, error)
	// Close closes the connection.
	Close() error
}

// Stream is a running remote command.
type Stream interface {
	Stdin() io.WriteCloser
	Stdout() io.Reader
	// Wait waits for the command to end; an *ExitError when it exits non-zero.
	Wait() error
	// Close ends the command (closing stdin and the session).
	Close() error
}

// ExitError is a remote command that exited non-zero.
type ExitError struct {
	Cmd    string
	Code   int
	Stderr string
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("%s: exit status %d: %s", e.Cmd, e.Code, e.Stderr)
}
