package reconcile

import (
	"container/heap"
	"sort"

	"lbc/compiler"
)

// HAWaves returns an ApplyOptions.Waves function that orders the devices of
// a plan for HA pairs (res.Placement entries with a Standby): a pair's
// standby is applied before its primary, so that a config that breaks
// HAProxy breaks it first where it carries no traffic, and the two devices
// of a pair are never in the same wave, so that a pair is never changed at
// once.
//
// A new pair is applied primary first: one whose balancer both devices'
// plans list in NewVRRP (a nopreempt VRRP instance that neither device's
// keepalived.conf has yet). Its VIP carries no traffic yet, and a
// nopreempt instance started on the standby first becomes master alone and
// keeps the VIP when the primary's starts: the VIP would stay on the
// standby until a failover. When the two devices of a new pair also share
// pairs that are not new, the new pair's order wins for these two devices:
// a VIP on the wrong device stays there, while a change that breaks the
// primary is verified and rolled back, and meanwhile keepalived moves the
// primary's VIPs to the standby, which still runs its old config. A pair
// with preempt (failback: true) is never new: its primary takes the VIP
// whichever starts first.
//
// Devices are layered: a device's wave is one after the latest wave of any
// device it shares a pair with and that comes before it; a device with no
// HA pair (and a standby that is no pair's primary) is in the first wave.
// When the pairs form a cycle (A primary for one pair and standby for
// another whose primary is B, and B standby to A), the cycle is cut at the
// device with the fewest unapplied predecessors, the first by name: it goes
// first, its partners in later waves. The order is deterministic: the same
// result and plan give the same waves, each sorted by name.
//
// A device of the plan that res does not know is put in the first wave.
// A wave that would be empty is left out.
func HAWaves(res *compiler.Result) func(p *Plan) [][]string {
	var pairs []compiler.Placement
	if res != nil {
		pairs = distinctPairs(haPairs(res.Placement))
	}
	return func(p *Plan) [][]string {
		names := make([]string, 0, len(p.Devices))
		for _, d := range p.Devices {
			names = append(names, d.Device)
		}
		before, after := pairOrder(pairs, planNewVRRP(p))
		return layer(names, before, after)
	}
}

// pairOrder returns, for each device d, before[d]: the devices that must be
// applied before d, and after[d]: those that must be applied after it, as
// HAWaves describes (standby first, primary first for a new pair).
func pairOrder(pairs []compiler.Placement, newOn map[string]map[string]bool) (before, after map[string]map[string]bool) {
	before, after = map[string]map[string]bool{}, map[string]map[string]bool{}
	add := func(first, then string) {
		if before[then] == nil {
			before[then] = map[string]bool{}
		}
		if after[first] == nil {
			after[first] = map[string]bool{}
		}
		before[then][first], after[first][then] = true, true
	}
	isNew := func(pl compiler.Placement) bool {
		return newOn[pl.Primary][pl.Balancer] && newOn[pl.Standby][pl.Balancer]
	}
	type link struct{ a, b string } // a < b
	linkOf := func(pl compiler.Placement) link {
		if pl.Primary < pl.Standby {
			return link{pl.Primary, pl.Standby}
		}
		return link{pl.Standby, pl.Primary}
	}
	newLinks := map[link]bool{}
	for _, pl := range pairs {
		if isNew(pl) {
			newLinks[linkOf(pl)] = true
			add(pl.Primary, pl.Standby)
		}
	}
	for _, pl := range pairs {
		if !newLinks[linkOf(pl)] {
			add(pl.Standby, pl.Primary)
		}
	}
	return before, after
}

// PairWaves orders p's devices by the HA pairs p records (p.HAPairs), as
// HAWaves does for a compile result; a plan without pairs is one wave.
func PairWaves(p *Plan) [][]string {
	res := &compiler.Result{Placement: make(compiler.Lock, len(p.HAPairs))}
	for _, pl := range p.HAPairs {
		res.Placement[pl.Balancer] = pl
	}
	return HAWaves(res)(p)
}

// distinctPairs returns the HA pairs of pls whose standby is another
// device than the primary: only those order anything.
func distinctPairs(pls []compiler.Placement) []compiler.Placement {
	var pairs []compiler.Placement
	for _, pl := range pls {
		if pl.Standby != "" && pl.Standby != pl.Primary {
			pairs = append(pairs, pl)
		}
	}
	return pairs
}

// planNewVRRP maps each device of p to the balancers its plan lists in
// NewVRRP.
func planNewVRRP(p *Plan) map[string]map[string]bool {
	m := make(map[string]map[string]bool, len(p.Devices))
	for _, d := range p.Devices {
		m[d.Device] = set(d.NewVRRP)
	}
	return m
}

// layer puts names into waves as HAWaves describes. Pairs whose devices
// are not both in names constrain nothing.
func layer(names []string, before, after map[string]map[string]bool) [][]string {
	sort.Strings(names)
	in := make(map[string]bool, len(names))
	for _, n := range names {
		in[n] = true
	}
	// pending[d]: devices (in names) that must precede d, not yet placed.
	pending := make(map[string]int, len(names))
	for _, n := range names {
		for s := range before[n] {
			if in[s] && s != n {
				pending[n]++
			}
		}
	}
	wave := make(map[string]int, len(names))
	placed := make(map[string]bool, len(names))
	place := func(d string) {
		w := 0
		for _, m := range []map[string]bool{before[d], after[d]} {
			for u := range m {
				if placed[u] && wave[u]+1 > w {
					w = wave[u] + 1
				}
			}
		}
		wave[d], placed[d] = w, true
		for pr := range after[d] {
			if in[pr] && !placed[pr] {
				pending[pr]--
			}
		}
	}
	// ready holds the indexes in names of the unplaced devices with no
	// pending predecessor, smallest first: the next device is the first
	// of them by name, found without scanning every device each time (a
	// scan made the layering quadratic in the fleet's size).
	index := make(map[string]int, len(names))
	ready := &intHeap{}
	for i, n := range names {
		index[n] = i
		if pending[n] == 0 {
			heap.Push(ready, i)
		}
	}
	for left := len(names); left > 0; left-- {
		next := ""
		for ready.Len() > 0 && next == "" {
			if n := names[heap.Pop(ready).(int)]; !placed[n] {
				next = n
			}
		}
		if next == "" {
			// A cycle: the unplaced device with the fewest pending
			// predecessors, the first by name (a scan, once per cycle).
			best := -1
			for _, n := range names {
				if !placed[n] && (best < 0 || pending[n] < best) {
					next, best = n, pending[n]
				}
			}
		}
		place(next)
		for pr := range after[next] {
			if in[pr] && !placed[pr] && pending[pr] == 0 {
				heap.Push(ready, index[pr])
			}
		}
	}
	var out [][]string
	for _, n := range names { // sorted, so each wave is sorted
		w := wave[n]
		for len(out) <= w {
			out = append(out, nil)
		}
		out[w] = append(out[w], n)
	}
	// Levels are contiguous (a device in wave w>0 has a neighbour in w-1),
	// but drop empty ones anyway.
	waves := out[:0]
	for _, w := range out {
		if len(w) > 0 {
			waves = append(waves, w)
		}
	}
	return waves
}

// intHeap is a min-heap of ints (container/heap).
type intHeap []int

func (h intHeap) Len() int           { return len(h) }
func (h intHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h intHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *intHeap) Push(x any)        { *h = append(*h, x.(int)) }
func (h *intHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
