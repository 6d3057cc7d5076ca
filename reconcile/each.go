package reconcile

import (
	"context"
	"sort"
	"sync"

	"lbc/compiler"
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

// eachDevice calls f(i) for every i in [0, n), at most par at a time (10
// when par <= 0), and waits for them all. Once ctx is done, the calls not
// yet started get skip(i) instead.
func eachDevice(ctx context.Context, n, par int, f, skip func(i int)) {
	if par <= 0 {
		par = 10
	}
	sem := make(chan struct{}, par)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				skip(i)
				return
			}
			defer func() { <-sem }()
			f(i)
		}()
	}
	wg.Wait()
}
