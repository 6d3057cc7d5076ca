// Command vulncheck runs govulncheck on lbc without reaching the Go
// vulnerability database's web site: the database's entries come as the Go
// module golang.org/x/vulndb through the module proxy (its data/osv holds
// every entry as OSV JSON), are indexed here into the file layout
// govulncheck reads with -db file://, and govulncheck itself is run from
// the module proxy at a pinned version.
//
// It fails (exit 1) when lbc calls a vulnerable symbol of a module it
// requires: that is fixed by a change to go.mod. A vulnerable symbol of
// the standard library is printed as a warning: that is fixed by upgrading
// the Go toolchain of the machine, not by a change to the repository. When
// the module proxy cannot be reached it says so and exits 0, or 1 when the
// environment variable CI is set.
//
//	go run ./internal/vulncheck [-db VERSION] [-govulncheck VERSION] [PACKAGES]
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

func main() { os.Exit(run()) }

func run() int {
	dbVersion := flag.String("db", "latest", "version of the module golang.org/x/vulndb to take the entries from")
	toolVersion := flag.String("govulncheck", "v1.9.0", "version of golang.org/x/vuln/cmd/govulncheck")
	flag.Parse()
	pkgs := flag.Args()
	if len(pkgs) == 0 {
		pkgs = []string{"./..."}
	}

	mod, err := download("golang.org/x/vulndb@" + *dbVersion)
	if err != nil {
		if os.Getenv("CI") != "" {
			fmt.Fprintf(os.Stderr, "vulncheck: the vulnerability database module: %v (CI is set: failing)\n", err)
			return 1
		}
		fmt.Fprintf(os.Stderr, "vulncheck: skipped: the vulnerability database module cannot be downloaded: %v\n", err)
		return 0
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		fmt.Fprintf(os.Stderr, "vulncheck: %v\n", err)
		return 1
	}
	db, n, err := index(mod, filepath.Join(cache, "lbc-vulndb"))
	if err != nil {
		fmt.Fprintf(os.Stderr, "vulncheck: %v\n", err)
		return 1
	}
	fmt.Printf("vulncheck: %d entries of golang.org/x/vulndb %s, govulncheck %s\n", n, mod.Version, *toolVersion)

	args := append([]string{"run", "golang.org/x/vuln/cmd/govulncheck@" + *toolVersion, "-db", "file://" + db, "-format", "json"}, pkgs...)
	cmd := exec.Command("go", args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		fmt.Fprintf(os.Stderr, "vulncheck: govulncheck: %v\n", err)
		return 1
	}
	called, err := findings(bytes.NewReader(out))
	if err != nil {
		fmt.Fprintf(os.Stderr, "vulncheck: reading govulncheck's output: %v\n", err)
		return 1
	}
	fail := false
	for _, f := range called {
		kind := "warning (standard library: upgrade Go)"
		if f.fails() {
			kind = "ERROR (a required module: upgrade it in go.mod)"
			fail = true
		}
		fixed := f.fixed
		if fixed == "" {
			fixed = "no fixed version"
		}
		fmt.Printf("%s: %s %s@%s, fixed in %s: %s\n", kind, f.id, f.module, f.version, fixed, f.at)
	}
	if fail {
		return 1
	}
	fmt.Printf("vulncheck: ok: no vulnerable symbol of a required module is called (%d of the standard library)\n", len(called))
	return 0
}

type module struct {
	Path, Version, Dir string
	Error              string
}

// download fetches a module through the module proxy (or the module cache).
func download(spec string) (*module, error) {
	cmd := exec.Command("go", "mod", "download", "-json", spec)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var m module
	if jerr := json.Unmarshal(out, &m); jerr == nil && m.Error != "" {
		return nil, errors.New(m.Error)
	}
	if err != nil {
		return nil, fmt.Errorf("go mod download %s: %v: %s", spec, err, strings.TrimSpace(stderr.String()))
	}
	if err := json.Unmarshal(out, &m); err != nil || m.Dir == "" {
		return nil, fmt.Errorf("go mod download %s: no directory in %q", spec, out)
	}
	return &m, nil
}

// index writes the database of the module's data/osv entries, once per
// version, into cache, and returns its directory and the number of
// entries.
func index(m *module, cache string) (string, int, error) {
	dir := filepath.Join(cache, m.Version)
	if b, err := os.ReadFile(filepath.Join(dir, "count")); err == nil {
		var n int
		if _, err := fmt.Sscan(string(b), &n); err == nil {
			return dir, n, nil
		}
	}
	src := filepath.Join(m.Dir, "data", "osv")
	files, err := filepath.Glob(filepath.Join(src, "GO-*.json"))
	if err != nil || len(files) == 0 {
		return "", 0, fmt.Errorf("no entries in %s", src)
	}
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(filepath.Join(tmp, "ID"), 0o755); err != nil {
		return "", 0, err
	}
	type modVuln struct {
		ID       string `json:"id"`
		Modified string `json:"modified"`
	}
	mods := map[string][]modVuln{}
	latest := time.Time{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", 0, err
		}
		var e struct {
			ID       string    `json:"id"`
			Modified time.Time `json:"modified"`
			Affected []struct {
				Package struct {
					Name string `json:"name"`
				} `json:"package"`
			} `json:"affected"`
		}
		if err := json.Unmarshal(b, &e); err != nil || e.ID == "" || filepath.Base(f) != e.ID+".json" {
			return "", 0, fmt.Errorf("%s: not an OSV entry (%v)", f, err)
		}
		if e.Modified.After(latest) {
			latest = e.Modified
		}
		seen := map[string]bool{}
		for _, a := range e.Affected {
			if p := a.Package.Name; p != "" && !seen[p] {
				seen[p] = true
				// No "fixed" shortcut: govulncheck then reads every
				// entry of a module it finds, which is always right.
				mods[p] = append(mods[p], modVuln{ID: e.ID, Modified: e.Modified.Format(time.RFC3339)})
			}
		}
		if err := os.WriteFile(filepath.Join(tmp, "ID", e.ID+".json"), b, 0o644); err != nil {
			return "", 0, err
		}
	}
	type modEntry struct {
		Path  string    `json:"path"`
		Vulns []modVuln `json:"vulns"`
	}
	var list []modEntry
	for p, vs := range mods {
		sort.Slice(vs, func(i, j int) bool { return vs[i].ID < vs[j].ID })
		list = append(list, modEntry{p, vs})
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Path < list[j].Path })
	if err := os.MkdirAll(filepath.Join(tmp, "index"), 0o755); err != nil {
		return "", 0, err
	}
	for name, v := range map[string]any{
		"modules.json": list,
		"db.json":      map[string]string{"modified": latest.Format(time.RFC3339)},
	} {
		b, err := json.Marshal(v)
		if err != nil {
			return "", 0, err
		}
		if err := os.WriteFile(filepath.Join(tmp, "index", name), b, 0o644); err != nil {
			return "", 0, err
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, "count"), []byte(fmt.Sprint(len(files))), 0o644); err != nil {
		return "", 0, err
	}
	os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		return "", 0, err
	}
	return dir, len(files), nil
}

type finding struct {
	id, module, version, fixed, at string
}

// fails reports whether f fails the check: a module's, not the standard
// library's or the toolchain's.
func (f finding) fails() bool { return f.module != "stdlib" && f.module != "toolchain" }

// findings returns govulncheck's findings at the symbol level (lbc calls
// the vulnerable function), one per entry and module.
func findings(r io.Reader) ([]finding, error) {
	dec := json.NewDecoder(bufio.NewReader(r))
	seen := map[string]bool{}
	var out []finding
	for {
		var msg struct {
			Finding *struct {
				OSV          string `json:"osv"`
				FixedVersion string `json:"fixed_version"`
				Trace        []struct {
					Module   string `json:"module"`
					Version  string `json:"version"`
					Package  string `json:"package"`
					Function string `json:"function"`
					Receiver string `json:"receiver"`
				} `json:"trace"`
			} `json:"finding"`
		}
		if err := dec.Decode(&msg); err == io.EOF {
			break
		} else if err != nil {
			return nil, err
		}
		f := msg.Finding
		if f == nil || len(f.Trace) == 0 || f.Trace[0].Function == "" {
			continue // imported or required only, not called
		}
		t := f.Trace[0]
		key := f.OSV + " " + t.Module
		if seen[key] {
			continue
		}
		seen[key] = true
		sym := t.Package + "." + t.Function
		if t.Receiver != "" {
			sym = t.Package + "." + strings.TrimPrefix(t.Receiver, "*") + "." + t.Function
		}
		out = append(out, finding{id: f.OSV, module: t.Module, version: t.Version, fixed: f.FixedVersion, at: sym})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out, nil
}
