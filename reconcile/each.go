package reconcile

import (
	"context"
	"fmt"
	"path"
	"runtime"
	"sort"
	"strings"

	"lbc/compiler"
	"lbc/internal/par"
)

// DefaultParallelism is how many devices plan, apply and status work on at
// once unless told (lbc's --parallelism). Chosen from the scale section of
// make bench (bench/scale.sh, BENCH_SCALE_SWEEP): on simulated fleets of
// 300 and 1,000 hosts sharing a 2-CPU machine, the wall times of 10, 20
// and 40 overlap and 5 is slowest; 20 spends about a quarter less
// controller CPU a host than 10, for 10-15 MB more and about 25
// connections open at once, and halves the time of an apply bound by
// the hosts' latency (README, Performance).
const DefaultParallelism = 20

// deviceNames returns the names of the devices of res, sorted.
func deviceNames(res *compiler.Result) []string {
	names := make([]string, 0, len(res.Devices))
	for name := range res.Devices {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// eachDevice calls f(i) for every i in [0, n), at most workers at a time
// (DefaultParallelism when workers <= 0), and waits for them all. Once ctx is done, the
// calls not yet started get fail(i, ctx.Err()) instead; a call that panics
// gets fail(i, err) with the panic as err, and the others go on.
func eachDevice(ctx context.Context, n, workers int, f func(i int), fail func(i int, err error)) {
	if workers <= 0 {
		workers = DefaultParallelism
	}
	started := make([]bool, n)
	par.Do(ctx, n, workers, func(i int) error {
		started[i] = true
		if err := recovered(func() { f(i) }); err != nil {
			fail(i, err)
		}
		return nil
	})
	for i, ok := range started {
		if !ok {
			fail(i, ctx.Err())
		}
	}
}

// recovered runs f and returns the panic it raised as an error naming
// where it happened (for a bug report), or nil: a device whose data makes
// lbc panic fails alone instead of taking the whole run down.
func recovered(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error (please report it): panic: %v (at %s)", r, panicSite())
		}
	}()
	f()
	return nil
}

// panicSite is the function and line that panicked, called from a
// deferred recover: the first frame below runtime.gopanic that is not in
// the runtime.
func panicSite() string {
	pc := make([]uintptr, 32)
	frames := runtime.CallersFrames(pc[:runtime.Callers(3, pc)])
	seenPanic := false
	for {
		fr, more := frames.Next()
		if fr.Function == "runtime.gopanic" {
			seenPanic = true
		} else if seenPanic && !strings.HasPrefix(fr.Function, "runtime.") {
			return fmt.Sprintf("%s %s:%d", fr.Function, path.Base(fr.File), fr.Line)
		}
		if !more {
			return "unknown"
		}
	}
}
