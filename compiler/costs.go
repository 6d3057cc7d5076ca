package compiler

import (
	"fmt"
	"math"
	"slices"
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

// tenantLoad counts the balancers of one tenant per device, and lists the
// devices where it has any (in no order).
type tenantLoad struct {
	n  []int32 // by device
	nz []int32 // devices with n > 0
}

func (t *tenantLoad) add(d, sign int32) {
	old := t.n[d]
	t.n[d] += sign
	switch {
	case old == 0 && t.n[d] > 0:
		t.nz = append(t.nz, d)
	case old > 0 && t.n[d] == 0:
		i := slices.Index(t.nz, d)
		t.nz[i] = t.nz[len(t.nz)-1]
		t.nz = t.nz[:len(t.nz)-1]
	}
}

// classIndex keeps the devices of one class by load, so that choose finds
// the ranges of the costs and the best device without visiting them all:
// byCount[c] holds the devices with c balancers, sorted by (ratio, index).
type classIndex struct {
	byCount    [][]int32
	lo, hi     int32 // lowest and highest count with a device
	size       int32
	slackN     int32 // min over the devices of maxCount - count
	slackC     int64 // min over the devices of maxConn - committed
	slackDirty bool  // a device was unloaded: recompute the slacks
	rlo, rhi   float64
	ratioDirty bool // a device moved: recompute rlo and rhi
}

func (s *sched) initIndex() {
	s.index = make([]classIndex, len(s.classes))
	for c := range s.classes {
		ci := &s.index[c]
		ci.byCount = [][]int32{append([]int32(nil), s.classes[c].devs...)}
		ci.size = int32(len(s.classes[c].devs))
		ci.slackDirty, ci.ratioDirty = true, true
	}
}

// remove takes d, which has count balancers, out of its bucket.
func (ci *classIndex) remove(d, count int32) {
	b := ci.byCount[count]
	i := slices.Index(b, d)
	ci.byCount[count] = append(b[:i], b[i+1:]...)
}

// insert puts d in the bucket of its count, and fixes lo and hi.
func (ci *classIndex) insert(load []devLoad, d int32) {
	l := &load[d]
	c := l.count
	for int(c) >= len(ci.byCount) {
		ci.byCount = append(ci.byCount, nil)
	}
	b := ci.byCount[c]
	i, _ := slices.BinarySearchFunc(b, d, func(e, d int32) int {
		if re, rd := load[e].ratio, l.ratio; re != rd {
			if re < rd {
				return -1
			}
			return 1
		}
		return int(e - d)
	})
	ci.byCount[c] = slices.Insert(b, i, d)
	ci.ratioDirty = true
	ci.lo, ci.hi = min(ci.lo, c), max(ci.hi, c)
	for len(ci.byCount[ci.lo]) == 0 {
		ci.lo++
	}
	for len(ci.byCount[ci.hi]) == 0 {
		ci.hi--
	}
}

// slacks returns the class's minimum room left, in balancers and maxconn.
func (s *sched) slacks(c int) (int32, int64) {
	ci := &s.index[c]
	if ci.slackDirty {
		ci.slackN, ci.slackC = math.MaxInt32, math.MaxInt64
		for _, d := range s.classes[c].devs {
			l := &s.load[d]
			ci.slackN = min(ci.slackN, l.maxCount-l.count)
			ci.slackC = min(ci.slackC, l.maxConn-l.committed)
		}
		ci.slackDirty = false
	}
	return ci.slackN, ci.slackC
}

// choose returns the device that candidates and best would choose for u
// in a role, -1 when none passes the filters.
//
// When every device of every class passing the static filters also passes
// the dynamic ones (no device short of room, the primary's class out), the
// candidates are whole classes: the ranges of the costs come from the
// class indexes and the tenant's devices, and the best device is found by
// walking each class's buckets in order of count, then ratio, while a
// lower bound of the total (the device's own balancers and ratio costs,
// the lowest spread) does not exceed the best total seen. total does not
// decrease when any raw cost grows, even rounded, so no device skipped
// could have had a lower total, or the same total and a lower index.
// Otherwise (pins, members of several tenants, devices short of room) it
// scans like candidates.
func (s *sched) choose(u *unit, primary, pref int32) int32 {
	if s.noFast || (primary == noPrimary && u.pin != noPin) || u.tenants != nil {
		s.candidates(u, primary)
		return s.best(pref)
	}
	pz := int32(-1)
	if primary != noPrimary && s.haZones {
		pz = s.devs[primary].zone
	}
	lo := [numCosts]float64{math.Inf(1), math.Inf(1), math.Inf(1)}
	hi := [numCosts]float64{math.Inf(-1), math.Inf(-1), math.Inf(-1)}
	n := int32(0)
	for c := range s.classes {
		cl := &s.classes[c]
		ok := cl.zone != pz && s.staticOK(u, int32(c))
		s.classOK[c] = ok
		if !ok {
			continue
		}
		if primary != noPrimary && s.devs[primary].class == int32(c) {
			s.candidates(u, primary)
			return s.best(pref)
		}
		if sn, sc := s.slacks(c); sn < u.n || sc < u.maxconn {
			s.candidates(u, primary)
			return s.best(pref)
		}
		ci := &s.index[c]
		n += ci.size
		lo[0], hi[0] = min(lo[0], float64(ci.lo)), max(hi[0], float64(ci.hi))
		if ci.ratioDirty {
			ci.rlo, ci.rhi = math.Inf(1), math.Inf(-1)
			for k := ci.lo; k <= ci.hi; k++ {
				if b := ci.byCount[k]; len(b) > 0 {
					ci.rlo = min(ci.rlo, s.load[b[0]].ratio)
					ci.rhi = max(ci.rhi, s.load[b[len(b)-1]].ratio)
				}
			}
			ci.ratioDirty = false
		}
		if ci.rlo < lo[1] {
			lo[1] = ci.rlo
		}
		if ci.rhi > hi[1] {
			hi[1] = ci.rhi
		}
	}
	if n == 0 {
		return -1
	}
	var tn []int32
	lo[2], hi[2] = 0, 0
	if u.tenant != nil {
		tn = u.tenant.n
		k, tlo, thi := int32(0), int32(math.MaxInt32), int32(0)
		for _, d := range u.tenant.nz {
			if !s.classOK[s.classOf[d]] {
				continue
			}
			v := tn[d]
			if v < tlo {
				tlo = v
			}
			if v > thi {
				thi = v
			}
			k++
		}
		if k < n {
			tlo = 0
		}
		lo[2], hi[2] = float64(tlo), float64(thi)
	}
	s.lo, s.hi = lo, hi
	s.fastN++
	w, off, scale := s.scaling()
	search := func(zone int32) int32 {
		bd, bt := int32(-1), math.Inf(1)
		for c := range s.classes {
			if !s.classOK[c] || zone >= 0 && s.classes[c].zone != zone {
				continue
			}
			ci := &s.index[c]
			for k := ci.lo; k <= ci.hi; k++ {
				v0 := float64(k)
				if total(&w, &off, &scale, v0, lo[1], lo[2]) > bt {
					break
				}
				for _, d := range ci.byCount[k] {
					r := s.load[d].ratio
					if total(&w, &off, &scale, v0, r, lo[2]) > bt {
						break
					}
					v2 := 0.0
					if tn != nil {
						v2 = float64(tn[d])
					}
					if t := total(&w, &off, &scale, v0, r, v2); t < bt || t == bt && d < bd {
						bd, bt = d, t
					}
				}
			}
		}
		return bd
	}
	if pref >= 0 {
		if d := search(pref); d >= 0 {
			return d
		}
	}
	return search(-1)
}
