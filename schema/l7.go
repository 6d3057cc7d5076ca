package schema

// L7 routing: the pools, rules and host table of an http balancer. The
// checks are in l7check.go.

// DefaultPool is the pool name that rules and hosts use for the
// balancer's own nodes; no pool may take it.
const DefaultPool = "default"

// Pool is a named group of nodes of a balancer with its own balancing
// settings, chosen by rules and hosts.
type Pool struct {
	Name          string
	Algorithm     string
	Nodes         []Node
	HealthMonitor HealthMonitor
	Persistence   *Persistence
	Timeouts      *Timeouts // Connect and Server only
}

// Rule is one L7 rule: when every condition holds (no condition: every
// request), its one action applies: Pool, Redirect or Reject. Rules are
// tried in order and the first that matches decides.
type Rule struct {
	Match    []Condition
	Pool     string
	Redirect *Redirect
	Reject   bool
}

// Condition kinds.
const (
	CondHost     = "host"
	CondPath     = "path"
	CondFileType = "fileType"
	CondHeader   = "header"
	CondCookie   = "cookie"
)

// Comparisons of a condition's value.
const (
	CmpExact    = "exact"
	CmpPrefix   = "prefix"
	CmpSuffix   = "suffix"
	CmpContains = "contains"
	CmpRegex    = "regex"
	CmpFound    = "found" // header or cookie present, whatever its value
)

// Condition is one test of a request.
type Condition struct {
	Kind    string   // CondHost, CondPath, CondFileType, CondHeader, CondCookie
	Name    string   // header or cookie name
	Compare string   // Cmp*; "" for fileType
	Value   string   // what Compare compares with
	Types   []string // fileType: the extensions, without the dot
	Not     bool
}

// Redirect answers a request with a redirect to Location, or to Prefix
// followed by the request's URI.
type Redirect struct {
	Location string
	Prefix   string
	Code     int // 301, 302, 303, 307 or 308
}

// Catchall reports whether r matches every request.
func (r Rule) Catchall() bool { return len(r.Match) == 0 }

// AllNodes calls f for the nodes of b's default pool and of every named pool.
func (b *Balancer) AllNodes(f func(Node)) {
	for _, n := range b.Nodes {
		f(n)
	}
	for _, p := range b.Pools {
		for _, n := range p.Nodes {
			f(n)
		}
	}
}
