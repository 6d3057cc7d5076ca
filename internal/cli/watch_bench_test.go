package cli

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"lbc/compiler"
	"lbc/internal/watch"
)

// BenchmarkWatchCycle measures what lbc watch does after a one-weight edit
// in the generated tree (bench/compile.sh or `make gen` writes it to
// testdata/gen): reload the instance, merge, recompile, diff and write the
// re-rendered devices. The debounce is not included.
func BenchmarkWatchCycle(b *testing.B) {
	tree := filepath.Join("..", "..", "testdata", "gen", "lbc")
	if _, err := os.Stat(tree); err != nil {
		b.Skipf("no generated tree at %s (make gen)", tree)
	}
	dir := b.TempDir()
	if err := os.CopyFS(filepath.Join(dir, "tree"), os.DirFS(tree)); err != nil {
		b.Fatal(err)
	}
	root := filepath.Join(dir, "tree")
	ctx := context.Background()
	l := watch.NewLoader(root)
	spec, err := l.Load(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	res, err := compiler.Compile(spec, nil, compiler.Options{})
	if err != nil {
		b.Fatal(err)
	}
	file := filepath.Join(root, "balancers", "t010", "balancers.cue")
	weight := regexp.MustCompile(`weight: (\d+)`)
	out := filepath.Join(dir, "out")
	if err := writeChanged(out, nil, renderedOf(res)); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		data, err := os.ReadFile(file)
		if err != nil {
			b.Fatal(err)
		}
		m := weight.FindSubmatchIndex(data)
		w, _ := strconv.Atoi(string(data[m[2]:m[3]]))
		edited := append(append(append([]byte{}, data[:m[2]]...), strconv.Itoa(w%255+1)...), data[m[3]:]...)
		if err := os.WriteFile(file, edited, 0o644); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		spec, err := l.Load(ctx, []string{"balancers/t010"})
		if err != nil {
			b.Fatal(err)
		}
		next, err := compiler.Recompile(spec, nil, res, compiler.Options{})
		if err != nil {
			b.Fatal(err)
		}
		old, cur := changedDevices(res, next)
		if n := diffRendered(func(string) {}, old, cur); n == 0 {
			b.Fatal("the edit changed no file")
		}
		if err := writeChanged(out, old, cur); err != nil {
			b.Fatal(err)
		}
		res = next
	}
}
