package reconcile

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"
)

// Conns keeps one connection per device open across the steps of one run,
// so that the cycles of `lbc watch` connect to each device once (`lbc
// apply DIR` needs no Conns: PlanApply keeps each device's connection from
// its read to its transaction): a new connection costs the
// host an sshd start (~30 ms of CPU with OpenSSH 9.2), several times what
// a command on an open one does.
//
// Conns.Dial hands out the open connection of a device when it still
// answers (a keepalive round trip), and dials a new one otherwise. The
// Transports it returns ignore Close; Conns.Close closes the connections.
// The device locks a plan keeps for apply are Locks'.
type Conns struct {
	dial  Dialer
	mu    sync.Mutex
	conns map[Endpoint]Transport
}

// NewConns returns connections that are dialled with dial.
func NewConns(dial Dialer) *Conns {
	return &Conns{dial: dial, conns: map[Endpoint]Transport{}}
}

// aliveTimeout bounds the keepalive round trip of a kept connection.
const aliveTimeout = 5 * time.Second

// Dial returns the open connection to ep, or a new one. It is a Dialer.
func (c *Conns) Dial(ctx context.Context, ep Endpoint) (Transport, error) {
	c.mu.Lock()
	t := c.conns[ep]
	c.mu.Unlock()
	if t != nil {
		if t.Alive(ctx) {
			return kept{t}, nil
		}
		t.Close()
	}
	t, err := c.dial(ctx, ep)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	old := c.conns[ep]
	c.conns[ep] = t
	c.mu.Unlock()
	if old != nil && old != t {
		old.Close()
	}
	return kept{t}, nil
}

// Close closes every connection.
func (c *Conns) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var first error
	for ep, t := range c.conns {
		if err := t.Close(); err != nil && first == nil {
			first = fmt.Errorf("close %s: %w", ep.Device, err)
		}
		delete(c.conns, ep)
	}
	return first
}

// kept is a connection handed out by Conns.Dial: its Close is Conns'.
type kept struct{ t Transport }

func (k kept) Run(ctx context.Context, cmd string, stdin io.Reader) ([]byte, error) {
	return k.t.Run(ctx, cmd, stdin)
}
func (k kept) Stream(ctx context.Context, cmd string) (Stream, error) { return k.t.Stream(ctx, cmd) }
func (k kept) Alive(ctx context.Context) bool                         { return k.t.Alive(ctx) }
func (k kept) Close() error                                           { return nil }
