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

// costWeights reads the cost weights of the spec, defaults filling the gaps.
func costWeights(costs map[string]float64) ([numCosts]float64, error) {
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

// scaling returns the weights, and the offset and factor that scale each
// cost min-max to [0,1] across the candidates (all equal: factor 0).
func (s *sched) scaling() (w, lo, scale [numCosts]float64) {
	for k := range w {
		w[k], lo[k] = s.w[k], s.lo[k]
		if s.hi[k] > s.lo[k] {
			scale[k] = 1 / (s.hi[k] - s.lo[k])
		}
	}
	return w, lo, scale
}

// total is Σ weight × normalized cost, summed in costOrder. Both the
// scheduler's choice (best) and Explain (score) use it.
func total(w, lo, scale *[numCosts]float64, v0, v1, v2 float64) float64 {
	return w[0]*((v0-lo[0])*scale[0]) + w[1]*((v1-lo[1])*scale[1]) + w[2]*((v2-lo[2])*scale[2])
}

// score sets s.raw and s.total for the candidates (Explain).
func (s *sched) score() {
	w, lo, scale := s.scaling()
	for i, d := range s.cand[:s.n] {
		v0, v1, v2 := s.costs(&s.cu, d)
		s.raw[i] = [numCosts]float64{v0, v1, v2}
		s.total[i] = total(&w, &lo, &scale, v0, v1, v2)
	}
}

// norm returns the normalized value of cost k of candidate i (after score).
func (s *sched) norm(k, i int) float64 {
	if s.hi[k] > s.lo[k] {
		return (s.raw[i][k] - s.lo[k]) * (1 / (s.hi[k] - s.lo[k]))
	}
	return 0
}
