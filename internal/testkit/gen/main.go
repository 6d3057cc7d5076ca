// Command gen writes a large, deterministic spec tree for lbc's benchmarks:
// by default 1,000 devices in three zones and 10,000 balancers in 100 tenant
// directories, as two variants: OUT/lbc (the tree as a user writes it) and
// OUT/cue (the same files plus lbc's schema as a CUE package and one file per
// instance unifying the instance with it, so `cue export ./...` there does
// the validation lbc does). See bench/README.md.
//
//	go run ./internal/gen -out testdata/gen [-devices 1000 -balancers 10000 -tenants 100] [-schema schema/schema.cue]
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("gen", flag.ContinueOnError)
	out := fs.String("out", "", "output directory (required; its lbc/ and cue/ are replaced)")
	c := Config{}
	fs.IntVar(&c.Devices, "devices", 1000, "number of devices")
	fs.IntVar(&c.Balancers, "balancers", 10000, "number of balancers")
	fs.IntVar(&c.Tenants, "tenants", 100, "number of tenant directories")
	fs.Uint64Var(&c.Seed, "seed", 1, "random seed (the same seed gives the same tree)")
	fs.IntVar(&c.Rules, "rules", 0, "L7 rules per http balancer of the plain tree (with one pool); 0: none")
	schemaFile := fs.String("schema", "schema/schema.cue", "lbc's CUE schema, copied into OUT/cue (empty: no cue/ variant)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() > 0 {
		return fmt.Errorf("usage: gen -out DIR [-devices N] [-balancers N] [-tenants N] [-schema FILE]")
	}
	var src []byte
	if *schemaFile != "" {
		var err error
		if src, err = os.ReadFile(*schemaFile); err != nil {
			return fmt.Errorf("read schema: %w", err)
		}
	}
	files, err := Generate(c, src)
	if err != nil {
		return err
	}
	return write(*out, files)
}

// write replaces OUT/lbc and OUT/cue with files.
func write(out string, files Files) error {
	for _, d := range []string{"lbc", "cue", "idiomatic"} {
		if err := os.RemoveAll(filepath.Join(out, d)); err != nil {
			return fmt.Errorf("write %s: %w", out, err)
		}
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p := filepath.Join(out, filepath.FromSlash(n))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
		if err := os.WriteFile(p, files[n], 0o644); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
	}
	return nil
}
