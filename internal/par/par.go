// Package par runs a function over the indices 0..n-1 on a bounded number
// of goroutines. It leaves what the function does, and how its results are
// kept, to the caller.
package par

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
)

// Do calls f(i) for every i in [0, n) on at most workers goroutines
// (GOMAXPROCS when workers <= 0), handing the indices out in order. It
// stops handing them out once a call returns an error or ctx is done, waits
// for the calls under way, and returns the error of the lowest index that
// failed; else ctx.Err() when some index was never started; else nil.
func Do(ctx context.Context, n, workers int, f func(i int) error) error {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	errs := make([]error, n)
	var next atomic.Int64
	var failed atomic.Bool
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for !failed.Load() && ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if errs[i] = f(i); errs[i] != nil {
					failed.Store(true)
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	if int(next.Load()) < n {
		return ctx.Err()
	}
	return nil
}
