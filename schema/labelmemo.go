package schema

import (
	"sync"
	"sync/atomic"
)

// memoAllows remembers what allows answers for each label: asking CUE
// whether a pattern admits a label takes a lock shared by all instances,
// and pool names ("static", "api") repeat on every balancer of a fleet
// (the validator's other regular expressions use it too). Bounded: after
// maxAllowsMemo labels it starts over.
func memoAllows(allows func(string) bool) func(string) bool {
	var (
		seen sync.Map // label → bool
		n    atomic.Int64
	)
	return func(label string) bool {
		if ok, hit := seen.Load(label); hit {
			return ok.(bool)
		}
		ok := allows(label)
		if n.Add(1) > maxAllowsMemo {
			seen.Clear()
			n.Store(1)
		}
		seen.Store(label, ok)
		return ok
	}
}

const maxAllowsMemo = 100_000
