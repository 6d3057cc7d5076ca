package reconcile

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"time"

	"lbc/compiler"
	"lbc/reconcile/host"
	"lbc/schema"
)

// Sync states of a device, as `lbc status` reports them.
const (
	SyncInSync       = "in-sync"       // the host runs what lbc applied, and that is what the specs compile to
	SyncDrifted      = "drifted"       // the host's files or VIPs differ from what state.json says lbc applied (a hand edit, or an interrupted apply)
	SyncBehind       = "behind"        // the host runs what lbc applied last, but the specs now compile to something else
	SyncNeverApplied = "never-applied" // no state.json: lbc never applied to this host
	SyncUnreachable  = "unreachable"   // no connection; nothing known
	SyncError        = "error"         // connected, but the host's state could not be read
)

// HA roles of a device for an HA VIP, from the compile (compiler.VIPRole*),
// and RoleNone for a device outside the VIP's pair that holds it anyway.
const RoleNone = "none"

// DeviceStatus is what one device runs now, compared with what lbc applied
// there (state.json) and what the specs compile to.
type DeviceStatus struct {
	Device    string `json:"device"`
	Address   string `json:"address"`
	Reachable bool   `json:"reachable"`
	Error     string `json:"error,omitempty"`

	// From the host's state.json ("" when lbc never applied).
	Revision   string `json:"revision,omitempty"`
	AppliedAt  string `json:"appliedAt,omitempty"` // RFC 3339, UTC
	LBCVersion string `json:"lbcVersion,omitempty"`
	LastResult string `json:"lastResult,omitempty"` // result of the newest history entry

	Sync string `json:"sync"` // one of the Sync* constants
	// Notes say why a device is drifted or behind, one reason each.
	Notes []string `json:"notes,omitempty"`

	// HAVIPs are the HA VIPs the compile gives this device (role primary or
	// standby), and any other HA VIP of the compile the host holds (role
	// none), sorted by address then balancer. Held is meaningful only when
	// Reachable.
	HAVIPs []HAVIP `json:"haVIPs,omitempty"`
	// Balancers are the balancers the compile places on the device.
	Balancers []string `json:"balancers,omitempty"`
	// Certificates are the certificates the device serves, per VIP.
	Certificates []CertInfo `json:"certificates,omitempty"`
}

// HAVIP is one HA VIP address of a balancer on a device.
type HAVIP struct {
	VIP      string `json:"vip"` // the address, without prefix
	Balancer string `json:"balancer"`
	Role     string `json:"role"` // primary | standby | none
	Held     bool   `json:"held"` // the address is on the host right now
}

// StatusOptions tune ReadStatus.
type StatusOptions struct {
	Parallelism int    // devices read at once; DefaultParallelism when 0
	IPCommand   string // ip(8) on the hosts; "ip" when empty
	Limits      Limits // bound each device's read
}

// ReadStatus reads every device of res over dial (config, state.json,
// keepalived.conf and addresses, one round trip each, opts.Parallelism at
// once) and says whether it runs what lbc applied and what the specs
// compile to, and which HA VIPs it holds. The result is sorted by device.
// An unreachable device is reported, never fatal; the error is only for a
// missing spec or result, or a cancelled ctx.
func ReadStatus(ctx context.Context, spec *schema.Spec, res *compiler.Result, dial Dialer, opts StatusOptions) ([]DeviceStatus, error) {
	if spec == nil || res == nil {
		return nil, errors.New("status: no spec or compile result")
	}
	names := deviceNames(res)
	ha := haAddresses(res)
	out := make([]DeviceStatus, len(names))
	eachDevice(ctx, len(names), opts.Parallelism, func(i int) {
		name := names[i]
		dev, art := spec.Devices[name], res.Devices[name]
		if dev == nil || art == nil {
			out[i] = DeviceStatus{Device: name, Sync: SyncError, Error: fmt.Sprintf("status %s: device not in spec", name)}
			return
		}
		out[i] = deviceStatus(ctx, dev, art, ha, dial, opts.IPCommand, opts.Limits)
	}, func(i int, err error) {
		name := names[i]
		sync := SyncUnreachable
		if ctx.Err() == nil {
			sync = SyncError // a panic
		}
		out[i] = DeviceStatus{Device: name, Sync: sync, Error: fmt.Sprintf("status %s: %v", name, err)}
		if dev, art := spec.Devices[name], res.Devices[name]; dev != nil && art != nil {
			out[i].Address, out[i].Balancers, out[i].HAVIPs = dev.Address, art.Balancers, compiledHAVIPs(art)
		}
	})
	return out, ctx.Err()
}

// haAddresses are the HA VIP addresses of the whole compile, with their
// balancers (sorted), from the primary's artifacts.
func haAddresses(res *compiler.Result) map[netip.Addr][]string {
	m := map[netip.Addr][]string{}
	for _, art := range res.Devices {
		for _, v := range art.VIPs {
			if v.Role == compiler.VIPRolePrimary && !slices.Contains(m[v.Address], v.Balancer) {
				m[v.Address] = append(m[v.Address], v.Balancer)
			}
		}
	}
	for _, bs := range m {
		sort.Strings(bs)
	}
	return m
}

// compiledHAVIPs are the HA VIPs the compile gives a device, none held.
func compiledHAVIPs(art *compiler.DeviceArtifacts) []HAVIP {
	var out []HAVIP
	for _, v := range art.VIPs {
		if v.Role == compiler.VIPRolePrimary || v.Role == compiler.VIPRoleStandby {
			out = append(out, HAVIP{VIP: v.Address.String(), Balancer: v.Balancer, Role: v.Role})
		}
	}
	return out
}

func deviceStatus(ctx context.Context, dev *schema.Device, art *compiler.DeviceArtifacts, ha map[netip.Addr][]string, dial Dialer, ipCmd string, lim Limits) DeviceStatus {
	ds := DeviceStatus{Device: dev.Name, Address: dev.Address, Balancers: art.Balancers, HAVIPs: compiledHAVIPs(art)}
	h := hostOf(dev, ipCmd)
	t, err := dial(ctx, EndpointOf(dev))
	if err != nil {
		ds.Sync, ds.Error = SyncUnreachable, fmt.Sprintf("status %s: connect: %v", dev.Name, err)
		return ds
	}
	defer t.Close()
	live, err := readLive(ctx, t, h, h.KeepalivedConfig != "", art.FilePaths(), lim)
	if err != nil {
		ds.Sync, ds.Error = SyncError, fmt.Sprintf("status %s: read live state: %v", dev.Name, err)
		if errors.Is(err, ErrConnectionLost) {
			ds.Sync = SyncUnreachable
		}
		return ds
	}
	ds.Reachable = true
	judge(&ds, live, art, h)
	ds.HAVIPs = heldHAVIPs(ds.HAVIPs, live.Addresses, ha)
	return ds
}

// judge fills the state.json fields, Sync and Notes of a reachable device.
func judge(ds *DeviceStatus, live *Live, art *compiler.DeviceArtifacts, h Host) {
	st := live.State
	if st == nil {
		ds.Sync = SyncNeverApplied
		return
	}
	ds.Revision, ds.LBCVersion = st.Revision, st.LBCVersion
	if !st.AppliedAt.IsZero() {
		ds.AppliedAt = st.AppliedAt.UTC().Format(time.RFC3339)
	}
	if n := len(st.History); n > 0 {
		ds.LastResult = st.History[n-1].Result
	}
	onHost := map[string]bool{}
	for _, a := range live.Addresses {
		onHost[a] = true
	}

	// Drift: the host differs from what lbc wrote last.
	var drift []string
	switch {
	case !live.Config.Exists:
		drift = append(drift, h.Config+" is missing (lbc applied it)")
	case live.Config.Fingerprint() != st.ConfigSHA256:
		drift = append(drift, h.Config+" differs from the one lbc applied (edited by hand, or an apply was interrupted)")
	}
	if st.KeepalivedSHA256 != "" {
		switch {
		case h.KeepalivedConfig == "":
			drift = append(drift, "lbc applied a keepalived.conf, but the device sets no keepalived.config")
		case !live.Keepalived.Exists:
			drift = append(drift, h.KeepalivedConfig+" is missing (lbc applied it)")
		case live.Keepalived.Fingerprint() != st.KeepalivedSHA256:
			drift = append(drift, h.KeepalivedConfig+" differs from the one lbc applied (edited by hand, or an apply was interrupted)")
		}
	}
	for _, v := range sortedCopy(st.VIPs) {
		if !onHost[v] {
			drift = append(drift, "vip "+v+" that lbc added is gone from the host")
		}
	}
	wrote := make([]string, 0, len(st.Files))
	for p := range st.Files {
		wrote = append(wrote, p)
	}
	sort.Strings(wrote)
	for _, p := range wrote {
		switch have, read := live.Files[p]; {
		case !read: // not a file the specs want now: "behind" below
		case have == "":
			drift = append(drift, p+" is missing (lbc wrote it)")
		case have != st.Files[p]:
			drift = append(drift, p+" differs from the one lbc wrote")
		}
	}

	if d, err := runtimeDrift(live); err == nil && len(d) > 0 {
		drift = append(drift, "runtime drift: the running servers differ from "+h.Config+" (changed on the stats socket): "+joinDiffs(d))
	}

	// Behind: what lbc applied is not what the specs compile to now. The
	// VIPs lbc would manage after an apply are computed as BuildPlan does.
	var behind []string
	if st.ConfigSHA256 != sha256Hex(art.HAProxyCfg) {
		behind = append(behind, "haproxy.cfg applied at revision "+orDash(st.Revision)+" is not what the specs compile to")
	}
	ka := ""
	if art.Keepalived != nil {
		ka = sha256Hex(art.Keepalived)
	}
	if st.KeepalivedSHA256 != ka {
		behind = append(behind, "keepalived.conf applied at revision "+orDash(st.Revision)+" is not what the specs compile to")
	}
	if paths := art.FilePaths(); !slices.Equal(sortedCopy(paths), wrote) {
		behind = append(behind, "the files haproxy.cfg reads (certificates, maps) are not the ones the specs name")
	}
	managed := map[string]bool{}
	for _, v := range st.VIPs {
		managed[v] = true
	}
	var next []string
	for _, v := range art.VIPs {
		if v.Role != compiler.VIPRoleSingle {
			continue
		}
		s := host.VIPString(v.Address, v.Prefix, v.Interface)
		if !onHost[s] || managed[s] {
			next = append(next, s)
		}
	}
	if !slices.Equal(sortedCopy(next), sortedCopy(st.VIPs)) {
		behind = append(behind, "the VIPs lbc manages are not the ones the specs want")
	}

	switch {
	case len(drift) > 0:
		ds.Sync = SyncDrifted
	case len(behind) > 0:
		ds.Sync = SyncBehind
	default:
		ds.Sync = SyncInSync
	}
	ds.Notes = append(drift, behind...)
}

// heldHAVIPs marks which of a device's HA VIPs are on the host, and adds
// the HA VIPs of other pairs it holds (role none).
func heldHAVIPs(vs []HAVIP, addrs []string, ha map[netip.Addr][]string) []HAVIP {
	held := map[netip.Addr]bool{}
	for _, a := range addrs {
		v, err := host.ParseVIP(a)
		if err != nil {
			continue
		}
		held[v.Prefix.Addr()] = true
	}
	mine := map[netip.Addr]bool{}
	for i := range vs {
		a := netip.MustParseAddr(vs[i].VIP)
		mine[a] = true
		vs[i].Held = held[a]
	}
	for a, bs := range ha {
		if held[a] && !mine[a] {
			for _, b := range bs {
				vs = append(vs, HAVIP{VIP: a.String(), Balancer: b, Role: RoleNone, Held: true})
			}
		}
	}
	sort.SliceStable(vs, func(i, j int) bool {
		ai, aj := netip.MustParseAddr(vs[i].VIP), netip.MustParseAddr(vs[j].VIP)
		if c := ai.Compare(aj); c != 0 {
			return c < 0
		}
		return vs[i].Balancer < vs[j].Balancer
	})
	return vs
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
