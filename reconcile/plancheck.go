package reconcile

import (
	"context"
	"errors"
	"fmt"
	"regexp"
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
// write for lbc's header with a matching content hash. The files'
// contents are not authenticated: an editor who recomputes the hash can
// still change what HAProxy is given (and `haproxy -c` runs), which is why
// apply from a plan file needs the same trust as the CI job that made it.

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
	if err := checkRendered(d.Desired.Config, ""); err != nil {
		bad("desired.config: %w", err)
	}
	if err := checkRendered(d.Desired.Keepalived, host.EmptyKeepalived(d.Device)); err != nil {
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
	for k, v := range d.Fingerprints {
		if !known[k] || !sha256RE.MatchString(v) {
			bad("fingerprint %q: %q", k, v)
		}
	}
	return errors.Join(errs...)
}

// checkRendered accepts "", also (a keepalived.conf lbc writes with no
// header), or a file with lbc's header whose content hash matches.
func checkRendered(file, also string) error {
	if file == "" || (also != "" && file == also) {
		return nil
	}
	_, err := compiler.ParseHeader([]byte(file))
	return err
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
