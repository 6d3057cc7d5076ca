package reconcile

import (
	"context"
	"sort"

	"lbc/compiler"
	"lbc/internal/par"
)

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
// (10 when workers <= 0), and waits for them all. Once ctx is done, the
// calls not yet started get skip(i) instead.
func eachDevice(ctx context.Context, n, workers int, f, skip func(i int)) {
	if workers <= 0 {
		workers = 10
	}
	started := make([]bool, n)
	par.Do(ctx, n, workers, func(i int) error {
		started[i] = true
		f(i)
		return nil
	})
	for i, ok := range started {
		if !ok {
			skip(i)
		}
	}
}
