// Package shard splits the devices of a compile into n shards, so that n
// copies of lbc (a CI matrix, a Kubernetes Indexed Job) each plan, apply or
// read one shard and together cover the fleet once. It is pure: it takes a
// compile result and returns names; the command line does the I/O.
//
// A shard is a set of units. A unit is a device, or the devices that must
// be changed by one controller: the two devices of an HA pair (apply orders
// a pair standby first, which only one controller can do) and devices that
// carry the same VIP address. Units are derived from the compile's
// placement and artifacts, not from a second copy of the scheduler's rules.
//
// Units are assigned by rendezvous hashing with a load bound: each unit
// ranks the shards by a hash of (unit, shard) and takes the best-ranked one
// that still has room, units taken in the order of their own hash. The
// bound is (1+Epsilon) times the average shard load in devices (or the
// average plus the largest unit, when that is more), so going from n to
// n+1 shards moves about 1/(n+1) of the units and no shard is more than
// (1+Epsilon) times the average. The assignment depends only on the units
// and n: every copy computes the same one.
package shard

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"lbc/compiler"
)

// Epsilon is the load bound's slack: no shard holds more than
// (1+Epsilon)·average devices (or average + largest unit - 1, when more).
const Epsilon = 0.25

// MaxCount bounds n: more shards than this is a mistake on the command line.
const MaxCount = 10000

// Unit is a set of devices that one shard takes whole.
type Unit struct {
	Key     string   `json:"key"`     // the first of Devices; what the hash ranks shards by
	Devices []string `json:"devices"` // sorted
}

// Shard is one shard of n: Index in [0, Count).
type Shard struct {
	Index, Count int
}

func (s Shard) String() string { return fmt.Sprintf("%d/%d", s.Index, s.Count) }

// Parse reads "i/n", 0 <= i < n (as Kubernetes' JOB_COMPLETION_INDEX counts).
func Parse(s string) (Shard, error) {
	a, b, ok := strings.Cut(s, "/")
	if !ok {
		return Shard{}, fmt.Errorf("shard %q: want i/n, e.g. 0/4", s)
	}
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil {
		return Shard{}, fmt.Errorf("shard %q: want i/n with whole numbers, e.g. 0/4", s)
	}
	if n < 1 || n > MaxCount {
		return Shard{}, fmt.Errorf("shard %q: n must be between 1 and %d", s, MaxCount)
	}
	if i < 0 || i >= n {
		return Shard{}, fmt.Errorf("shard %q: i must be between 0 and n-1 (%d)", s, n-1)
	}
	return Shard{Index: i, Count: n}, nil
}

// Units groups the devices of res into units: the connected sets of devices
// linked by an HA placement (primary and standby) or by a VIP address that
// the artifacts of both carry. Every device of res is in exactly one unit.
// Units are sorted by key.
func Units(res *compiler.Result) []Unit {
	names := make([]string, 0, len(res.Devices))
	for name := range res.Devices {
		names = append(names, name)
	}
	sort.Strings(names)
	idx := make(map[string]int, len(names))
	for i, n := range names {
		idx[n] = i
	}
	parent := make([]int, len(names))
	for i := range parent {
		parent[i] = i
	}
	var find func(int) int
	find = func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	union := func(a, b string) {
		ia, oka := idx[a]
		ib, okb := idx[b]
		if !oka || !okb {
			return // a placement naming a device the compile does not have
		}
		ra, rb := find(ia), find(ib)
		if ra < rb {
			parent[rb] = ra
		} else if rb < ra {
			parent[ra] = rb
		}
	}
	for _, pl := range res.Placement {
		if pl.Standby != "" {
			union(pl.Primary, pl.Standby)
		}
	}
	holder := map[string]string{} // VIP address → first device seen carrying it
	for _, name := range names {
		for _, v := range res.Devices[name].VIPs {
			a := v.Address.String()
			if first, ok := holder[a]; ok {
				union(first, name)
			} else {
				holder[a] = name
			}
		}
	}
	byRoot := map[int]int{} // root → index in units
	var units []Unit
	for i, name := range names { // names sorted: a unit's first device is its root's
		r := find(i)
		k, ok := byRoot[r]
		if !ok {
			k = len(units)
			byRoot[r] = k
			units = append(units, Unit{Key: name})
		}
		units[k].Devices = append(units[k].Devices, name)
	}
	return units
}

// Bound is the most devices Assign puts in one of n shards of units:
// (1+Epsilon) times the average, rounded up, and at least the average
// rounded up plus the largest unit less one, so that every unit fits.
func Bound(units []Unit, n int) int {
	total, largest := 0, 0
	for _, u := range units {
		total += len(u.Devices)
		largest = max(largest, len(u.Devices))
	}
	if n < 1 || total == 0 {
		return 0
	}
	avg := (total + n - 1) / n
	b := int((1+Epsilon)*float64(total)/float64(n) + 0.999999)
	return max(b, avg+largest-1)
}

// Assign returns the shard of each unit (in the order of units) for n
// shards. Each unit goes to the shard that ranks highest for it by
// rendezvous hashing among those with room for it under Bound, units taken
// in the order of their keys' hashes (an order that does not depend on n).
func Assign(units []Unit, n int) []int {
	out := make([]int, len(units))
	if n <= 1 {
		return out
	}
	bound := Bound(units, n)
	order := make([]int, len(units))
	keyHash := make([]uint64, len(units))
	for i, u := range units {
		order[i] = i
		keyHash[i] = hashString(u.Key)
	}
	sort.Slice(order, func(a, b int) bool {
		ha, hb := keyHash[order[a]], keyHash[order[b]]
		if ha != hb {
			return ha < hb
		}
		return units[order[a]].Key < units[order[b]].Key
	})
	load := make([]int, n)
	type ranked struct {
		score uint64
		shard int
	}
	rank := make([]ranked, n)
	for _, ui := range order {
		w := len(units[ui].Devices)
		for s := range rank {
			rank[s] = ranked{mix(keyHash[ui] ^ mix(uint64(s)+0x9e3779b97f4a7c15)), s}
		}
		slices.SortFunc(rank, func(a, b ranked) int {
			switch {
			case a.score > b.score:
				return -1
			case a.score < b.score:
				return 1
			}
			return a.shard - b.shard
		})
		out[ui] = rank[0].shard // Bound leaves room for every unit; this is never kept
		for _, r := range rank {
			if load[r.shard]+w <= bound {
				out[ui] = r.shard
				break
			}
		}
		load[out[ui]] += w
	}
	return out
}

// Devices returns the devices of shard s: the union of its units' devices.
func Devices(res *compiler.Result, s Shard) map[string]bool {
	units := Units(res)
	assign := Assign(units, s.Count)
	devs := map[string]bool{}
	for i, u := range units {
		if assign[i] == s.Index {
			for _, d := range u.Devices {
				devs[d] = true
			}
		}
	}
	return devs
}

// Select returns a copy of res that holds only the devices of shard s; the
// placement stays whole (the plan orders HA pairs by it, and a shard holds
// both devices of each pair it has).
func Select(res *compiler.Result, s Shard) *compiler.Result {
	keep := Devices(res, s)
	out := *res
	out.Devices = make(map[string]*compiler.DeviceArtifacts, len(keep))
	for name, art := range res.Devices {
		if keep[name] {
			out.Devices[name] = art
		}
	}
	return &out
}

// hashString is 64-bit FNV-1a, finished by mix: stable across platforms
// and Go versions, which the assignment must be.
func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return mix(h)
}

// mix is SplitMix64's finalizer: every input bit affects every output bit.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
