package reconcile

import (
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
// Devices are layered: a device's wave is one after the latest wave of any
// device it shares a pair with and that comes before it; a device with no
// HA pair (and a standby that is no pair's primary) is in the first wave.
// When the pairs form a cycle (A primary for one pair and standby for
// another whose primary is B, and B standby to A), the cycle is cut at the
// device with the fewest unapplied standbys, the first by name: it goes
// first, its partners in later waves. The order is deterministic: the same
// result and plan give the same waves, each sorted by name.
//
// A device of the plan that res does not know is put in the first wave.
// A wave that would be empty is left out.
func HAWaves(res *compiler.Result) func(p *Plan) [][]string {
	// before[d] = standbys that must precede primary d; after[d] = the
	// primaries that d (a standby) must precede.
	before := map[string]map[string]bool{}
	after := map[string]map[string]bool{}
	add := func(m map[string]map[string]bool, k, v string) {
		if m[k] == nil {
			m[k] = map[string]bool{}
		}
		m[k][v] = true
	}
	if res != nil {
		for _, pl := range res.Placement {
			if pl.Standby == "" || pl.Standby == pl.Primary {
				continue
			}
			add(before, pl.Primary, pl.Standby)
			add(after, pl.Standby, pl.Primary)
		}
	}
	return func(p *Plan) [][]string {
		names := make([]string, 0, len(p.Devices))
		for _, d := range p.Devices {
			names = append(names, d.Device)
		}
		return layer(names, before, after)
	}
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

// layer puts names into waves as HAWaves describes. Pairs whose devices
// are not both in names constrain nothing.
func layer(names []string, before, after map[string]map[string]bool) [][]string {
	sort.Strings(names)
	in := make(map[string]bool, len(names))
	for _, n := range names {
		in[n] = true
	}
	// pending[d]: standbys of d (in names) not yet placed.
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
	for left := len(names); left > 0; left-- {
		// The first unplaced device by name with no pending standby; in a
		// cycle, the one with the fewest.
		next, best := "", -1
		for _, n := range names {
			if placed[n] {
				continue
			}
			if best < 0 || pending[n] < best {
				next, best = n, pending[n]
				if best == 0 {
					break
				}
			}
		}
		place(next)
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
