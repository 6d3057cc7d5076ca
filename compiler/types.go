package compiler

import (
	"net/netip"
	"path"
	"strings"
)

// Placement is where one balancer runs: a device, or for an HA balancer a
// primary and a standby device.
type Placement struct {
	Balancer string
	Primary  string
	Standby  string // empty unless the balancer is HA
}

// Lock is the previous placement, keyed by balancer name. It is read from
// and written to the lock file beside the specs (see lock.go).
type Lock map[string]Placement

// VIP is one address a device must carry.
type VIP struct {
	Address   netip.Addr `json:"address"`
	Prefix    int        `json:"prefix"`
	Interface string     `json:"interface"`
	Balancer  string     `json:"balancer"`
	// Role is "single" for a VIP the reconciler adds with ip(8), or
	// "primary"/"standby" for an HA VIP held by keepalived (never added by hand).
	Role string `json:"role"`
}

// DeviceArtifacts are the rendered files for one device.
type DeviceArtifacts struct {
	Device     string
	HAProxyCfg []byte // haproxy.cfg
	VIPs       []VIP  // sorted by address
	VIPsJSON   []byte // vips.json, the VIP plan
	Keepalived []byte // keepalived.conf; nil when the device carries no HA balancer
	Balancers  []string
	// Files are the auxiliary files haproxy.cfg reads (certificates, map
	// files), sorted by path; reconcile ships them in the config's
	// transaction (see AuxFile).
	AuxFiles []AuxFile
}

// AuxFile is a file that a device's haproxy.cfg reads besides itself. The
// compiler names it and says where its content comes from: Data when the
// compiler renders it from the spec (a map file), or Ref, a reference
// that a file source resolves at plan and apply time (a certificate name:
// the compiler never sees key material). Exactly one of them is set.
//
// To add a kind: render the file's path into haproxy.cfg, append an
// AuxFile here (render.go), and, for a kind with a Ref, give reconcile a
// FileSource that resolves it. Staging, the check, last-known-good, the
// swap, rollback, state.json and the plan's fingerprints are the same
// for every kind.
type AuxFile struct {
	Path string // absolute path on the host
	Mode uint32 // permission bits, 0600 or 0644
	Kind string // what it is: AuxCert, or a kind another renderer adds
	Ref  string // the reference a FileSource resolves (Data is nil)
	Data []byte // the content (Ref is "")
}

// Kinds of auxiliary files.
const (
	// AuxCert is a PEM bundle for HAProxy's crt: certificate, chain, key.
	// Ref is the certificate's name in the certificate source.
	AuxCert = "cert"
	// AuxCA is a CA certificate that nodeTLS verifies the nodes against.
	// Ref is its name in the certificate source.
	AuxCA = "ca"
	// AuxMap is an HAProxy map file: a balancer's host table (see
	// RenderHostsMap, HostsMapPath), with Data.
	AuxMap = "map"
)

// FilePaths are the paths of d's auxiliary files.
func (d *DeviceArtifacts) FilePaths() []string {
	if d == nil {
		return nil
	}
	ps := make([]string, len(d.AuxFiles))
	for i, f := range d.AuxFiles {
		ps[i] = f.Path
	}
	return ps
}

// FileNames are the names of a device's fixed files under OUT/<device>/,
// in the order they are written; the map files (IsMapName) follow them.
var FileNames = []string{"haproxy.cfg", "vips.json", "keepalived.conf"}

// IsMapName reports whether name is the name of a map file under
// OUT/<device>/ (HostsMapName).
func IsMapName(name string) bool {
	b, ok := strings.CutPrefix(name, "lbc-hosts-")
	b, ok2 := strings.CutSuffix(b, ".map")
	return ok && ok2 && b != ""
}

// Files returns the device's files by name (see FileNames); keepalived.conf
// only when the device carries an HA balancer; each map file (AuxMap) by
// its base name (certificates are references: they are not written there).
func (d *DeviceArtifacts) Files() map[string][]byte {
	files := map[string][]byte{"haproxy.cfg": d.HAProxyCfg, "vips.json": d.VIPsJSON}
	if d.Keepalived != nil {
		files["keepalived.conf"] = d.Keepalived
	}
	for _, f := range d.AuxFiles {
		if f.Kind == AuxMap {
			files[path.Base(f.Path)] = f.Data
		}
	}
	return files
}

// Stats counts what the scheduler did relative to the lock.
type Stats struct {
	New, Kept, Moved, Removed int
}

// Result is the output of Compile.
type Result struct {
	Devices   map[string]*DeviceArtifacts // every device of the spec, even an empty one
	Placement Lock
	Stats     Stats
	Revision  string

	in *inputs // what Compile or Recompile made it from, for Recompile
}
