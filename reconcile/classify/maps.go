package classify

import (
	"fmt"
	"path"
	"strings"
)

// MapOp is a host table (a map file lbc renders) whose entries a runtime
// change loads into the running HAProxy: the whole new file as one new
// version of the map, committed at once. The counts say what changes.
type MapOp struct {
	Path    string `json:"path"`
	Added   int    `json:"added"`
	Removed int    `json:"removed"`
	Changed int    `json:"changed"` // hosts sent to another backend
	Entries int    `json:"entries"` // in the new file
}

// String is the operation as plan output shows it.
func (m MapOp) String() string {
	return fmt.Sprintf("map %s: %d added, %d removed, %d changed (loads %d entries as a new version, committed at once)",
		m.Path, m.Added, m.Removed, m.Changed, m.Entries)
}

// checkMapOps validates the map operations of a saved plan: paths of a
// host table lbc renders (an absolute path of [A-Za-z0-9._/-] whose
// name is lbc-hosts-*.map), counts that are not negative.
func checkMapOps(ms []MapOp) error {
	for i, m := range ms {
		b := path.Base(m.Path)
		ok := strings.HasPrefix(m.Path, "/") && len(m.Path) <= 1000 &&
			strings.HasPrefix(b, "lbc-hosts-") && strings.HasSuffix(b, ".map")
		for j := 0; ok && j < len(m.Path); j++ {
			c := m.Path[j]
			ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._/-", c) >= 0
		}
		if !ok {
			return fmt.Errorf("change: maps[%d]: %q is not a host table lbc writes", i, m.Path)
		}
		if m.Added < 0 || m.Removed < 0 || m.Changed < 0 || m.Entries < 0 {
			return fmt.Errorf("change: maps[%d]: a negative count", i)
		}
	}
	return nil
}
