package cli

import (
	"fmt"
	"time"

	"lbc/internal/exitcode"
	"lbc/reconcile"
)

// status prints, per device, what it runs and whether it is in sync.
func (e *env) status() int {
	c, err := e.hostsCompile()
	if err != nil {
		return e.printLoadError(err)
	}
	if c.shardNote != "" {
		fmt.Fprintf(e.stderr, "lbc status: %s\n", c.shardNote)
	}
	dial, err := e.dialer()
	if err != nil {
		return e.fail(err)
	}
	st, err := reconcile.ReadStatus(e.ctx, c.spec, c.res, dial, reconcile.StatusOptions{Parallelism: e.args.Parallelism, Limits: e.limits()})
	if err != nil {
		return e.fail(err)
	}
	now := time.Now()
	for i := range st {
		if art := c.res.Devices[st[i].Device]; art != nil {
			st[i].Certificates = deviceCerts(c.spec, art.Balancers, c.certs, e.args.CertWarn, now)
		}
	}
	if e.args.JSON {
		err = writeStatusJSON(e.stdout, st)
	} else {
		err = writeStatusText(e.stdout, st, color(e.stdout))
	}
	if err != nil {
		return e.fail(err)
	}
	for _, d := range st {
		if !d.Reachable {
			return exitcode.Error
		}
	}
	return exitcode.OK
}
