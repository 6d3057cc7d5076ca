package main

import (
	"context"
	"path/filepath"
	"testing"

	"lbc/schema"
)

// BenchmarkLoadGenerated loads the default-size generated tree (1,000
// devices, 10,000 balancers, 100 instances) with lbc's loader: the schema
// part of `lbc validate`, without the CLI. Run it under /usr/bin/time to see
// the peak memory too:
//
//	go test -c -o /tmp/gen.test ./internal/gen
//	/usr/bin/time -f '%e s %M KB' /tmp/gen.test -test.run '^$' -test.bench LoadGenerated -test.benchtime 1x
func BenchmarkLoadGenerated(b *testing.B) {
	files, err := Generate(Config{Devices: 1000, Balancers: 10000, Tenants: 100, Seed: 1}, nil)
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	if err := write(dir, files); err != nil {
		b.Fatal(err)
	}
	files = nil
	b.ResetTimer()
	for b.Loop() {
		spec, err := schema.LoadDir(context.Background(), filepath.Join(dir, "lbc"))
		if err != nil {
			b.Fatal(err)
		}
		if len(spec.Balancers) != 10000 {
			b.Fatalf("%d balancers", len(spec.Balancers))
		}
	}
}
