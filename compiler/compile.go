package compiler

import (
	"fmt"
	"net/netip"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"

	"lbc/schema"
)

// Options stamp the rendered files.
type Options struct {
	Version  string // lbc's version; "" renders as "unknown"
	Revision string // the Git revision of the specs, or "dirty"; "" renders as "none"
}

// Compile places the balancers of spec (keeping prev's placement where it
// still fits, see Schedule) and renders the files of every device of spec,
// sorted by name, including devices with nothing placed on them. On any
// error it returns nil and the error; it writes nothing anywhere. A
// scheduling error is returned as Schedule returns it, unwrapped, so that
// every line of it starts with the position it names.
func Compile(spec *schema.Spec, prev Lock, opts Options) (*Result, error) {
	if spec == nil {
		return nil, fmt.Errorf("compile: no spec")
	}
	lock, stats, err := Schedule(spec, prev)
	if err != nil {
		return nil, err
	}
	return Render(spec, prev, lock, stats, opts)
}

// Render is the second half of Compile: given placement and stats, what
// Schedule(spec, prev) returned, it renders the files of every device of
// spec and returns what Compile(spec, prev, opts) returns. Compile is
// Schedule then Render; the two are exported apart so that a caller can
// time them.
func Render(spec *schema.Spec, prev, placement Lock, stats Stats, opts Options) (*Result, error) {
	if spec == nil {
		return nil, fmt.Errorf("compile: no spec")
	}
	devs, lay, err := renderAll(spec, placement, opts)
	if err != nil {
		return nil, err
	}
	return &Result{Devices: devs, Placement: placement, Stats: stats, Revision: opts.Revision,
		in: lay.inputs(spec, prev, opts)}, nil
}

// layout is a placement seen from the devices, with everything rendering
// needs beyond the device and balancer values.
type layout struct {
	names   []string                      // the balancers, sorted
	haNames []string                      // the HA balancers, sorted
	placed  map[string][]*schema.Balancer // device → balancers placed on it, by name
	roles   map[string]map[string]string  // device → balancer → VIP role
	haByDev map[string][]*haVIP           // device → the HA VIP addresses it shares, by address
}

// layoutOf checks a placement of spec and inverts it (see devicePlacement),
// and numbers the HA VIPs (see assignVRIDs).
func layoutOf(spec *schema.Spec, lock Lock) (*layout, error) {
	names := spec.BalancerNames()
	placed, roles, err := devicePlacement(spec, lock, names)
	if err != nil {
		return nil, fmt.Errorf("compile: %w", err)
	}
	if err := checkSharedAddresses(spec, lock, names); err != nil {
		return nil, fmt.Errorf("compile: %w", err)
	}
	var haNames []string
	for _, n := range names {
		if spec.Balancers[n].Placement.HA {
			haNames = append(haNames, n)
		}
	}
	lay := &layout{names: names, haNames: haNames, placed: placed, roles: roles}
	if err := lay.numberHA(spec, lock); err != nil {
		return nil, err
	}
	return lay, nil
}

// numberHA collects the HA VIPs of the placement and gives each its
// virtual_router_id.
func (l *layout) numberHA(spec *schema.Spec, lock Lock) error {
	hs, err := haVIPs(spec, lock, l.haNames)
	if err != nil {
		return fmt.Errorf("compile: %w", err)
	}
	if err := assignVRIDs(spec, hs); err != nil {
		return fmt.Errorf("compile: %w", err)
	}
	l.haByDev = map[string][]*haVIP{}
	for _, h := range hs {
		l.haByDev[h.primary] = append(l.haByDev[h.primary], h)
		l.haByDev[h.standby] = append(l.haByDev[h.standby], h)
	}
	return nil
}

// render renders the files of the device name of spec.
func (l *layout) render(spec *schema.Spec, name string, opts Options) (*DeviceArtifacts, error) {
	a, err := renderDevice(spec, spec.Devices[name], l.placed[name], l.roles[name], l.haByDev[name], opts)
	if err != nil {
		return nil, fmt.Errorf("render %s: %w", name, err)
	}
	return a, nil
}

// renderAll renders the files of every device for a placement.
func renderAll(spec *schema.Spec, lock Lock, opts Options) (map[string]*DeviceArtifacts, *layout, error) {
	lay, err := layoutOf(spec, lock)
	if err != nil {
		return nil, nil, err
	}
	devs := make(map[string]*DeviceArtifacts, len(spec.Devices))
	if err := lay.renderDevices(spec, spec.DeviceNames(), opts, devs); err != nil {
		return nil, nil, err
	}
	return devs, lay, nil
}

// renderDevices renders the devices names into devs, in parallel (one
// worker per CPU Go may use). The devices are rendered independently from
// values no worker writes, so the files are the same as one by one. On
// error it returns the error of the first failing device in names' order,
// as rendering them one by one would, and leaves devs unchanged.
func (l *layout) renderDevices(spec *schema.Spec, names []string, opts Options, devs map[string]*DeviceArtifacts) error {
	out := make([]*DeviceArtifacts, len(names))
	errs := make([]error, len(names))
	var next atomic.Int64
	var failed atomic.Bool
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(names)) {
		wg.Go(func() {
			for !failed.Load() {
				i := int(next.Add(1)) - 1
				if i >= len(names) {
					return
				}
				if out[i], errs[i] = l.render(spec, names[i], opts); errs[i] != nil {
					failed.Store(true)
				}
			}
		})
	}
	wg.Wait()
	// Devices are taken in order and a worker finishes the one it took:
	// when one failed, every device before it was rendered.
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	for i, name := range names {
		devs[name] = out[i]
	}
	return nil
}

// renderDevice renders the files of one device.
func renderDevice(spec *schema.Spec, dev *schema.Device, placed []*schema.Balancer, roles map[string]string, hs []*haVIP, opts Options) (*DeviceArtifacts, error) {
	a := &DeviceArtifacts{Device: dev.Name, Balancers: make([]string, 0, len(placed))}
	for _, b := range placed {
		a.Balancers = append(a.Balancers, b.Name)
	}
	var err error
	if a.HAProxyCfg, err = RenderHAProxy(dev, placed, roles, opts); err != nil {
		return nil, err
	}
	a.AuxFiles = auxFiles(dev, placed)
	for _, b := range placed { // sorted by name, so the maps by path
		if b.Hosts == nil {
			continue
		}
		m := AuxFile{Path: HostsMapPath(dev, b.Name), Mode: 0o644, Kind: AuxMap}
		if m.Data, err = RenderHostsMap(b, opts); err != nil {
			return nil, err
		}
		a.AuxFiles = append(a.AuxFiles, m)
	}
	sort.Slice(a.AuxFiles, func(i, j int) bool { return a.AuxFiles[i].Path < a.AuxFiles[j].Path })
	if a.VIPs, err = vipPlan(dev, placed, roles); err != nil {
		return nil, fmt.Errorf("render vips.json: %w", err)
	}
	if a.VIPsJSON, err = marshalVIPs(a.VIPs); err != nil {
		return nil, err
	}
	if len(hs) > 0 {
		if a.Keepalived, err = renderKeepalived(spec, dev, hs, opts); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// devicePlacement inverts the lock: per device, the balancers placed on it
// (sorted by name) and the role of each.
func devicePlacement(spec *schema.Spec, lock Lock, names []string) (map[string][]*schema.Balancer, map[string]map[string]string, error) {
	placed := map[string][]*schema.Balancer{}
	roles := map[string]map[string]string{}
	put := func(dev string, b *schema.Balancer, role string) error {
		if spec.Devices[dev] == nil {
			return fmt.Errorf("balancer %s: placed on unknown device %q", b.Name, dev)
		}
		if roles[dev] == nil {
			roles[dev] = map[string]string{}
		}
		placed[dev] = append(placed[dev], b)
		roles[dev][b.Name] = role
		return nil
	}
	for _, name := range names {
		b := spec.Balancers[name]
		p, ok := lock[name]
		if !ok {
			return nil, nil, fmt.Errorf("balancer %s: not placed", name)
		}
		var err error
		if b.Placement.HA {
			if p.Standby == "" || p.Standby == p.Primary {
				return nil, nil, fmt.Errorf("balancer %s: HA needs two devices, placed on %q and %q", name, p.Primary, p.Standby)
			}
			if err = put(p.Primary, b, VIPRolePrimary); err == nil {
				err = put(p.Standby, b, VIPRoleStandby)
			}
		} else {
			if p.Standby != "" {
				return nil, nil, fmt.Errorf("balancer %s: not HA but placed with a standby %q", name, p.Standby)
			}
			err = put(p.Primary, b, VIPRoleSingle)
		}
		if err != nil {
			return nil, nil, err
		}
	}
	return placed, roles, nil
}

// checkSharedAddresses refuses a VIP address carried by two holders: balancers
// may share an address (on different ports) only when they are placed on the
// same device, or on the same HA pair, since an address lives on one host.
func checkSharedAddresses(spec *schema.Spec, lock Lock, names []string) error {
	type holder struct{ where, balancer string }
	held := map[netip.Addr]holder{}
	for _, name := range names {
		b, p := spec.Balancers[name], lock[name]
		where := "device " + p.Primary
		if b.Placement.HA {
			where = "HA pair " + p.Primary + "/" + p.Standby
		}
		for _, v := range b.VIPs {
			h, ok := held[v.Address]
			if !ok {
				held[v.Address] = holder{where, name}
				continue
			}
			if h.where != where {
				return fmt.Errorf("vip %s: balancers %s (on %s) and %s (on %s) share the address: it can live on one host (or HA pair) only",
					v.Address, h.balancer, h.where, name, where)
			}
		}
	}
	return nil
}

// sortedBalancers returns a copy of bs sorted by name.
func sortedBalancers(bs []*schema.Balancer) []*schema.Balancer {
	out := append([]*schema.Balancer(nil), bs...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
