package compiler

import "net/netip"

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
}

// FileNames are the names of a device's files under OUT/<device>/, in the
// order they are written.
var FileNames = []string{"haproxy.cfg", "vips.json", "keepalived.conf"}

// Files returns the device's files by name (see FileNames); keepalived.conf
// only when the device carries an HA balancer.
func (d *DeviceArtifacts) Files() map[string][]byte {
	files := map[string][]byte{"haproxy.cfg": d.HAProxyCfg, "vips.json": d.VIPsJSON}
	if d.Keepalived != nil {
		files["keepalived.conf"] = d.Keepalived
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
