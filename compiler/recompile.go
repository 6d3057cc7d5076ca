package compiler

import (
	"fmt"
	"maps"
	"reflect"
	"slices"

	"lbc/schema"
)

// inputs is what a Result was compiled from: Recompile compares a new spec
// with it to find what it can reuse.
type inputs struct {
	spec    *schema.Spec
	lock    Lock // the lock given to the scheduler
	opts    Options
	names   []string // the balancers, sorted
	haNames []string // the HA balancers, sorted
	placed  map[string][]*schema.Balancer
	roles   map[string]map[string]string
	haByDev map[string][]haVIP // copies: the values rendered
}

func (l *layout) inputs(spec *schema.Spec, lock Lock, opts Options) *inputs {
	in := &inputs{spec: spec, lock: maps.Clone(lock), opts: opts, names: l.names, haNames: l.haNames,
		placed: l.placed, roles: l.roles,
		haByDev: make(map[string][]haVIP, len(l.haByDev))}
	for dev, hs := range l.haByDev {
		cp := make([]haVIP, len(hs))
		for i, h := range hs {
			cp[i] = *h
		}
		in.haByDev[dev] = cp
	}
	return in
}

// Recompile returns what Compile(spec, lock, opts) returns, byte for byte,
// doing only the work that spec, lock and opts make necessary after prev
// (a result of Compile or Recompile):
//
//   - the placement of prev is reused as is when lock equals the lock prev
//     was compiled with and everything the scheduler reads is unchanged:
//     the scheduler settings, every device (its value, positions aside),
//     and the set of balancers with, for each, its tenant, VIPs, placement
//     and total maxconn (see sameForScheduling). The scheduler being a pure
//     function of these, that is the placement Compile would make.
//     Otherwise the balancers are scheduled as Compile does.
//   - a device keeps prev's *DeviceArtifacts (the same pointer) when its
//     files would not change: opts, its own value, the balancers placed on
//     it (their values and roles), and its HA VIPs (pair, virtual_router_id,
//     the peer's address) are all as they were. The others are rendered.
//
// Values are compared ignoring source positions, and by pointer first: a
// loader that reuses the balancers of unchanged instances makes most
// comparisons one pointer comparison. Recompile assumes that the values of
// prev's spec were not modified since; spec may share them.
//
// With a nil prev (or one Recompile knows nothing about) it is Compile.
func Recompile(spec *schema.Spec, lock Lock, prev *Result, opts Options) (*Result, error) {
	if prev == nil || prev.in == nil {
		return Compile(spec, lock, opts)
	}
	if spec == nil {
		return nil, fmt.Errorf("compile: no spec")
	}
	old := prev.in
	var lay *layout
	var placement Lock
	var stats Stats
	var err error
	if lock.Equal(old.lock) && sameForScheduling(old.spec, spec) {
		placement, stats = maps.Clone(prev.Placement), prev.Stats
		lay, err = old.relayout(spec, placement)
	} else {
		if placement, stats, err = Schedule(spec, lock); err != nil {
			return nil, err
		}
		lay, err = layoutOf(spec, placement)
	}
	if err != nil {
		return nil, err
	}
	devs := make(map[string]*DeviceArtifacts, len(spec.Devices))
	for _, name := range spec.DeviceNames() {
		if a := prev.Devices[name]; a != nil && opts == old.opts && sameDeviceInputs(old, spec, lay, name) {
			devs[name] = a
			continue
		}
		if devs[name], err = lay.render(spec, name, opts); err != nil {
			return nil, err
		}
	}
	return &Result{Devices: devs, Placement: placement, Stats: stats, Revision: opts.Revision,
		in: lay.inputs(spec, lock, opts)}, nil
}

// relayout is layoutOf(spec, placement) for a spec that is the same as
// old's for scheduling (see sameForScheduling) and old's placement: the
// balancers, their roles and addresses are where they were and passed
// layoutOf's checks there. Only the balancer values are spec's, and the
// HA VIPs are collected again (failback may have changed).
func (old *inputs) relayout(spec *schema.Spec, placement Lock) (*layout, error) {
	placed := make(map[string][]*schema.Balancer, len(old.placed))
	for dev, bs := range old.placed {
		nb := make([]*schema.Balancer, len(bs))
		for i, b := range bs {
			if nb[i] = spec.Balancers[b.Name]; nb[i] == nil {
				return nil, fmt.Errorf("compile: balancer %s: not in the spec", b.Name) // not when sameForScheduling
			}
		}
		placed[dev] = nb
	}
	lay := &layout{names: old.names, haNames: old.haNames, placed: placed, roles: old.roles}
	if err := lay.numberHA(spec, placement); err != nil {
		return nil, err
	}
	return lay, nil
}

// sameForScheduling reports whether the scheduler reads the same values
// from a and b. The scheduler reads of a balancer only its name, tenant,
// VIPs, placement and TotalMaxconn; a scheduler that reads more must
// compare it here.
func sameForScheduling(a, b *schema.Spec) bool {
	if !reflect.DeepEqual(a.Scheduler, b.Scheduler) || len(a.Devices) != len(b.Devices) || len(a.Balancers) != len(b.Balancers) {
		return false
	}
	for name, d := range b.Devices {
		if !sameDevice(a.Devices[name], d) {
			return false
		}
	}
	for name, y := range b.Balancers {
		x := a.Balancers[name]
		if x == y {
			continue
		}
		if x == nil || y == nil || x.Name != y.Name || x.Tenant != y.Tenant || x.TotalMaxconn() != y.TotalMaxconn() ||
			!slices.Equal(x.VIPs, y.VIPs) || !reflect.DeepEqual(x.Placement, y.Placement) {
			return false
		}
	}
	return true
}

// sameDeviceInputs reports whether the device name would be rendered from
// the same values in lay (of spec) as in old.
func sameDeviceInputs(old *inputs, spec *schema.Spec, lay *layout, name string) bool {
	if !sameDevice(old.spec.Devices[name], spec.Devices[name]) {
		return false
	}
	xs, ys := old.placed[name], lay.placed[name]
	if len(xs) != len(ys) {
		return false
	}
	xr, yr := old.roles[name], lay.roles[name]
	for i, y := range ys {
		if x := xs[i]; x.Name != y.Name || xr[x.Name] != yr[y.Name] || !sameBalancer(x, y) {
			return false
		}
	}
	xh, yh := old.haByDev[name], lay.haByDev[name]
	if len(xh) != len(yh) {
		return false
	}
	for i, y := range yh {
		x := &xh[i]
		if x.addr != y.addr || x.primary != y.primary || x.standby != y.standby || x.vrid != y.vrid ||
			x.multicast != y.multicast || x.nopreempt != y.nopreempt || !slices.Equal(x.balancers, y.balancers) {
			return false
		}
		peer := y.primary
		if peer == name {
			peer = y.standby
		}
		xp, yp := old.spec.Devices[peer], spec.Devices[peer]
		if xp == nil || yp == nil || xp.Address != yp.Address {
			return false
		}
	}
	return true
}

// sameBalancer reports whether x and y are equal but for positions.
func sameBalancer(x, y *schema.Balancer) bool {
	return equalButPositions(x, y, func(v *schema.Balancer) { v.Pos, v.FieldPos = schema.Pos{}, nil })
}

// sameDevice reports whether x and y are equal but for positions.
func sameDevice(x, y *schema.Device) bool {
	return equalButPositions(x, y, func(v *schema.Device) { v.Pos, v.FieldPos = schema.Pos{}, nil })
}

// equalButPositions compares copies of *x and *y with clear applied to both.
func equalButPositions[T any](x, y *T, clear func(*T)) bool {
	if x == y {
		return true
	}
	if x == nil || y == nil {
		return false
	}
	a, b := *x, *y
	clear(&a)
	clear(&b)
	return reflect.DeepEqual(a, b)
}
