package compiler

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
)

// LockFileName is the name of the placement lock, kept at the root of the
// spec tree and committed with it.
const LockFileName = "lbc.lock"

const lockHeader = "# lbc placement lock: one balancer a line, \"<balancer> <primary> [<standby>]\", sorted; written by lbc, commit it with the specs\n"

// ParseLock reads a lock file: one balancer a line, "<balancer> <primary>"
// or "<balancer> <primary> <standby>", fields separated by blanks. Blank
// lines and lines starting with # are ignored. Errors name the line.
func ParseLock(data []byte) (Lock, error) {
	l := Lock{}
	first := map[string]int{}
	for i, line := range strings.Split(string(data), "\n") {
		n := i + 1
		line = strings.TrimSuffix(line, "\r")
		t := strings.TrimLeft(line, " \t")
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		for _, r := range line {
			if r != ' ' && r != '\t' && (r < 0x21 || r == 0x7f) {
				return nil, fmt.Errorf("line %d: control character %q", n, r)
			}
		}
		f := strings.Fields(line)
		if len(f) < 2 || len(f) > 3 {
			return nil, fmt.Errorf("line %d: want \"<balancer> <primary> [<standby>]\", got %d fields", n, len(f))
		}
		for j, name := range f {
			if !validLockName(name) {
				what := [...]string{"balancer", "primary device", "standby device"}[j]
				return nil, fmt.Errorf("line %d: invalid %s name %q", n, what, name)
			}
		}
		p := Placement{Balancer: f[0], Primary: f[1]}
		if len(f) == 3 {
			if f[2] == f[1] {
				return nil, fmt.Errorf("line %d: %s: standby is the primary %s", n, f[0], f[1])
			}
			p.Standby = f[2]
		}
		if k, dup := first[p.Balancer]; dup {
			return nil, fmt.Errorf("line %d: balancer %s already placed on line %d", n, p.Balancer, k)
		}
		first[p.Balancer] = n
		l[p.Balancer] = p
	}
	return l, nil
}

// validLockName reports whether s is a device or balancer name as the schema
// allows: ^[a-z0-9][a-z0-9._-]{0,62}$.
func validLockName(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case i > 0 && (c == '.' || c == '_' || c == '-'):
		default:
			return false
		}
	}
	return true
}

// Marshal formats l as a lock file: a header comment, then one line per
// balancer, sorted by name.
func (l Lock) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString(lockHeader)
	for _, n := range l.names() {
		p := l[n]
		b.WriteString(n)
		b.WriteByte(' ')
		b.WriteString(p.Primary)
		if p.Standby != "" {
			b.WriteByte(' ')
			b.WriteString(p.Standby)
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func (l Lock) names() []string {
	names := make([]string, 0, len(l))
	for n := range l {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Equal reports whether l and o place the same balancers on the same
// devices. A nil lock equals an empty one.
func (l Lock) Equal(o Lock) bool {
	if len(l) != len(o) {
		return false
	}
	for n, p := range l {
		q, ok := o[n]
		if !ok || p.Primary != q.Primary || p.Standby != q.Standby {
			return false
		}
	}
	return true
}

// DiffLocks describes, one line per balancer sorted by name, how new
// differs from old: "shop-web: lb-a1 -> lb-b2", "shop-api: new on lb-a1",
// "shop-old: removed from lb-b1". An HA placement reads "lb-a1 (standby lb-b1)".
func DiffLocks(old, new Lock) []string {
	seen := map[string]bool{}
	var names []string
	for _, l := range []Lock{old, new} {
		for n := range l {
			if !seen[n] {
				seen[n] = true
				names = append(names, n)
			}
		}
	}
	sort.Strings(names)
	var out []string
	for _, n := range names {
		p, inOld := old[n]
		q, inNew := new[n]
		switch {
		case !inOld:
			out = append(out, fmt.Sprintf("%s: new on %s", n, placementString(q)))
		case !inNew:
			out = append(out, fmt.Sprintf("%s: removed from %s", n, placementString(p)))
		case p.Primary != q.Primary || p.Standby != q.Standby:
			out = append(out, fmt.Sprintf("%s: %s -> %s", n, placementString(p), placementString(q)))
		}
	}
	return out
}

func placementString(p Placement) string {
	if p.Standby == "" {
		return p.Primary
	}
	return p.Primary + " (standby " + p.Standby + ")"
}
