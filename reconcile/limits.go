package reconcile

import (
	"context"
	"errors"
	"fmt"
	"time"

	"lbc/reconcile/host"
)

// Limits bound what lbc accepts from a host and how long it waits for it:
// a broken or compromised host (a config that is a symlink to /dev/zero,
// a read that never ends, a login that hangs) fails its own device, with
// an error naming it, instead of stalling or exhausting the run.
type Limits struct {
	// MaxRead is the most bytes one read of a device may return (its
	// config, state.json and keepalived.conf in base64, and its
	// addresses); DefaultMaxRead when 0. Reads over SSH without the lock
	// are capped by SSHConfig.MaxOutput, which the CLI sets the same.
	MaxRead int64
	// ReadTimeout bounds one read of a device, with or without the lock;
	// DefaultReadTimeout when 0.
	ReadTimeout time.Duration
	// StartTimeout bounds how long a lock holder may take to start: the
	// session's login and shell start-up up to flock (a loaded host, a
	// slow login shell). The lock's own wait (LockTimeout) comes on top.
	// DefaultStartTimeout when 0.
	StartTimeout time.Duration
	// ScriptTimeout bounds one script of a transaction (the change, run
	// in the lock session), beyond its own waits (host.Script.Bound).
	// When it runs out, the lock session is closed and the device
	// reported failed with a timeout naming the step; the host finishes
	// the step and then commits or rolls back by itself.
	// DefaultScriptTimeout when 0.
	ScriptTimeout time.Duration
}

// The defaults of Limits, and of the CLI's --max-read, --read-timeout and
// --start-timeout, --script-timeout.
const (
	DefaultMaxRead       = 64 << 20
	DefaultReadTimeout   = 2 * time.Minute
	DefaultStartTimeout  = 30 * time.Second
	DefaultScriptTimeout = 10 * time.Minute
)

// maxLine is the longest line the lock holder's output may have (base64
// comes in lines of 76; `ip -j addr show` prints one line of about 200
// bytes an address).
const maxLine = 4 << 20

// ErrTimeout is a host that did not answer within a limit (wrapped, with
// the host and the limit).
var ErrTimeout = errors.New("timed out")

func (l Limits) maxRead() int64 {
	if l.MaxRead <= 0 {
		return DefaultMaxRead
	}
	return l.MaxRead
}

func (l Limits) readTimeout() time.Duration {
	if l.ReadTimeout <= 0 {
		return DefaultReadTimeout
	}
	return l.ReadTimeout
}

func (l Limits) scriptTimeout() time.Duration {
	if l.ScriptTimeout <= 0 {
		return DefaultScriptTimeout
	}
	return l.ScriptTimeout
}

func (l Limits) startTimeout() time.Duration {
	if l.StartTimeout <= 0 {
		return DefaultStartTimeout
	}
	return l.StartTimeout
}

// readLive is ReadLive bounded in time by lim (in size by the transport).
func readLive(ctx context.Context, t Transport, h Host, keepalived bool, files []string, lim Limits) (*Live, error) {
	rctx, cancel := context.WithTimeout(ctx, lim.readTimeout())
	defer cancel()
	out, err := t.Run(rctx, host.ReadScript(h, keepalived, files), nil)
	if err != nil {
		if ctx.Err() == nil && rctx.Err() != nil {
			return nil, fmt.Errorf("read %s: %w: no complete answer within %s (--read-timeout)", h.Address, ErrTimeout, lim.readTimeout())
		}
		return nil, err
	}
	return host.ParseRead(out)
}
