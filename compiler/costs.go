package compiler

import (
	"fmt"
	"sort"
)

// Cost names, as spec.Scheduler.Costs keys them.
const (
	CostBalancers = "balancers" // balancers already on the device
	CostMaxconn   = "maxconn"   // committed maxconn / capacity maxconn (0 when unbounded)
	CostSpread    = "spread"    // balancers of the same tenant already on the device
)

// costOrder is the order of the costs in explanations and in the sum.
var costOrder = [numCosts]string{CostBalancers, CostMaxconn, CostSpread}

// defaultWeights apply to a cost that spec.Scheduler.Costs leaves out.
var defaultWeights = [numCosts]float64{1.0, 1.0, 0.5}

const numCosts = 3

// weights reads the cost weights of the spec, defaults filling the gaps.
func weights(costs map[string]float64) ([numCosts]float64, error) {
	w := defaultWeights
	names := make([]string, 0, len(costs))
	for k := range costs {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		v := costs[k]
		i := -1
		for j, n := range costOrder {
			if n == k {
				i = j
			}
		}
		if i < 0 {
			return w, fmt.Errorf("scheduler.costs: unknown cost %q", k)
		}
		if v < 0 || v != v || v > 1e300 {
			return w, fmt.Errorf("scheduler.costs.%s: weight %v is not a finite number >= 0", k, v)
		}
		w[i] = v
	}
	return w, nil
}

// rawCosts returns the raw costs of placing b on d now.
func (s *sched) rawCosts(b *bal, d int32) [numCosts]float64 {
	dv := &s.devs[d]
	var r [numCosts]float64
	r[0] = float64(dv.count)
	r[1] = float64(dv.committed) * dv.invCapM
	if b.tenant != nil {
		r[2] = float64(b.tenant[d])
	}
	return r
}

// normalize turns the raw costs of the candidates into totals: each cost is
// scaled min-max to [0,1] across the candidates (all equal: 0), weighted,
// and summed in costOrder.
func (s *sched) normalize() {
	n := len(s.cand)
	s.total = s.total[:0]
	for i := 0; i < n; i++ {
		s.total = append(s.total, 0)
	}
	for k := 0; k < numCosts; k++ {
		raw := s.raw[k]
		lo, hi := 0.0, 0.0
		for i, v := range raw {
			if i == 0 || v < lo {
				lo = v
			}
			if i == 0 || v > hi {
				hi = v
			}
		}
		s.lo[k], s.hi[k] = lo, hi
		if hi == lo || s.w[k] == 0 {
			continue
		}
		scale := 1 / (hi - lo)
		w := s.w[k]
		for i, v := range raw {
			s.total[i] += w * ((v - lo) * scale)
		}
	}
}

// norm returns the normalized value of cost k of candidate i (after normalize).
func (s *sched) norm(k, i int) float64 {
	lo, hi := s.lo[k], s.hi[k]
	if hi == lo {
		return 0
	}
	return (s.raw[k][i] - lo) * (1 / (hi - lo))
}
