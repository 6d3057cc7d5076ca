package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"

	"lbc/compiler"
	"lbc/schema"
)

// PlanApply plans and applies res (lbc apply DIR) on one connection per
// device, whatever the number of devices, with at most
// ApplyOptions.Parallelism connections open at once.
//
// It works unit by unit: a unit is a device, or the devices that HA pairs
// join (the connected devices of res's pairs). A unit's worker dials each
// of its devices once, takes its lock and reads it in the same round trip
// (PlanOptions.Lock; the owner and timeout come from po.Lock, or are
// ao.Owner and no wait), compares it with res, hands the device's plan to
// planned (in no particular order; it may be called concurrently), then
// applies the unit's devices as Apply does, each transaction going on in
// the lock session the plan took: what is shown is what the transaction
// finds, and the read under the lock is the plan's read. A unit of k
// devices holds min(k, Parallelism) of the Parallelism slots while it runs
// (a unit of more devices than slots still opens one connection per
// device); units start in the order of their first device.
//
// Apply's semantics hold within this order: a pair's devices in HAWaves'
// order (standby first, a new pair primary first; a device whose earlier
// partner failed is not started), --max-failures counted over the whole
// run (the devices after it are still read and planned, not changed), the
// revision guard and adopt checks under each lock. Pairs of different
// units are not ordered against each other: a standby of one pair may be
// changed after the primary of another (Apply's global waves change every
// standby first).
//
// The returned plan is BuildPlan's (devices sorted by name, the HA pairs,
// the notes), the result Apply's; the error is ctx's.
func PlanApply(ctx context.Context, spec *schema.Spec, res *compiler.Result, dial Dialer, po PlanOptions, ao ApplyOptions, planned func(i int, dp *DevicePlan)) (*Plan, *ApplyResult, error) {
	if spec == nil || res == nil {
		return nil, nil, errors.New("plan: no spec or compile result")
	}
	ao.defaults()
	lock := PlanLock{Owner: ao.Owner}
	if po.Lock != nil {
		lock = *po.Lock
	}
	names := deviceNames(res)
	p := &Plan{Format: PlanFormat, Revision: res.Revision, Devices: make([]DevicePlan, len(names)),
		HAPairs: haPairs(res.Placement), Notes: goneDevices(spec, po.Previous)}
	r := &ApplyResult{Devices: make([]DeviceResult, len(names))}
	u := &unitRun{spec: spec, res: res, dial: dial, po: po, ao: ao, lock: lock, planned: planned,
		names: names, plan: p, result: r, fails: &failCount{}, log: orDiscard(po.Log)}
	slots := make(chan struct{}, ao.Parallelism)
	var wg sync.WaitGroup
	for _, un := range pairUnits(names, distinctPairs(p.HAPairs)) {
		k := min(len(un.devices), ao.Parallelism)
		if err := acquire(ctx, slots, k); err != nil {
			u.notStarted(un, err)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				for range k {
					<-slots
				}
			}()
			u.run(ctx, un)
		}()
	}
	wg.Wait()
	return p, r, ctx.Err()
}

// acquire takes k slots, in the caller's goroutine (the only one that
// takes them), or none when ctx ends first.
func acquire(ctx context.Context, slots chan struct{}, k int) error {
	for j := range k {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			for range j {
				<-slots
			}
			return ctx.Err()
		}
	}
	return nil
}

// unitRun is one PlanApply.
type unitRun struct {
	spec    *schema.Spec
	res     *compiler.Result
	dial    Dialer
	po      PlanOptions
	ao      ApplyOptions
	lock    PlanLock
	planned func(int, *DevicePlan)
	names   []string
	plan    *Plan
	result  *ApplyResult
	fails   *failCount
	log     *slog.Logger
}

// unit is a set of devices that HA pairs join: indexes into the sorted
// device names, ascending, and the pairs among them.
type unit struct {
	devices []int
	pairs   []compiler.Placement
}

// pairUnits groups names (sorted) into units: the devices that pairs join
// (union-find), each other device alone; sorted by their first device.
func pairUnits(names []string, pairs []compiler.Placement) []unit {
	index := make(map[string]int, len(names))
	parent := make([]int, len(names))
	for i, n := range names {
		index[n], parent[i] = i, i
	}
	var find func(i int) int
	find = func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	for _, pl := range pairs {
		a, okA := index[pl.Primary]
		b, okB := index[pl.Standby]
		if okA && okB {
			ra, rb := find(a), find(b)
			parent[max(ra, rb)] = min(ra, rb) // the root is the unit's first device
		}
	}
	at := map[int]int{} // root → position in units
	var units []unit
	for i := range names {
		root := find(i)
		k, ok := at[root]
		if !ok {
			k = len(units)
			at[root] = k
			units = append(units, unit{})
		}
		units[k].devices = append(units[k].devices, i)
	}
	for _, pl := range pairs {
		if a, ok := index[pl.Primary]; ok {
			if _, ok := index[pl.Standby]; ok {
				k := at[find(a)]
				units[k].pairs = append(units[k].pairs, pl)
			}
		}
	}
	sort.SliceStable(units, func(i, j int) bool { return units[i].devices[0] < units[j].devices[0] })
	return units
}

// run plans and applies the devices of un.
func (u *unitRun) run(ctx context.Context, un unit) {
	locks := NewLocks()
	defer locks.Close()
	lock := u.lock
	lock.Held = locks
	po := u.po
	po.Lock = &lock
	sub := &Plan{Format: PlanFormat, Revision: u.plan.Revision, Devices: make([]DevicePlan, len(un.devices)), HAPairs: un.pairs}
	for j, i := range un.devices {
		name := u.names[i]
		if u.ao.Progress != nil {
			u.ao.Progress(name, StepPlan)
		}
		u.log.Debug("plan", "device", name)
		var dp DevicePlan
		if err := recovered(func() { dp = planNamed(ctx, u.spec, u.res, name, u.dial, &po, u.log) }); err != nil {
			dp = planFailed(name, err)
		}
		u.plan.Devices[i] = dp
		if u.planned != nil {
			u.planned(i, &u.plan.Devices[i])
		}
		sub.Devices[j] = u.plan.Devices[i]
	}
	locks.ReleaseUnchanged(sub)
	ao := u.ao
	ao.Locks = locks
	ao.Parallelism = min(len(un.devices), u.ao.Parallelism)
	sr := applyPlan(ctx, sub, u.dial, &ao, u.fails)
	for j, i := range un.devices {
		u.result.Devices[i] = sr.Devices[j]
	}
}

// notStarted records the devices of a unit that ctx stopped before it
// started: not planned, not applied.
func (u *unitRun) notStarted(un unit, err error) {
	for _, i := range un.devices {
		name := u.names[i]
		u.plan.Devices[i] = planFailed(name, err)
		if u.planned != nil {
			u.planned(i, &u.plan.Devices[i])
		}
		r := DeviceResult{Device: name, Outcome: OutcomeSkipped, Err: fmt.Errorf("apply %s: not started: %w", name, err)}
		u.result.Devices[i] = r
		if u.ao.Done != nil {
			u.ao.Done(r)
		}
	}
}
