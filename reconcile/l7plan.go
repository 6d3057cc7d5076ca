package reconcile

import (
	"bufio"
	"bytes"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"lbc/compiler"
)

// The L7 part of a device's plan, readably: rules added and removed, read
// from the "# rule N of BALANCER: ..." comment that precedes each rule in
// haproxy.cfg (compiler.DescribeRule), and host-table entries added,
// removed and moved, read from the live and the new map files. Each line
// starts with +, - or ~ (DevicePlan.Routing).

// maxRoutingLines bounds the routing lines of one file (a table of
// 10,000 hosts may change whole): the rest is counted.
const maxRoutingLines = 50

var ruleComment = regexp.MustCompile(`^    # rule ([0-9]{1,6}) of ([a-z0-9][a-z0-9._-]{0,62}): (.+)$`)

// rulesOf reads the rule descriptions of each balancer of a haproxy.cfg,
// in order, once per balancer (every frontend of a balancer repeats them).
func rulesOf(cfg []byte) map[string][]string {
	out := map[string][]string{}
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(cfg))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		m := ruleComment.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		key := m[2] + "/" + m[1]
		if seen[key] {
			continue
		}
		seen[key] = true
		out[m[2]] = append(out[m[2]], m[3])
	}
	return out
}

// ruleChanges lists the rules removed from and added to each balancer
// from the live haproxy.cfg to the new one.
func ruleChanges(live, desired []byte) []string {
	old, cur := rulesOf(live), rulesOf(desired)
	names := map[string]bool{}
	for b := range old {
		names[b] = true
	}
	for b := range cur {
		names[b] = true
	}
	sorted := make([]string, 0, len(names))
	for b := range names {
		sorted = append(sorted, b)
	}
	sort.Strings(sorted)
	var out []string
	for _, b := range sorted {
		removed, added := multisetDiff(old[b], cur[b])
		n := 0
		for _, r := range removed {
			out = appendBounded(out, &n, "-rule "+b+": "+r)
		}
		for _, r := range added {
			out = appendBounded(out, &n, "+rule "+b+": "+r)
		}
		if n > maxRoutingLines {
			out = append(out, fmt.Sprintf("~rules of %s: %d more changes", b, n-maxRoutingLines))
		}
		if len(removed) == 0 && len(added) == 0 && strings.Join(old[b], "\n") != strings.Join(cur[b], "\n") {
			out = append(out, "~rules of "+b+": reordered")
		}
	}
	return out
}

func appendBounded(out []string, n *int, line string) []string {
	*n++
	if *n > maxRoutingLines {
		return out
	}
	return append(out, line)
}

// multisetDiff returns the items of a not in b and of b not in a, each in
// its list's order, counting repeats.
func multisetDiff(a, b []string) (onlyA, onlyB []string) { return minus(a, b), minus(b, a) }

// minus is a without the items of b (each item of b removes one).
func minus(a, b []string) []string {
	count := map[string]int{}
	for _, x := range b {
		count[x]++
	}
	var out []string
	for _, x := range a {
		if count[x] > 0 {
			count[x]--
		} else {
			out = append(out, x)
		}
	}
	return out
}

// mapEntries reads an HAProxy map file: "key value" lines, comments and
// blank lines skipped.
func mapEntries(b []byte) map[string]string {
	m := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, _ := strings.Cut(line, " ")
		m[k] = strings.TrimSpace(v)
	}
	return m
}

// hostChanges lists the entries of a host table added, removed and moved
// to another backend, from live (nil: no file) to desired.
func hostChanges(path string, live []byte, liveKnown bool, desired []byte) []string {
	if !liveKnown {
		return []string{"~hosts " + path + ": the live table was not read"}
	}
	old, cur := mapEntries(live), mapEntries(desired)
	keys := make([]string, 0, len(old)+len(cur))
	for k := range old {
		keys = append(keys, k)
	}
	for k := range cur {
		if _, ok := old[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var out []string
	n, add, del, mod := 0, 0, 0, 0
	for _, k := range keys {
		o, inOld := old[k]
		c, inCur := cur[k]
		switch {
		case !inOld:
			add++
			out = appendBounded(out, &n, "+host "+k+" -> "+c)
		case !inCur:
			del++
			out = appendBounded(out, &n, "-host "+k+" -> "+o)
		case o != c:
			mod++
			out = appendBounded(out, &n, "~host "+k+": "+o+" -> "+c)
		}
	}
	if n > 0 {
		out = append(out, fmt.Sprintf("~hosts %s: %d added, %d removed, %d moved (%d entries)", path, add, del, mod, len(cur)))
	}
	return out
}

// routingChanges is the Routing of a device's plan.
func routingChanges(live *Live, art *compiler.DeviceArtifacts) []string {
	var liveCfg []byte
	if live.Config.Exists {
		liveCfg = live.Config.Data
	}
	out := ruleChanges(liveCfg, art.HAProxyCfg)
	for _, f := range art.AuxFiles {
		if f.Kind != compiler.AuxMap || live.Files[f.Path] == sha256Hex(f.Data) {
			continue
		}
		data, ok := live.FileData[f.Path]
		if live.Files[f.Path] == "" {
			data, ok = nil, true // no file yet: every entry is new
		}
		out = append(out, hostChanges(f.Path, data, ok, f.Data)...)
	}
	return out
}
