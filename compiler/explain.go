package compiler

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"lbc/schema"
)

// Explanation is the scheduler's reasoning about one balancer: for each
// device, every filter's verdict and, for the devices that passed, each
// cost and the total, at the moment the scheduler decided (after every
// balancer it handles earlier has taken its capacity).
type Explanation struct {
	Balancer      string
	Tenant        string
	HA            bool
	PreferredZone string   // HA: placement.zones[0], preferred for the primary
	Filters       []string // the filters that ran, in evaluation order
	Costs         []string // cost names, in order
	Weights       []float64
	Previous      *Placement // the lock's placement, nil when the lock has none
	Placement     Placement  // the outcome; Primary is "" when unplaceable
	Kept          bool       // Placement is exactly the lock's
	Notes         []string   // e.g. why the lock's placement was not kept
	Err           *UnplaceableError
	// Group: the balancers that share VIP addresses with this one (directly
	// or through each other) and are therefore placed with it, by name.
	Group []GroupMember
	Roles []*RoleChoice // the primary (or only) device, then the standby
}

// RoleChoice is the choice of one device of a balancer.
type RoleChoice struct {
	Role    string // "primary" ("device" for a balancer without HA) or "standby"
	Primary string // standby only: the primary it was chosen against
	Chosen  string // "" when nothing fits
	Kept    bool   // Chosen is the lock's device, kept because it still passes
	// Join: the balancer is new to its group, which stays where the lock
	// has it; Chosen is the group's device when the balancer fits there.
	Join bool
	// With: the other balancers of the group decided together with this
	// one (the filters and costs are the group's).
	With    []string
	Devices []DeviceVerdict
}

// DeviceVerdict is how one device fared for one role.
type DeviceVerdict struct {
	Device    string
	Zone      string
	Filters   []FilterVerdict
	Pass      bool // passed every filter
	Preferred bool // HA primary: in the preferred zone
	Costs     []CostValue
	Total     float64
}

// FilterVerdict is one filter's verdict on one device.
type FilterVerdict struct {
	Filter string
	Pass   bool
	Reason string // why it rejected
}

// CostValue is one cost of one device: raw, normalized across the devices
// that passed, and its weight.
type CostValue struct {
	Cost       string
	Raw        float64
	Normalized float64
	Weight     float64
}

// Explain schedules spec as Schedule does and returns the reasoning about
// the balancer named balancer. A balancer that fits no device is explained,
// not reported as an error; so are unplaceable others.
func Explain(spec *schema.Spec, prev Lock, balancer string) (*Explanation, error) {
	if spec == nil || spec.Balancers[balancer] == nil {
		return nil, fmt.Errorf("explain: no balancer %q", balancer)
	}
	s, err := newSched(spec)
	if err != nil {
		return nil, fmt.Errorf("explain %s: %w", balancer, err)
	}
	b := spec.Balancers[balancer]
	e := &Explanation{Balancer: balancer, Tenant: b.Tenant, HA: b.Placement.HA}
	if e.HA && len(b.Placement.Zones) > 0 {
		e.PreferredZone = b.Placement.Zones[0]
	}
	for f := filterID(0); f < numFilters; f++ {
		if s.enabled[f] {
			e.Filters = append(e.Filters, f.String())
		}
	}
	e.Costs = append(e.Costs, costOrder[:]...)
	e.Weights = append(e.Weights, s.w[:]...)
	if p, ok := prev[balancer]; ok {
		p.Balancer = balancer
		e.Previous = &p
	}
	x := &explainer{e: e, name: balancer}
	_, _, errs := s.run(prev, balancer, x)
	for _, g := range s.gs {
		if tb := s.bals[balancer]; slices.Contains(g.members, tb) {
			e.Group = groupOf(g, tb)
		}
	}
	for _, err := range errs {
		if se, ok := err.(*SharedAddressError); ok && (slices.Contains(se.HA, balancer) || slices.Contains(se.NotHA, balancer)) {
			e.Notes = append(e.Notes, "not placed: "+se.Error())
		}
	}
	if e.Previous != nil && e.HA && e.Previous.Standby == "" {
		e.Notes = append(e.Notes, "the lock has no standby: the balancer was not HA")
	}
	if e.Previous != nil && !e.HA && e.Previous.Standby != "" {
		e.Notes = append(e.Notes, fmt.Sprintf("the lock has standby %s: the balancer is no longer HA", e.Previous.Standby))
	}
	e.Kept = e.Previous != nil && e.Placement.Primary == e.Previous.Primary && e.Placement.Standby == e.Previous.Standby
	return e, nil
}

type explainer struct {
	e    *Explanation
	name string
}

func (x *explainer) decide(s *sched, u *unit, primary int32, lockDevice string, join bool) {
	role := "device"
	if u.g.ha {
		role = rolePrimary
	}
	rc := &RoleChoice{Role: role, Join: join}
	if primary != noPrimary {
		rc.Role = roleStandby
		rc.Primary = s.devs[primary].name
	}
	for _, m := range u.ms {
		if m.name != x.name {
			rc.With = append(rc.With, m.name)
		}
	}
	s.candidates(u, primary)
	s.score()
	slot := make(map[int32]int, s.n)
	for i, d := range s.cand[:s.n] {
		slot[d] = i
	}
	for d := range s.devs {
		dv := &s.devs[d]
		v := DeviceVerdict{Device: dv.name, Zone: dv.d.Zone}
		for f := filterID(0); f < numFilters; f++ {
			if !s.enabled[f] {
				continue
			}
			ok := s.pass(f, u, int32(d), primary)
			v.Filters = append(v.Filters, FilterVerdict{Filter: f.String(), Pass: ok, Reason: s.why(f, u, int32(d), primary)})
		}
		if join && dv.name != lockDevice {
			v.Filters = append(v.Filters, FilterVerdict{Filter: "group", Reason: "its group stays on " + lockDevice})
			delete(slot, int32(d))
		}
		if i, ok := slot[int32(d)]; ok {
			v.Pass = true
			for k := 0; k < numCosts; k++ {
				v.Costs = append(v.Costs, CostValue{Cost: costOrder[k], Raw: s.raw[i][k], Normalized: s.norm(k, i), Weight: s.w[k]})
			}
			v.Total = s.total[i]
		}
		v.Preferred = primary == noPrimary && u.prefZone >= 0 && dv.zone == u.prefZone
		rc.Devices = append(rc.Devices, v)
	}
	if lockDevice != "" {
		d, ok := s.devIndex[lockDevice]
		switch {
		case !ok:
			x.e.Notes = append(x.e.Notes, fmt.Sprintf("the lock's %s %s is no longer a device", rc.Role, lockDevice))
		case !s.fits(u, d, primary):
			var why []string
			for f := filterID(0); f < numFilters; f++ {
				if s.enabled[f] && !s.pass(f, u, d, primary) {
					why = append(why, f.String()+": "+s.why(f, u, d, primary))
				}
			}
			if join {
				x.e.Notes = append(x.e.Notes, fmt.Sprintf("new to its group, which stays on %s %s, and does not fit there: %s", rc.Role, lockDevice, strings.Join(why, "; ")))
			} else {
				x.e.Notes = append(x.e.Notes, fmt.Sprintf("the lock's %s %s no longer passes: %s", rc.Role, lockDevice, strings.Join(why, "; ")))
			}
		case join:
			rc.Chosen = lockDevice
		default:
			rc.Kept = true
			rc.Chosen = lockDevice
		}
	}
	if rc.Role == roleStandby {
		if len(x.e.Roles) < 2 {
			x.e.Roles = append(x.e.Roles, rc)
		} else {
			x.e.Roles[1] = rc
		}
		return
	}
	x.e.Roles = []*RoleChoice{rc}
}

func (x *explainer) placed(s *sched, p Placement, err *UnplaceableError) {
	x.e.Placement = p
	x.e.Err = err
	if len(x.e.Roles) > 0 {
		x.e.Roles[0].Chosen = p.Primary
	}
	if len(x.e.Roles) > 1 {
		x.e.Roles[1].Chosen = p.Standby
	}
}

// Write prints e as a table per role.
func (e *Explanation) Write(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "balancer %s", e.Balancer)
	if e.Tenant != "" {
		fmt.Fprintf(&b, " (tenant %s)", e.Tenant)
	}
	if e.HA {
		b.WriteString(": HA pair")
		if e.PreferredZone != "" {
			fmt.Fprintf(&b, ", primary prefers zone %s", e.PreferredZone)
		}
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "filters: %s\n", strings.Join(e.Filters, " "))
	ws := make([]string, len(e.Costs))
	for i, c := range e.Costs {
		ws[i] = c + " " + fmtNum(e.Weights[i])
	}
	fmt.Fprintf(&b, "weights: %s\n", strings.Join(ws, ", "))
	if e.Previous != nil {
		fmt.Fprintf(&b, "%s: %s\n", LockFileName, placementString(*e.Previous))
	} else {
		fmt.Fprintf(&b, "%s: not placed\n", LockFileName)
	}
	switch {
	case e.Err != nil:
		fmt.Fprintf(&b, "result: unplaceable: %s\n", e.Err.Error())
	case e.Kept:
		fmt.Fprintf(&b, "result: %s (kept from %s)\n", placementString(e.Placement), LockFileName)
	default:
		fmt.Fprintf(&b, "result: %s\n", placementString(e.Placement))
	}
	for _, m := range e.Group {
		if m.Via != "" {
			fmt.Fprintf(&b, "placed with %s: shares %s with %s\n", m.Balancer, addrList(m.Shares), m.Via)
		} else {
			fmt.Fprintf(&b, "placed with %s: shares %s\n", m.Balancer, addrList(m.Shares))
		}
	}
	for _, n := range e.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}
	for _, rc := range e.Roles {
		if err := rc.write(w); err != nil {
			return err
		}
	}
	return nil
}

func (rc *RoleChoice) write(w io.Writer) error {
	head := "\n" + rc.Role
	if rc.Primary != "" {
		head += " (primary " + rc.Primary + ")"
	}
	switch {
	case rc.Chosen == "":
		head += ": none fits"
	case rc.Kept:
		head += ": " + rc.Chosen + ", kept from " + LockFileName
	case rc.Join:
		head += ": " + rc.Chosen + ", with its group"
	default:
		head += ": " + rc.Chosen
	}
	if len(rc.With) > 0 {
		head += " (decided together with " + andList(rc.With) + ")"
	}
	if _, err := io.WriteString(w, head+"\n"); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	hdr := []string{"  DEVICE", "ZONE"}
	var costs []string
	if len(rc.Devices) > 0 {
		for _, d := range rc.Devices {
			if d.Pass {
				for _, c := range d.Costs {
					costs = append(costs, strings.ToUpper(c.Cost)+" (raw norm ×w)")
				}
				break
			}
		}
	}
	hdr = append(hdr, costs...)
	hdr = append(hdr, "TOTAL", "VERDICT")
	fmt.Fprintln(tw, strings.Join(hdr, "\t"))
	for _, d := range rc.Devices {
		zone := d.Zone
		if zone == "" {
			zone = "-"
		}
		row := []string{"  " + d.Device, zone}
		if d.Pass {
			for _, c := range d.Costs {
				row = append(row, fmt.Sprintf("%s %.2f ×%s", fmtNum(c.Raw), c.Normalized, fmtNum(c.Weight)))
			}
			row = append(row, fmt.Sprintf("%.3f", d.Total))
			v := "pass"
			if d.Preferred {
				v += ", preferred zone"
			}
			if d.Device == rc.Chosen {
				v += ", CHOSEN"
				if rc.Kept {
					v += " (kept)"
				}
			}
			row = append(row, v)
		} else {
			for range costs {
				row = append(row, "-")
			}
			var why []string
			for _, f := range d.Filters {
				if !f.Pass {
					why = append(why, f.Filter+": "+f.Reason)
				}
			}
			row = append(row, "-", "reject: "+strings.Join(why, "; "))
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

// fmtNum formats a number briefly: 3, 0.5, 0.125.
func fmtNum(v float64) string {
	if v == float64(int64(v)) && v < 1e15 && v > -1e15 {
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}
