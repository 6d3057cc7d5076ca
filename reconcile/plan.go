package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"time"

	"lbc/compiler"
	"lbc/reconcile/classify"
	"lbc/reconcile/host"
	"lbc/schema"
)

// Status says what a plan found on one device.
type Status string

const (
	StatusUnchanged   Status = "unchanged"   // the host runs what the specs say
	StatusChanges     Status = "changes"     // apply would change the host
	StatusUnreachable Status = "unreachable" // no connection; nothing known
	StatusError       Status = "error"       // connected, but reading or planning failed
)

// Plan is what would change on each device: plain data, with the
// fingerprints of what it saw and the files it would write, so that a saved
// plan can be applied exactly and refused when the hosts moved on.
// A plan holds rendered files, addresses, host paths and commands, never a
// secret.
type Plan struct {
	Format   int          `json:"format"`
	Revision string       `json:"revision"`
	Devices  []DevicePlan `json:"devices"` // sorted by device name
	// HAPairs are the HA placements of the compile, kept so that a saved
	// plan is applied in the same order (standby before primary).
	HAPairs []compiler.Placement `json:"haPairs,omitempty"`
	// Notes are informational lines about the whole plan, such as devices
	// that left the spec (lbc does not touch them).
	Notes []string `json:"notes,omitempty"`
}

// DevicePlan is the plan for one device.
type DevicePlan struct {
	Device  string `json:"device"`
	Address string `json:"address"`
	Status  Status `json:"status"`

	ConfigDiff     string   `json:"configDiff,omitempty"`     // unified diff live → new haproxy.cfg
	KeepalivedDiff string   `json:"keepalivedDiff,omitempty"` // unified diff live → new keepalived.conf
	VIPsAdd        []string `json:"vipsAdd,omitempty"`        // "addr/prefix dev iface"
	VIPsRemove     []string `json:"vipsRemove,omitempty"`
	// FileChanges are the auxiliary files (certificates, maps) apply
	// writes or removes, by fingerprint.
	FileChanges []FileChange `json:"fileChanges,omitempty"`
	// Routing are the L7 changes, readably: rules added and removed per
	// balancer, host-table entries added, removed and moved (see l7plan.go);
	// each line starts with +, - or ~.
	Routing []string `json:"routing,omitempty"`
	// Certificates are the certificates the device serves, per VIP.
	Certificates []CertInfo `json:"certificates,omitempty"`
	Notes        []string   `json:"notes,omitempty"`
	// NewVRRP lists the HA balancers of this device that have a VIP whose
	// VRRP instance does not preempt (failback: false) and that the live
	// keepalived.conf has no instance for: apply starts it. When both
	// devices of a pair list a balancer, the pair is new and applied
	// primary first (see HAWaves).
	NewVRRP []string `json:"newVRRP,omitempty"`

	// Change says whether the haproxy.cfg change can be applied through
	// HAProxy's runtime API (class runtime, with its operations) or needs a
	// reload, and why; apply takes the runtime path for a runtime change
	// unless ApplyOptions.Reload (it recomputes the operations from what
	// it reads under the lock). Nil when haproxy.cfg is unchanged.
	Change *classify.Result `json:"change,omitempty"`
	// DrainTimeouts maps each backend of a runtime change that drains or
	// deletes a server to its balancer's drain.timeout ("30s").
	DrainTimeouts map[string]string `json:"drainTimeouts,omitempty"`

	// LiveRevision is the revision the host's state.json names ("" if none).
	LiveRevision string `json:"liveRevision,omitempty"`
	// Fingerprints maps each file read (host path, or "addresses" for the
	// VIP addresses that lbc wants or manages) to the sha256 seen, "" when absent.
	Fingerprints map[string]string `json:"fingerprints,omitempty"`
	Desired      Desired           `json:"desired"`
	Host         Host              `json:"host"`

	Error string `json:"error,omitempty"`
}

// Desired is what apply writes to a device.
type Desired struct {
	Config           string   `json:"config"`
	ManageKeepalived bool     `json:"manageKeepalived,omitempty"`
	Keepalived       string   `json:"keepalived,omitempty"`
	VIPs             []string `json:"vips"`             // the addresses lbc manages after apply
	Wanted           []string `json:"wanted,omitempty"` // every address the device must carry that lbc adds (role single)
	// Files are the auxiliary files haproxy.cfg reads, sorted by path;
	// FilesRemove the paths of those lbc wrote before and no longer wants.
	Files       []DesiredFile `json:"files,omitempty"`
	FilesRemove []string      `json:"filesRemove,omitempty"`
}

// PlanOptions tune BuildPlan.
type PlanOptions struct {
	Parallelism int    // devices read at once; DefaultParallelism when 0
	IPCommand   string // ip(8) on the hosts; "ip" when empty
	// Previous is the placement the compile started from (the lock file);
	// a device it names that is no longer in the spec gets a note.
	Previous compiler.Lock
	// Lock, when set, takes each device's lock before reading it and
	// keeps it, in Lock.Held, for Apply: what is planned is what the
	// transaction finds, and the lock and the read cost one round trip.
	Lock *PlanLock
	// Log, when set, gets a debug record as each device is connected and
	// read.
	Log *slog.Logger
	// Limits bound each device's read (and lock holder's start).
	Limits Limits
	// Files resolves the auxiliary files the compiler names by reference
	// (certificates); a device that has one fails to plan without it.
	Files FileSource
}

// PlanLock says who locks devices while planning, how long to wait for a
// lock held by someone else (0: fail at once), and where the locks are
// kept for Apply (ApplyOptions.Locks).
type PlanLock struct {
	Owner   string
	Timeout time.Duration
	Held    *Locks
}

// addressesKey is the Fingerprints key of the VIP address set.
const addressesKey = "addresses"

// BuildPlan reads every device of res over dial and compares it with what
// res wants. An unreachable device is reported, never planned around:
// placement is the compiler's.
func BuildPlan(ctx context.Context, spec *schema.Spec, res *compiler.Result, dial Dialer, opts PlanOptions) (*Plan, error) {
	if spec == nil || res == nil {
		return nil, errors.New("plan: no spec or compile result")
	}
	names := deviceNames(res)
	log := orDiscard(opts.Log)
	p := &Plan{Format: PlanFormat, Revision: res.Revision, Devices: make([]DevicePlan, len(names))}
	eachDevice(ctx, len(names), opts.Parallelism, func(i int) {
		p.Devices[i] = planNamed(ctx, spec, res, names[i], dial, &opts, log)
	}, func(i int, err error) {
		p.Devices[i] = planFailed(names[i], err)
	})
	p.Notes = goneDevices(spec, opts.Previous)
	p.HAPairs = haPairs(res.Placement)
	return p, ctx.Err()
}

// planNamed plans the device called name (see planDevice).
func planNamed(ctx context.Context, spec *schema.Spec, res *compiler.Result, name string, dial Dialer, opts *PlanOptions, log *slog.Logger) DevicePlan {
	dev := spec.Devices[name]
	if dev == nil {
		return DevicePlan{Device: name, Status: StatusError, Error: fmt.Sprintf("plan %s: device not in spec", name)}
	}
	dp := planDevice(ctx, dev, res.Devices[name], dial, opts, log)
	dp.DrainTimeouts = drainTimeouts(spec, dp.Change)
	return dp
}

// planFailed is the plan of a device whose planning did not run or
// panicked (err says why).
func planFailed(name string, err error) DevicePlan {
	return DevicePlan{Device: name, Status: StatusError, Error: fmt.Sprintf("plan %s: %v", name, err)}
}

// goneDevices notes every device that prev places balancers on and that
// the spec no longer has: lbc leaves such a host as it is.
func goneDevices(spec *schema.Spec, prev compiler.Lock) []string {
	gone := map[string]bool{}
	for _, pl := range prev {
		for _, d := range []string{pl.Primary, pl.Standby} {
			if d != "" && spec.Devices[d] == nil {
				gone[d] = true
			}
		}
	}
	var notes []string
	for d := range gone {
		notes = append(notes, fmt.Sprintf("device %s not in the spec any more: not touched (its HAProxy, VIPs and state stay as they are)", d))
	}
	sort.Strings(notes)
	return notes
}

func planDevice(ctx context.Context, dev *schema.Device, art *compiler.DeviceArtifacts, dial Dialer, opts *PlanOptions, log *slog.Logger) DevicePlan {
	lock, lim := opts.Lock, opts.Limits
	h := hostOf(dev, opts.IPCommand)
	dp := DevicePlan{Device: dev.Name, Address: dev.Address, Host: h}
	fail := func(st Status, err error) DevicePlan {
		dp.Status, dp.Error = st, fmt.Sprintf("plan %s: %v", dev.Name, err)
		return dp
	}
	dp.Desired.Config = string(art.HAProxyCfg)
	if art.Keepalived != nil {
		if h.KeepalivedConfig == "" {
			return fail(StatusError, errors.New("device carries HA balancers but sets no keepalived.config"))
		}
		dp.Desired.ManageKeepalived, dp.Desired.Keepalived = true, string(art.Keepalived)
	}
	files, err := desiredFiles(ctx, art.AuxFiles, opts.Files)
	if err != nil {
		return fail(StatusError, err)
	}
	dp.Desired.Files = files
	log.Debug("plan: connect", "device", dev.Name)
	ep := endpointOf(dev.Name, h)
	t, err := dial(ctx, ep)
	if err != nil {
		return fail(StatusUnreachable, err)
	}
	log.Debug("plan: read", "device", dev.Name)
	var live *Live
	if lock != nil {
		// The held lock owns t from now on.
		if live, err = lockAndRead(ctx, t, ep, h, lock, dp.Desired.filePaths(), lim); err != nil {
			return fail(StatusError, fmt.Errorf("lock and read: %w", err))
		}
	} else {
		live, err = readLive(ctx, t, h, h.KeepalivedConfig != "", dp.Desired.filePaths(), lim)
		t.Close()
		if err != nil {
			return fail(StatusError, fmt.Errorf("read live state: %w", err))
		}
	}
	log.Debug("plan: read done", "device", dev.Name)
	if art.Keepalived == nil && live.State != nil && live.State.KeepalivedSHA256 != "" && h.KeepalivedConfig != "" {
		// lbc wrote keepalived.conf here and the device carries no HA
		// balancer any more: its instances would keep claiming VIPs that
		// HAProxy no longer serves here. Replace the file with one without
		// instances (keepalived then releases the VIPs; the peer keeps
		// or takes them) rather than remove it, which keepalived's reload
		// would not act on.
		dp.Desired.ManageKeepalived, dp.Desired.Keepalived = true, host.EmptyKeepalived(dev.Name)
		if live.Keepalived.Exists && string(live.Keepalived.Data) != dp.Desired.Keepalived {
			dp.Notes = append(dp.Notes, "no HA balancer on this device any more: keepalived.conf is replaced by one without VRRP instances (keepalived releases their VIPs)")
		}
	}
	if err := compare(&dp, live, art); err != nil {
		return fail(StatusError, err)
	}
	if art.Keepalived != nil {
		dp.NewVRRP = newNopreempt(art, string(live.Keepalived.Data))
	}
	return dp
}

// newNopreempt returns the HA balancers of art (sorted) with a VIP that a
// nopreempt vrrp_instance of art's keepalived.conf carries and that no
// vrrp_instance of the live keepalived.conf (liveKA) carries.
func newNopreempt(art *compiler.DeviceArtifacts, liveKA string) []string {
	want, have := vrrpVIPs(string(art.Keepalived)), vrrpVIPs(liveKA)
	seen := map[string]bool{}
	var out []string
	for _, v := range art.VIPs {
		if v.Role == "single" || seen[v.Balancer] {
			continue
		}
		a := v.Address.String()
		if nopreempt, ok := want[a]; ok && nopreempt {
			if _, live := have[a]; !live {
				seen[v.Balancer] = true
				out = append(out, v.Balancer)
			}
		}
	}
	sort.Strings(out)
	return out
}

// vrrpVIPs maps each address in a virtual_ipaddress block of conf (a
// keepalived.conf) to whether its vrrp_instance sets nopreempt.
func vrrpVIPs(conf string) map[string]bool {
	vips := map[string]bool{}
	var inst []string // addresses of the current instance
	depth, inInst, inVIPs, nopreempt := 0, false, false, false
	for _, line := range strings.Split(conf, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") || strings.HasPrefix(f[0], "!") {
			continue
		}
		switch {
		case depth == 0 && f[0] == "vrrp_instance":
			inInst, inst, nopreempt = true, nil, false
		case inInst && depth == 1 && f[0] == "nopreempt":
			nopreempt = true
		case inInst && depth == 1 && f[0] == "virtual_ipaddress":
			inVIPs = true
		case inVIPs && depth == 2 && f[0] != "}":
			a, _, _ := strings.Cut(f[0], "/")
			inst = append(inst, a)
		}
		depth += strings.Count(line, "{") - strings.Count(line, "}")
		if depth < 2 {
			inVIPs = false
		}
		if depth <= 0 {
			if inInst {
				for _, a := range inst {
					vips[a] = vips[a] || nopreempt
				}
			}
			depth, inInst = 0, false
		}
	}
	return vips
}

// lockAndRead takes the device lock on t, reads the device under it and
// leaves the lock held, with t, in lock.Held for Apply.
func lockAndRead(ctx context.Context, t Transport, ep Endpoint, h Host, lock *PlanLock, files []string, lim Limits) (*Live, error) {
	if lock.Held == nil {
		t.Close()
		return nil, errors.New("planning under the lock needs PlanLock.Held")
	}
	ls, read, err := takeLock(ctx, t, h, ep.Device, lock.Owner, newToken(), lock.Timeout, h.KeepalivedConfig != "", files, lim)
	var live *Live
	if err == nil {
		live, err = lockedRead(read)
	}
	if err != nil {
		if ls != nil {
			release(ls)
		}
		t.Close()
		return nil, err
	}
	lock.Held.put(&heldLock{ep: ep, t: t, ls: ls, live: live})
	return live, nil
}

// compare fills dp's diffs, VIP changes, fingerprints and status from what
// the host runs (live) and what the compiler rendered (art).
func compare(dp *DevicePlan, live *Live, art *compiler.DeviceArtifacts) error {
	h := dp.Host
	dp.ConfigDiff = fileDiff(dp, "haproxy.cfg", h.Config, live.Config, art.HAProxyCfg)
	dp.Fingerprints = map[string]string{h.Config: live.Config.Fingerprint(), h.StatePath(): live.StateFile.Fingerprint()}
	if dp.Desired.ManageKeepalived {
		dp.KeepalivedDiff = fileDiff(dp, "keepalived.conf", h.KeepalivedConfig, live.Keepalived, []byte(dp.Desired.Keepalived))
		dp.Fingerprints[h.KeepalivedConfig] = live.Keepalived.Fingerprint()
	}

	var wanted []string
	for _, v := range art.VIPs {
		if v.Role == "single" {
			s := host.VIPString(v.Address, v.Prefix, v.Interface)
			if _, err := host.ParseVIP(s); err != nil {
				return err
			}
			wanted = append(wanted, s)
		}
	}
	var managed []string
	st := live.State
	if st != nil {
		dp.LiveRevision = st.Revision
		for _, s := range st.VIPs {
			if _, err := host.ParseVIP(s); err != nil {
				return fmt.Errorf("%s: %w", h.StatePath(), err)
			}
			managed = append(managed, s)
		}
	}
	onHost := set(live.Addresses)
	isWanted, isManaged := set(wanted), set(managed)
	next := []string{}
	for _, s := range wanted {
		switch {
		case !onHost[s]:
			dp.VIPsAdd = append(dp.VIPsAdd, s)
			next = append(next, s)
		case isManaged[s]:
			next = append(next, s)
		default:
			dp.Notes = append(dp.Notes, fmt.Sprintf("address %s is already on the host and not managed by lbc: lbc leaves it there", s))
		}
	}
	for _, s := range managed {
		if !isWanted[s] && onHost[s] {
			dp.VIPsRemove = append(dp.VIPsRemove, s)
		}
	}
	sort.Strings(dp.VIPsAdd)
	sort.Strings(dp.VIPsRemove)
	sort.Strings(next)
	dp.Desired.VIPs = next
	dp.Desired.Wanted = sortedCopy(wanted)
	dp.Fingerprints[addressesKey] = addressFingerprint(live.Addresses, wanted, managed)

	cfgSHA := sha256Hex(art.HAProxyCfg)
	kaSHA := ""
	if dp.Desired.ManageKeepalived {
		kaSHA = sha256Hex([]byte(dp.Desired.Keepalived))
	}
	filesBehind, err := compareFiles(dp, live, st)
	if err != nil {
		return err
	}
	stateBehind := st == nil || st.ConfigSHA256 != cfgSHA || st.KeepalivedSHA256 != kaSHA || !slices.Equal(sortedCopy(st.VIPs), next) || filesBehind
	switch {
	case st == nil:
		dp.Notes = append(dp.Notes, "no "+StateFile+" on the host: first apply by lbc")
	case live.Config.Exists && st.ConfigSHA256 != live.Config.Fingerprint():
		dp.Notes = append(dp.Notes, "live haproxy.cfg is not the one lbc applied last (edited by hand, or an apply was interrupted)")
	}
	dp.Routing = routingChanges(live, art)
	// The running HAProxy runs the live file only when lbc applied it
	// last: otherwise only a reload makes them agree.
	trusted := st != nil && live.Config.Exists && st.ConfigSHA256 == live.Config.Fingerprint()
	if dp.ConfigDiff != "" {
		var liveCfg []byte
		if live.Config.Exists {
			liveCfg = live.Config.Data
		}
		r := classify.Change(liveCfg, art.HAProxyCfg, trusted)
		if r.Class != classify.None {
			dp.Change = &r
		}
	}
	runtimeDrifted := planRuntimeDrift(dp, live, art.HAProxyCfg)
	// Apply carries certificate rotations and host-table entries at
	// runtime and reloads a change that also writes or removes any other
	// auxiliary file or changes keepalived.conf (tx.runtimePart): the
	// plan says so.
	if planFileClass(dp, live, trusted) {
		planMaps(dp, live, trusted)
	}
	if dp.ConfigDiff != "" || dp.KeepalivedDiff != "" || len(dp.FileChanges) > 0 || len(dp.VIPsAdd) > 0 || len(dp.VIPsRemove) > 0 || stateBehind || runtimeDrifted {
		dp.Status = StatusChanges
	} else {
		dp.Status = StatusUnchanged
	}
	return nil
}

// fileDiff is the diff from the live file f at host path p to want, as
// the plan shows it. A file lbc did not write (see managed) is not shown:
// a spec may name any path on the host (haproxy: {config: "/etc/shadow"}),
// and a plan travels to pull-request comments. Its size and hash stand for
// it on the diff's "---" line, the diff shows the whole new file, and
// apply replaces it only when told to adopt it.
func fileDiff(dp *DevicePlan, name, p string, f File, want []byte) string {
	from, to := "live/"+dp.Device+"/"+name, "new/"+dp.Device+"/"+name
	if !f.Exists || managed(dp.Device, f.Data) {
		return UnifiedDiff(from, to, f.Data, want)
	}
	dp.Notes = append(dp.Notes, fmt.Sprintf("%s is not managed by lbc: apply replaces it only with --adopt (keeping a copy in %s)", p, dp.Host.LastGood(name)))
	return UnifiedDiff(from+" ("+unmanagedSummary(f.Data)+")", to, nil, want)
}

// unmanagedSummary stands for a file lbc did not write.
func unmanagedSummary(data []byte) string {
	return fmt.Sprintf("not managed by lbc: %d bytes, sha256 %s", len(data), sha256Hex(data))
}

// managed reports whether data, a file read from device, is one lbc
// wrote: it starts with the header line of a rendered file (edited since
// or not: a hand edit of a file lbc manages is shown as a diff), or it is
// the keepalived.conf without instances that lbc leaves on a device that
// carries no HA balancer any more.
func managed(device string, data []byte) bool {
	h, _ := compiler.ParseHeader(data)
	return h.Version != "" || string(data) == host.EmptyKeepalived(device)
}

// ErrUnmanaged is a file at a config path that lbc did not write, which
// apply replaces only when ApplyOptions.Adopt is set.
var ErrUnmanaged = errors.New("not managed by lbc")

// checkManaged refuses to replace a live file lbc did not write unless
// adopt is set; the check is on what was read under the lock, not on
// what the plan says.
func checkManaged(device string, h Host, live *Live, keepalived, adopt bool) error {
	if adopt {
		return nil
	}
	check := func(p string, f File) error {
		if !f.Exists || managed(device, f.Data) {
			return nil
		}
		return fmt.Errorf("%s is %w (%d bytes, sha256 %s): lbc replaces it only with --adopt", p, ErrUnmanaged, len(f.Data), sha256Hex(f.Data))
	}
	if err := check(h.Config, live.Config); err != nil || !keepalived {
		return err
	}
	return check(h.KeepalivedConfig, live.Keepalived)
}

// addressFingerprint hashes which of the addresses lbc wants or manages are
// on the host; other addresses (DHCP, link-local, keepalived's) may come and
// go without making a plan stale.
func addressFingerprint(onHost, wanted, managed []string) string {
	rel := set(append(append([]string{}, wanted...), managed...))
	var seen []string
	for _, a := range onHost {
		if rel[a] {
			seen = append(seen, a)
		}
	}
	sort.Strings(seen)
	return sha256Hex([]byte(strings.Join(seen, "\n")))
}

func set(xs []string) map[string]bool {
	m := make(map[string]bool, len(xs))
	for _, x := range xs {
		m[x] = true
	}
	return m
}

func sortedCopy(xs []string) []string {
	out := append([]string{}, xs...)
	sort.Strings(out)
	return out
}

// Counts returns how many devices would change, are unchanged, and could
// not be planned (unreachable or error).
func (p *Plan) Counts() (changes, unchanged, unreachable, failed int) {
	for _, d := range p.Devices {
		switch d.Status {
		case StatusChanges:
			changes++
		case StatusUnchanged:
			unchanged++
		case StatusUnreachable:
			unreachable++
		default:
			failed++
		}
	}
	return
}

// HasChanges reports whether applying the plan would change any device.
func (p *Plan) HasChanges() bool {
	c, _, _, _ := p.Counts()
	return c > 0
}

// PlanFormat is the version of the saved plan format.
const PlanFormat = 1

// Save writes the plan as JSON.
func (p *Plan) Save(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(p); err != nil {
		return fmt.Errorf("save plan: %w", err)
	}
	return nil
}

// LoadPlan reads a plan written by Save and refuses another format version
// and a plan with any value apply would take to a host that a spec could
// not have given (see checkPlan).
func LoadPlan(r io.Reader) (*Plan, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var p Plan
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("load plan: %w", err)
	}
	if p.Format != PlanFormat {
		return nil, fmt.Errorf("load plan: format %d, this lbc reads format %d", p.Format, PlanFormat)
	}
	if err := checkPlan(&p); err != nil {
		return nil, fmt.Errorf("load plan: %w", err)
	}
	return &p, nil
}

// haPairs lists the HA placements of a compile, sorted by balancer, for
// the plan: apply orders a pair standby first and stops at a failed standby.
func haPairs(placement compiler.Lock) []compiler.Placement {
	var pairs []compiler.Placement
	for _, pl := range placement {
		if pl.Standby != "" {
			pairs = append(pairs, pl)
		}
	}
	sort.Slice(pairs, func(i, j int) bool { return pairs[i].Balancer < pairs[j].Balancer })
	return pairs
}

// drainTimeouts is the drain.timeout of the balancer behind each backend
// whose servers a runtime change drains or deletes (backend be_NAME is
// balancer NAME's).
func drainTimeouts(spec *schema.Spec, r *classify.Result) map[string]string {
	if r == nil || r.Class != classify.Runtime {
		return nil
	}
	var m map[string]string
	for _, o := range r.Ops {
		if o.Kind != classify.KindDel && o.Kind != classify.KindDrain {
			continue
		}
		b := spec.Balancers[strings.TrimPrefix(o.Backend, "be_")]
		if b == nil || b.DrainTimeout <= 0 {
			continue
		}
		if m == nil {
			m = map[string]string{}
		}
		m[o.Backend] = b.DrainTimeout.String()
	}
	return m
}

// planRuntimeDrift notes how the running HAProxy differs from its file
// (changed by hand on the stats socket) and adds to the device's change
// the runtime operations that bring it back, or makes it a reload when
// the runtime API cannot. It reports whether the runtime differs.
func planRuntimeDrift(dp *DevicePlan, live *Live, desired []byte) bool {
	drift, err := runtimeDrift(live)
	if err != nil {
		dp.Notes = append(dp.Notes, "the runtime's servers could not be read: "+err.Error())
		return false
	}
	if len(drift) == 0 {
		return false
	}
	dp.Notes = append(dp.Notes, "runtime drift: the running servers differ from "+dp.Host.Config+" (changed on the stats socket): "+joinDiffs(drift))
	if dp.Change == nil {
		dp.Change = &classify.Result{Class: classify.Runtime}
	}
	if dp.Change.Class == classify.Runtime {
		running, err := host.ParseServersState(string(live.Runtime.Data))
		if err != nil {
			return true
		}
		extra, reason := driftOps(desired, running, dp.Change.Ops)
		if reason != "" {
			dp.Change = &classify.Result{Class: classify.Reload, Reason: "runtime drift: " + reason}
			return true
		}
		dp.Change.Ops = append(dp.Change.Ops, extra...)
	}
	return true
}
