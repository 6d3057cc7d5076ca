package reconcile

import (
	"context"
	"fmt"
	"io"

	"lbc/schema"
)

// Endpoint is where lbc reaches one device's SSH server, and as whom.
type Endpoint struct {
	Device  string // the device's name, for errors
	Address string // IPv4, IPv6 or a DNS name
	Port    int    // 22 when 0
	User    string
	// Sudo runs every command through sudo -n, unless User is root.
	Sudo bool
}

// EndpointOf is where the spec says dev's SSH server is.
func EndpointOf(dev *schema.Device) Endpoint {
	return Endpoint{Device: dev.Name, Address: dev.Address, Port: dev.SSH.Port, User: dev.SSH.User, Sudo: dev.SSH.Sudo}
}

// endpointOf is where a plan says a device's SSH server is.
func endpointOf(device string, h Host) Endpoint {
	return Endpoint{Device: device, Address: h.Address, Port: h.Port, User: h.User, Sudo: h.Sudo}
}

// Dialer connects to a device. The CLI passes an SSHDialer's Dial, or a
// Conns' Dial that keeps its connections; tests dial an in-process SSH
// server.
type Dialer func(ctx context.Context, ep Endpoint) (Transport, error)

// Transport runs shell commands on one device, over one connection. The
// SSH transport (ssh.go) is the real one; tests use it against an
// in-process SSH server. Every command line given to a Transport is
// already quoted (package host); a Transport adds sudo when the device
// asks for it.
type Transport interface {
	// Run runs cmd on the host, feeding stdin (may be nil), and returns its
	// stdout. A command that exits non-zero returns an *ExitError.
	Run(ctx context.Context, cmd string, stdin io.Reader) ([]byte, error)
	// Stream starts cmd and leaves it running; its life is tied to the
	// returned Stream (used for the device lock: closing stdin ends it).
	Stream(ctx context.Context, cmd string) (Stream, error)
	// Alive reports whether the connection is open and the server
	// answers (a keepalive round trip, bounded).
	Alive(ctx context.Context) bool
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
