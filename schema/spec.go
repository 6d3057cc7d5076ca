// Package schema loads a spec tree of CUE files, checks it against the
// embedded CUE schema and lbc's semantic rules, and returns typed values
// that keep source positions. It leaves placement and rendering to the compiler.
package schema

import "sort"

// DeviceNames returns the device names, sorted.
func (s *Spec) DeviceNames() []string {
	names := make([]string, 0, len(s.Devices))
	for n := range s.Devices {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// BalancerNames returns the balancer names, sorted.
func (s *Spec) BalancerNames() []string {
	names := make([]string, 0, len(s.Balancers))
	for n := range s.Balancers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// HasHA reports whether b asks for a primary/standby pair.
func (b *Balancer) HasHA() bool { return b.Placement.HA }

// TotalMaxconn is what b commits on a device for capacity: its own maxconn,
// or the sum of the maxconn of its nodes, of every pool, when it sets none.
func (b *Balancer) TotalMaxconn() int {
	if b.Maxconn > 0 {
		return b.Maxconn
	}
	sum := 0
	b.AllNodes(func(n Node) { sum += n.Maxconn })
	return sum
}

// PosOf returns the position of a field of b, falling back to b's own.
func (b *Balancer) PosOf(field string) Pos {
	if p, ok := b.FieldPos[field]; ok {
		return p
	}
	return b.Pos
}

// PosOf returns the position of a field of d, falling back to d's own.
func (d *Device) PosOf(field string) Pos {
	if p, ok := d.FieldPos[field]; ok {
		return p
	}
	return d.Pos
}
