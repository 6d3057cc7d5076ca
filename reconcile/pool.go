package reconcile

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"lbc/schema"
)

// Pool keeps one connection per device open across the steps of one run,
// so that `lbc apply DIR` (a plan, then the transactions) connects to each
// device once: a new connection costs the host an sshd start (~30 ms of
// CPU with OpenSSH 9.2), several times what a command on an open one does.
//
// Pool.Dial hands out the open connection of a device when it still
// answers (a keepalive round trip), and dials a new one otherwise. The
// Transports it returns ignore Close; Pool.Close closes the connections.
type Pool struct {
	dial  Dialer
	mu    sync.Mutex
	conns map[string]Transport
	held  map[string]*heldLock // device locks taken by a plan, by key
}

// heldLock is a device lock a plan took (PlanOptions.Lock), with what its
// holder read, waiting for the device's transaction.
type heldLock struct {
	device string
	ls     *lockSession
	live   *Live
}

// NewPool returns a pool that dials with dial.
func NewPool(dial Dialer) *Pool {
	return &Pool{dial: dial, conns: map[string]Transport{}, held: map[string]*heldLock{}}
}

// prober is a Transport that can tell whether its connection still answers.
type prober interface {
	Alive(ctx context.Context) bool
}

// aliveTimeout bounds the keepalive round trip of a pooled connection.
const aliveTimeout = 5 * time.Second

// Dial returns the pooled connection to dev, or a new one. Devices are told
// apart by name, address, user and port.
func (p *Pool) Dial(ctx context.Context, dev *schema.Device) (Transport, error) {
	key := dev.Name + "\x00" + dev.Address + "\x00" + dev.SSH.User + "\x00" + strconv.Itoa(dev.SSH.Port)
	p.mu.Lock()
	t := p.conns[key]
	p.mu.Unlock()
	if t != nil {
		if pr, ok := t.(prober); !ok || pr.Alive(ctx) {
			return pooled{t, p, key}, nil
		}
		p.dropHeld(key)
		t.Close()
	}
	t, err := p.dial(ctx, dev)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	old := p.conns[key]
	p.conns[key] = t
	p.mu.Unlock()
	if old != nil && old != t {
		old.Close()
	}
	return pooled{t, p, key}, nil
}

// dropHeld forgets the lock held on a connection that died (its holder
// ended with it).
func (p *Pool) dropHeld(key string) {
	p.mu.Lock()
	hl := p.held[key]
	delete(p.held, key)
	p.mu.Unlock()
	if hl != nil {
		hl.ls.Close()
	}
}

// ReleaseLocks releases the device locks a plan took for every device
// that keep does not name: devices with nothing to apply are unlocked as
// soon as the plan is known.
func (p *Pool) ReleaseLocks(keep func(device string) bool) {
	p.mu.Lock()
	var rel []*heldLock
	for k, hl := range p.held {
		if keep == nil || !keep(hl.device) {
			rel = append(rel, hl)
			delete(p.held, k)
		}
	}
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, hl := range rel {
		wg.Add(1)
		go func() { defer wg.Done(); release(hl.ls) }()
	}
	wg.Wait()
}

// ReleaseUnchanged releases the locks a plan took on the devices that plan
// has nothing to apply to (any status but changes), as soon as the plan is
// known; the others stay held for their transactions.
func (p *Pool) ReleaseUnchanged(plan *Plan) {
	changes := map[string]bool{}
	for _, d := range plan.Devices {
		changes[d.Device] = d.Status == StatusChanges
	}
	p.ReleaseLocks(func(dev string) bool { return changes[dev] })
}

// Close releases the locks still held and closes every pooled connection.
func (p *Pool) Close() error {
	p.ReleaseLocks(nil)
	p.mu.Lock()
	defer p.mu.Unlock()
	var first error
	for k, t := range p.conns {
		if err := t.Close(); err != nil && first == nil {
			first = fmt.Errorf("close %s: %w", k[:strings.IndexByte(k, 0)], err)
		}
		delete(p.conns, k)
	}
	return first
}

// pooled is a pooled connection handed out by Dial: its Close is the pool's.
type pooled struct {
	t   Transport
	p   *Pool
	key string
}

// hold keeps a device lock taken on this connection for the transaction.
func (c pooled) hold(hl *heldLock) {
	c.p.mu.Lock()
	old := c.p.held[c.key]
	c.p.held[c.key] = hl
	c.p.mu.Unlock()
	if old != nil {
		release(old.ls)
	}
}

// takeHeld returns, and forgets, the lock a plan took for device on t's
// connection; nil when there is none.
func takeHeld(t Transport, device string) *heldLock {
	c, ok := t.(pooled)
	if !ok {
		return nil
	}
	c.p.mu.Lock()
	defer c.p.mu.Unlock()
	hl := c.p.held[c.key]
	if hl == nil || hl.device != device {
		return nil
	}
	delete(c.p.held, c.key)
	return hl
}

func (c pooled) Run(ctx context.Context, cmd string, stdin io.Reader) ([]byte, error) {
	return c.t.Run(ctx, cmd, stdin)
}
func (c pooled) Stream(ctx context.Context, cmd string) (Stream, error) { return c.t.Stream(ctx, cmd) }
func (c pooled) Close() error                                           { return nil }
