package reconcile

import (
	"bufio"
	"fmt"
	"sort"
	"strings"

	"lbc/compiler"
	"lbc/reconcile/classify"
	"lbc/reconcile/host"
)

// Host tables at runtime. A device whose only file changes are entries of
// host tables (map files; server operations may come with them) is a
// runtime change: the transaction stages, checks, keeps and swaps the map
// files as for a reload, then loads each changed table into the running
// HAProxy from the swapped file as one new map version (host.Runtime.Maps),
// reads `show map` back and compares it with the file; the rollback loads
// the old file the same way. Plan and apply decide it alike (mapRuntime),
// apply from what the lock holder read.

// maxRuntimeMapEntries bounds the entries of a table changed at runtime:
// the read-back of `show map` is cut at 100,000 lines (host.readBackCmd),
// so a larger table reloads.
const maxRuntimeMapEntries = 100_000

// mapRuntime decides whether the auxiliary files that d writes on the host
// (live: what it has) are entries of host tables only. It returns the
// tables to load (a table whose entries are the same, its header alone
// changing, needs none), or why the change needs a reload ("" when it
// does not). cfg is the running haproxy.cfg (the live file lbc applied
// last, which the caller checks): every table must be one it reads.
func mapRuntime(d *Desired, live *Live, cfg []byte) ([]classify.MapOp, string) {
	if len(d.FilesRemove) > 0 {
		return nil, "a file lbc wrote before is removed: HAProxy lets go of it at a reload"
	}
	var ops []classify.MapOp
	for i := range d.Files {
		f := &d.Files[i]
		have := live.Files[f.Path]
		if have == f.SHA256 || f.Kind == compiler.AuxCert {
			continue // unchanged, or a certificate: fileRuntimeOps decides (certrt.go)
		}
		if f.Kind != compiler.AuxMap || !host.IsMapFile(f.Path) {
			return nil, fmt.Sprintf("%s (%s) changes: HAProxy reads it at a reload", f.Path, f.Kind)
		}
		if have == "" {
			return nil, "host table " + f.Path + " is new: HAProxy loads it at a reload"
		}
		if !strings.Contains(string(cfg), "map("+f.Path+",") {
			return nil, "the running haproxy.cfg does not read host table " + f.Path
		}
		old, ok := live.FileData[f.Path]
		if !ok || sha256Hex(old) != have {
			return nil, "the live host table " + f.Path + " was not read"
		}
		op := mapOp(f.Path, mapEntries(old), mapEntries(f.content()))
		if op.Entries > maxRuntimeMapEntries {
			return nil, fmt.Sprintf("host table %s has %d entries, more than %d that lbc reads back at runtime", f.Path, op.Entries, maxRuntimeMapEntries)
		}
		if op.Added+op.Removed+op.Changed > 0 {
			ops = append(ops, op)
		}
	}
	return ops, ""
}

// mapOp counts the entries added, removed and changed from old to cur.
func mapOp(path string, old, cur map[string]string) classify.MapOp {
	op := classify.MapOp{Path: path, Entries: len(cur)}
	for k, v := range cur {
		switch o, ok := old[k]; {
		case !ok:
			op.Added++
		case o != v:
			op.Changed++
		}
	}
	for k := range old {
		if _, ok := cur[k]; !ok {
			op.Removed++
		}
	}
	return op
}

// planMaps settles the class of a device's change when auxiliary files
// change (or keepalived.conf): apply carries host-table entries at
// runtime (mapRuntime) and reloads for anything else. trusted says that
// the running HAProxy runs the live haproxy.cfg (lbc applied it last).
func planMaps(dp *DevicePlan, live *Live, trusted bool) {
	if len(dp.FileChanges) == 0 && dp.KeepalivedDiff == "" {
		return
	}
	if dp.Change != nil && dp.Change.Class == classify.Reload {
		return
	}
	reload := func(reason string) { dp.Change = &classify.Result{Class: classify.Reload, Reason: reason} }
	switch {
	case dp.KeepalivedDiff != "":
		if dp.Change != nil { // a runtime change: apply reloads it
			reload("keepalived.conf changes too: a runtime change reloads with it")
		}
		return
	case !trusted:
		reload("a file changes and the live haproxy.cfg is not the one lbc applied last")
		return
	}
	maps, reason := mapRuntime(&dp.Desired, live, live.Config.Data)
	if reason != "" {
		reload(reason)
		return
	}
	if dp.Change == nil {
		dp.Change = &classify.Result{Class: classify.Runtime}
	}
	dp.Change.Maps = maps
}

// runtimeMaps is the map part of a runtime apply: the tables to load,
// with their `show map` read-back, added to rt; ok is false when the
// files the host lacks need a reload (mapRuntime, on what the lock holder
// read).
func (x *tx) runtimeMaps(rt *host.Runtime) ([]classify.MapOp, bool) {
	if len(x.files) == 0 && len(x.dp.Desired.FilesRemove) == 0 {
		return nil, true
	}
	maps, reason := mapRuntime(&x.dp.Desired, x.live, x.live.Config.Data)
	if reason != "" {
		return nil, false
	}
	for _, m := range maps {
		rt.Maps = append(rt.Maps, m.Path)
		rt.ReadBack = append(rt.ReadBack, host.MapQuery(m.Path))
	}
	return maps, true
}

// compareMaps compares the `show map` answers (answers[i] for paths[i])
// with the tables want gives (the file each path must hold).
func compareMaps(paths, answers []string, want func(path string) []byte) error {
	if len(answers) != len(paths) {
		return fmt.Errorf("show map: %d answers for %d tables", len(answers), len(paths))
	}
	var diffs []string
	for i, p := range paths {
		got, err := parseShowMap(answers[i])
		if err != nil {
			return fmt.Errorf("show map %s: %w", p, err)
		}
		for _, d := range mapDiffs(mapEntries(want(p)), got) {
			diffs = append(diffs, p+": "+d)
		}
	}
	if len(diffs) == 0 {
		return nil
	}
	return fmt.Errorf("the running host table differs from the file: %s", joinDiffs(diffs))
}

// mapDiffs lists how the running entries differ from the file's, sorted.
func mapDiffs(file, running map[string]string) []string {
	var out []string
	for k, v := range file {
		switch r, ok := running[k]; {
		case !ok:
			out = append(out, k+" is not running")
		case r != v:
			out = append(out, fmt.Sprintf("%s runs %s, file %s", k, r, v))
		}
	}
	for k, r := range running {
		if _, ok := file[k]; !ok {
			out = append(out, fmt.Sprintf("%s runs %s, not in the file", k, r))
		}
	}
	sort.Strings(out)
	return out
}

// parseShowMap reads the answer of `show map MAP`: "0xID KEY VALUE" a
// line. A key a map holds twice is an error: a runtime load writes each
// once.
func parseShowMap(answer string) (map[string]string, error) {
	m := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(answer))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 || !strings.HasPrefix(f[0], "0x") {
			return nil, fmt.Errorf("unexpected line %.80q", line)
		}
		if _, dup := m[f[1]]; dup {
			return nil, fmt.Errorf("key %.80q runs twice", f[1])
		}
		m[f[1]] = f[2]
	}
	return m, sc.Err()
}

// fileData is the content d wants at path (nil when d has no such file).
func (d *Desired) fileData(path string) []byte {
	for i := range d.Files {
		if d.Files[i].Path == path {
			return d.Files[i].content()
		}
	}
	return nil
}
