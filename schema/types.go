package schema

import (
	"fmt"
	"net/netip"
	"time"
)

// Pos is a position in a spec file. File is relative to the spec tree root,
// with forward slashes.
type Pos struct {
	File string `json:"file,omitempty"`
	Line int    `json:"line,omitempty"`
	Col  int    `json:"column,omitempty"`
}

func (p Pos) String() string {
	if p.File == "" {
		return "-"
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// IsValid reports whether p names a place in a file.
func (p Pos) IsValid() bool { return p.File != "" && p.Line > 0 }

// Spec is a whole validated spec tree: every device, balancer and the
// scheduler settings, with the source position of each value kept.
type Spec struct {
	Devices   map[string]*Device
	Balancers map[string]*Balancer
	Scheduler Scheduler
}

// DeviceNames returns the device names sorted.
// BalancerNames returns the balancer names sorted.
// (implemented in spec.go)

// Device is one HAProxy host.
type Device struct {
	Name         string
	Pos          Pos // position of the device's key
	Address      string
	SSH          SSH
	Zone         string
	Capacity     Capacity
	Tags         []string
	VIPInterface string
	VIPNetworks  []netip.Prefix
	HAProxy      HAProxy
	Keepalived   Keepalived
	StateDir     string

	// FieldPos maps a field path relative to the device ("address",
	// "vipNetworks[1]") to its position, for later errors.
	FieldPos map[string]Pos
}

// SSH says how to reach a device.
type SSH struct {
	User string
	Port int
	Sudo bool
}

// Capacity bounds what the scheduler may place on a device. Zero means unbounded.
type Capacity struct {
	Balancers int
	Maxconn   int
}

// HAProxy says where a device keeps its config and how to check and reload it.
type HAProxy struct {
	Config string // absolute path of haproxy.cfg
	Reload string // shell command run on the host
	Check  string // shell command; the file path is appended, quoted
}

// Keepalived says where a device keeps keepalived.conf and how to check and
// reload it. Used only when the device carries HA balancers.
type Keepalived struct {
	Config string
	Reload string
	Check  string
}

// Balancer is one load-balanced service: VIPs in front, nodes behind.
type Balancer struct {
	Name          string
	Pos           Pos
	Tenant        string
	Protocol      string // http | tcp
	Algorithm     string // roundrobin | leastconn | source | uri | static-rr | first
	VIPs          []VIP
	Nodes         []Node
	HealthMonitor HealthMonitor
	Persistence   *Persistence
	Timeouts      *Timeouts
	Maxconn       int // 0: not set
	Placement     Placement
	Failback      bool // HA only: preempt (true, the default) or nopreempt
	// DrainTimeout bounds how long a removed or draining node keeps its
	// current sessions (default 30s).
	DrainTimeout time.Duration
	// NodeTLS, when set, makes HAProxy talk TLS to the nodes (and health
	// checks go over TLS).
	NodeTLS *NodeTLS

	// L7 routing (protocol http only; see l7.go). Pools are sorted by
	// name; rules are in spec order; Hosts maps a lower-case host name
	// to a pool name. DefaultPool names the balancer's own nodes.
	Pools []Pool
	Rules []Rule
	Hosts map[string]string

	FieldPos map[string]Pos // e.g. "vips[0].address", "nodes[2].weight"
}

// VIP is a virtual address and port a balancer listens on.
type VIP struct {
	Address netip.Addr
	Port    int
	TLS     *TLS // nil: plain TCP or HTTP
}

// TLS is TLS termination on a VIP.
type TLS struct {
	// Certificates are served by SNI; the first is the default.
	Certificates []CertRef
	MinVersion   string   // "1.2" or "1.3"
	ALPN         []string // protocols offered, in order
	RedirectHTTP bool     // answer http on port 80 of the VIP's address with a redirect to https
	HSTS         time.Duration
}

// CertRef is a certificate by reference: Name in the certificate source,
// or HostPath, a PEM bundle already on the host. SNI are the host names
// the spec says it serves.
type CertRef struct {
	Name     string
	HostPath string
	SNI      []string
	// Pos is the position of the entry, for errors found when the
	// certificate is read from its source.
	Pos Pos
	// Field is the entry's field path ("balancers.web.vips[0].tls.certificates[1]").
	Field string
}

// NodeTLS is TLS from HAProxy to a balancer's nodes.
type NodeTLS struct {
	Verify string   // "required" (default) or "none"
	CA     *CertRef // the CA to verify against (name or hostPath); nil with verify none
	SNI    string   // sent as SNI and verified in the node's certificate
}

// Node is a backend server.
type Node struct {
	Address netip.Addr
	Port    int
	Weight  int // 0..256, default 1
	Maxconn int // 0: not set
	Backup  bool
	State   string // NodeActive (default), NodeDrain or NodeMaint
}

// Node states.
const (
	NodeActive = "active" // takes traffic
	NodeDrain  = "drain"  // no new sessions; current and persistent ones finish
	NodeMaint  = "maint"  // no traffic at all
)

// TakesTraffic reports whether n gets new sessions from the balancing
// algorithm: active, not a backup and of weight above 0.
func (n Node) TakesTraffic() bool {
	return (n.State == NodeActive || n.State == "") && !n.Backup && n.Weight > 0
}

// HealthMonitor says how nodes are checked.
type HealthMonitor struct {
	Type     string // http | tcp | none
	Method   string // http only, default GET
	Path     string // http only, default /
	Expect   int    // http only, default 200
	Interval time.Duration
	Timeout  time.Duration
	Rise     int
	Fall     int
}

// Persistence pins a client to a node.
type Persistence struct {
	Type   string // cookie | source
	Cookie string // cookie name for type cookie
}

// Timeouts are HAProxy timeouts; zero means the renderer's default.
type Timeouts struct {
	Connect time.Duration
	Client  time.Duration
	Server  time.Duration
}

// Placement states where a balancer would like to run.
type Placement struct {
	Zones  []string // the first is the preferred (primary) zone for HA
	Tags   []string
	Device string
	HA     bool
}

// Scheduler holds the scheduler settings of the tree.
type Scheduler struct {
	Filters []string
	Costs   map[string]float64 // balancers, maxconn, spread
}
