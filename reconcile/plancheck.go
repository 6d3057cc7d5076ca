package reconcile

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"lbc/compiler"
	"lbc/reconcile/classify"
	"lbc/reconcile/host"
	"lbc/schema"
)

// A saved plan is input, not code: it travels as a CI artifact, and
// anyone who can edit it could otherwise choose what apply runs as root
// on every host. checkPlan re-checks every value of a loaded plan that
// reaches a host (names, addresses, paths, commands, interfaces) with the
// spec's own rules (schema.CheckDevices and schema.CheckValue: the same
// schema and Go checks, no copy of them), and the rendered files it would
// write for lbc's header with a matching content hash and for lines that
// lbc renders, each directive with arguments of the shapes the renderer
// writes (compiler.CheckHAProxyConfig, CheckKeepalivedConfig). The files
// are not signed: an editor can still change values within those shapes
// (a weight, a server address), which is why apply from a plan file
// needs the same trust as the CI job that made it.

// revisionRE is what a revision may look like: a Git hash, "-dirty", or a
// test's name; it is recorded in state.json and shown, never run.
var revisionRE = regexp.MustCompile(`^[A-Za-z0-9._-]{0,128}$`)

// sha256RE is a fingerprint: a sha256 in hex, or "" for an absent file.
var sha256RE = regexp.MustCompile(`^([0-9a-f]{64})?$`)

func checkPlan(p *Plan) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !revisionRE.MatchString(p.Revision) {
		bad("revision %q: want letters, digits, . _ -", p.Revision)
	}
	var devs []*schema.Device
	seen := map[string]bool{}
	for i := range p.Devices {
		d := &p.Devices[i]
		if err := schema.CheckValue(schema.DefName, d.Device); err != nil {
			bad("device %d: name: %w", i, err)
			continue
		}
		if seen[d.Device] {
			bad("device %s: listed twice", d.Device)
			continue
		}
		seen[d.Device] = true
		if err := checkDevicePlan(d); err != nil {
			bad("device %s: %w", d.Device, err)
		}
		if d.Host != (Host{}) {
			devs = append(devs, specDevice(d.Device, d.Host))
		}
	}
	if err := schema.CheckDevices(context.Background(), devs); err != nil {
		errs = append(errs, err)
	}
	for _, pl := range p.HAPairs {
		for _, n := range []string{pl.Balancer, pl.Primary, pl.Standby} {
			if n == "" {
				continue
			}
			if err := schema.CheckValue(schema.DefName, n); err != nil {
				bad("haPairs: %w", err)
			}
		}
	}
	return errors.Join(errs...)
}

// checkDevicePlan checks what of one device's plan apply uses, beside its
// Host's spec fields (checked with the others by schema.CheckDevices).
func checkDevicePlan(d *DevicePlan) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	switch d.Status {
	case StatusChanges, StatusUnchanged, StatusUnreachable, StatusError:
	default:
		bad("status %q", d.Status)
	}
	if d.Status == StatusChanges && (d.Host.Config == "" || d.Host.StateDir == "" || d.Host.Address == "") {
		bad("no address, config path or state dir")
	}
	if d.Host.Address != "" && d.Address != d.Host.Address {
		bad("address %q differs from the host's %q", d.Address, d.Host.Address)
	}
	// ip(8) is not a spec value: the command "ip", or an absolute path
	// (tests use a fake one).
	if ip := d.Host.IP; ip != "" && ip != "ip" {
		if err := schema.CheckValue(schema.DefPath, ip); err != nil {
			bad("host.ip: %w", err)
		}
	}
	for what, vips := range map[string][]string{"vipsAdd": d.VIPsAdd, "vipsRemove": d.VIPsRemove, "desired.vips": d.Desired.VIPs, "desired.wanted": d.Desired.Wanted} {
		for _, s := range vips {
			v, err := host.ParseVIP(s)
			if err == nil {
				err = schema.CheckValue(schema.DefInterface, v.Iface)
			}
			if err != nil {
				bad("%s: %w", what, err)
			}
		}
	}
	for _, b := range d.NewVRRP {
		if err := schema.CheckValue(schema.DefName, b); err != nil {
			bad("newVRRP: %w", err)
		}
	}
	if err := checkRendered(d.Desired.Config, "", compiler.CheckHAProxyConfig); err != nil {
		bad("desired.config: %w", err)
	}
	if err := checkRendered(d.Desired.Keepalived, host.EmptyKeepalived(d.Device), compiler.CheckKeepalivedConfig); err != nil {
		bad("desired.keepalived: %w", err)
	}
	if !d.Desired.ManageKeepalived && d.Desired.Keepalived != "" {
		bad("desired.keepalived set but not managed")
	}
	if d.Change != nil {
		if err := classify.Check(d.Change); err != nil {
			bad("%w", err)
		}
	}
	for be, v := range d.DrainTimeouts {
		t, err := time.ParseDuration(v)
		if !revisionRE.MatchString(be) || err != nil || t < 0 || t > 24*time.Hour {
			bad("drainTimeouts: %.80q: %.80q is not a duration of at most 24h", be, v)
		}
	}
	if !revisionRE.MatchString(d.LiveRevision) {
		bad("liveRevision %q: want letters, digits, . _ -", d.LiveRevision)
	}
	known := map[string]bool{d.Host.Config: true, d.Host.StatePath(): true, addressesKey: true}
	if d.Desired.ManageKeepalived {
		known[d.Host.KeepalivedConfig] = true
	}
	if err := checkPlanFiles(d); err != nil {
		errs = append(errs, err)
	}
	for _, f := range d.Desired.Files {
		known[f.Path] = true
	}
	for k, v := range d.Fingerprints {
		if !known[k] || !sha256RE.MatchString(v) {
			bad("fingerprint %q: %q", k, v)
		}
	}
	return errors.Join(errs...)
}

// checkRendered accepts "", also (a keepalived.conf lbc writes with no
// header), or a file with lbc's header whose content hash matches and
// whose every line is one lbc renders (lines: compiler/allowed.go): a
// plan edited to give HAProxy or keepalived a directive lbc never writes
// (lua-load, external-check, a stats socket on TCP, a notify script) is
// refused even when the editor recomputed the header's hash.
func checkRendered(file, also string, lines func([]byte) error) error {
	if file == "" || (also != "" && file == also) {
		return nil
	}
	if _, err := compiler.ParseHeader([]byte(file)); err != nil {
		return err
	}
	return lines([]byte(file))
}

// specDevice is h as the spec device it was copied from (hostOf), for
// schema.CheckDevices.
func specDevice(name string, h Host) *schema.Device {
	return &schema.Device{
		Name: name, Address: h.Address,
		SSH:      schema.SSH{User: h.User, Port: h.Port, Sudo: h.Sudo},
		StateDir: h.StateDir,
		HAProxy:  schema.HAProxy{Config: h.Config, Reload: h.Reload, Check: h.Check},
		Keepalived: schema.Keepalived{
			Config: h.KeepalivedConfig, Reload: h.KeepalivedReload, Check: h.KeepalivedCheck,
		},
	}
}

// kindRE is what an auxiliary file's kind may look like; refRE a
// reference (a certificate name).
var (
	kindRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)
	refRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
)

// checkPlanFiles checks a device plan's auxiliary files: paths as a
// spec's, none of them a file lbc keeps for itself or the config, modes
// 0600 or 0644, fingerprints, and content only for a file without a
// reference (a plan never holds a referenced file's bytes).
func checkPlanFiles(d *DevicePlan) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	h := d.Host
	own := map[string]bool{h.Config: true, h.StatePath(): true, h.LockPath(): true, h.OwnerPath(): true, h.TxnPath(): true, h.TxnLog(): true, h.SocketPath(): true, h.ServerStatePath(): true}
	if h.KeepalivedConfig != "" {
		own[h.KeepalivedConfig] = true
	}
	path := func(what, p string) {
		if err := schema.CheckPath(p); err != nil {
			bad("%s: %w", what, err)
		} else if own[p] || strings.HasPrefix(p, h.LastGood("")+"/") {
			bad("%s: %s is a file lbc keeps for itself", what, p)
		}
	}
	seen := map[string]bool{}
	for i, f := range d.Desired.Files {
		what := fmt.Sprintf("desired.files[%d]", i)
		path(what, f.Path)
		if seen[f.Path] {
			bad("%s: %s listed twice", what, f.Path)
		}
		seen[f.Path] = true
		if f.Mode != 0o600 && f.Mode != 0o644 {
			bad("%s: mode %o: want 600 or 644", what, f.Mode)
		}
		if !kindRE.MatchString(f.Kind) || (f.Ref != "" && !refRE.MatchString(f.Ref)) {
			bad("%s: kind %q, ref %q", what, f.Kind, f.Ref)
		}
		if f.SHA256 == "" || !sha256RE.MatchString(f.SHA256) {
			bad("%s: sha256 %q", what, f.SHA256)
		}
		if f.Ref != "" && f.Content != "" {
			bad("%s: a referenced file with content", what)
		}
		if f.Ref == "" && sha256Hex([]byte(f.Content)) != f.SHA256 {
			bad("%s: content does not match its sha256", what)
		}
	}
	for i, p := range d.Desired.FilesRemove {
		path(fmt.Sprintf("desired.filesRemove[%d]", i), p)
		if seen[p] {
			bad("desired.filesRemove[%d]: %s is also wanted", i, p)
		}
	}
	for i, c := range d.FileChanges {
		if !sha256RE.MatchString(c.From) || !sha256RE.MatchString(c.To) {
			bad("fileChanges[%d]: fingerprints %q, %q", i, c.From, c.To)
		}
	}
	return errors.Join(errs...)
}
