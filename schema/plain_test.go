package schema

import (
	"bytes"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/parser"
	"cuelang.org/go/cue/token"
	"github.com/rogpeppe/go-internal/txtar"
)

// viaCUE is what the instance's files give through CUE's parser: the
// unified data (ok false: not plain data, or a parse error) and the
// positions addFile records.
func viaCUE(srcs []source) (*dval, *positions, bool) {
	var files []*ast.File
	for _, s := range srcs {
		f, err := parser.ParseFile(s.name, s.src)
		if err != nil {
			return nil, nil, false
		}
		files = append(files, f)
	}
	if _, bad := packageMismatch(files); bad {
		return nil, nil, false
	}
	data, ok := dataFiles(files)
	if !ok {
		return nil, nil, false
	}
	pos := newPositions(relName)
	for _, f := range files {
		pos.addFile(f)
	}
	return data, pos, true
}

// samePlain checks that plainFiles reads srcs as CUE's parser and
// dataFiles do: when it takes them, the same values, kinds and positions
// (file:line:col and offset) and the same field positions. It reports
// whether plainFiles took them.
func samePlain(t *testing.T, what string, srcs []source) bool {
	t.Helper()
	pos := newPositions(relName)
	got, ok := plainFiles(srcs, pos)
	want, wantPos, wantOK := viaCUE(srcs)
	if !ok {
		return false
	}
	if !wantOK {
		t.Errorf("%s: read as plain data, but CUE's parser or dataFiles refuse it", what)
		return true
	}
	if d := diffData(got, want, "(top)"); d != "" {
		t.Errorf("%s: %s", what, d)
	}
	if d := diffPositions(pos, wantPos); d != "" {
		t.Errorf("%s: field positions: %s", what, d)
	}
	return true
}

func samePos(a, b token.Pos) bool {
	return a.IsValid() == b.IsValid() && (!a.IsValid() ||
		a.Filename() == b.Filename() && a.Line() == b.Line() && a.Column() == b.Column() && a.Offset() == b.Offset())
}

// diffData describes the first difference between two data trees.
func diffData(a, b *dval, at string) string {
	switch {
	case a.kind != b.kind:
		return fmt.Sprintf("%s: kind %d, want %d", at, a.kind, b.kind)
	case a.b != b.b || a.s != b.s || a.i != b.i:
		return fmt.Sprintf("%s: value %v %q %d %g, want %v %q %d %g", at, a.b, a.s, a.i, a.float(), b.b, b.s, b.i, b.float())
	case !samePos(a.at, b.at):
		return fmt.Sprintf("%s: at %s (offset %d), want %s (offset %d)", at, a.at, a.at.Offset(), b.at, b.at.Offset())
	case (a.dagg == nil) != (b.dagg == nil):
		return fmt.Sprintf("%s: aggregate %v, want %v", at, a.dagg != nil, b.dagg != nil)
	case a.dagg == nil:
		return ""
	case len(a.fields) != len(b.fields) || len(a.elems) != len(b.elems) || len(a.patterns()) != len(b.patterns()):
		return fmt.Sprintf("%s: %d fields %d elements %d patterns, want %d %d %d", at,
			len(a.fields), len(a.elems), len(a.patterns()), len(b.fields), len(b.elems), len(b.patterns()))
	}
	for i := range a.fields {
		if a.fields[i].name != b.fields[i].name {
			return fmt.Sprintf("%s: field %d named %q, want %q", at, i, a.fields[i].name, b.fields[i].name)
		}
		if d := diffData(a.fields[i].v, b.fields[i].v, at+"."+a.fields[i].name); d != "" {
			return d
		}
	}
	for i := range a.elems {
		if d := diffData(a.elems[i], b.elems[i], fmt.Sprintf("%s[%d]", at, i)); d != "" {
			return d
		}
	}
	for i := range a.patterns() {
		if d := diffData(a.patterns()[i], b.patterns()[i], fmt.Sprintf("%s[pattern %d]", at, i)); d != "" {
			return d
		}
	}
	return ""
}

// diffPositions compares two position records, lazy fields resolved.
func diffPositions(a, b *positions) string {
	if a.scheduler != b.scheduler {
		return fmt.Sprintf("scheduler at %v, want %v", a.scheduler, b.scheduler)
	}
	if d := diffPosMap(a.schedulerFields, b.schedulerFields); d != "" {
		return "scheduler: " + d
	}
	for _, m := range [][2]map[string]*entityPos{{a.devices, b.devices}, {a.balancers, b.balancers}} {
		if len(m[0]) != len(m[1]) {
			return fmt.Sprintf("%d entities, want %d", len(m[0]), len(m[1]))
		}
		for name, ea := range m[0] {
			eb := m[1][name]
			if eb == nil {
				return fmt.Sprintf("entity %q not wanted", name)
			}
			if ea.pos != eb.pos {
				return fmt.Sprintf("entity %q at %v, want %v", name, ea.pos, eb.pos)
			}
			ea.resolve()
			eb.resolve()
			if d := diffPosMap(ea.fields, eb.fields); d != "" {
				return fmt.Sprintf("entity %q: %s", name, d)
			}
		}
	}
	return ""
}

func diffPosMap(a, b map[string]Pos) string {
	for k, v := range b {
		if a[k] != v {
			return fmt.Sprintf("field %s at %v, want %v", k, a[k], v)
		}
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			return fmt.Sprintf("field %s not wanted", k)
		}
	}
	return ""
}

// instancesOf groups the .cue files of a tree by directory, as instances.
func instancesOf(files map[string][]byte) map[string][]source {
	inst := map[string][]source{}
	for name, src := range files {
		if !strings.HasSuffix(name, ".cue") || strings.Contains(name, "cue.mod/") {
			continue
		}
		dir := path.Dir(name)
		inst[dir] = append(inst[dir], source{name, src})
	}
	for _, srcs := range inst {
		sort.Slice(srcs, func(i, j int) bool { return srcs[i].name < srcs[j].name })
	}
	return inst
}

// repoCorpus returns the .cue files of the repository (examples, test
// fixtures) and those inside its txtar archives, as trees by origin.
func repoCorpus(t *testing.T) map[string]map[string][]byte {
	trees := map[string]map[string][]byte{}
	root := ".."
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); n == ".git" || p != root && strings.HasPrefix(n, ".") || n == "gen" && strings.HasSuffix(filepath.Dir(p), "testdata") {
				return fs.SkipDir
			}
			return nil
		}
		switch {
		case strings.HasSuffix(p, ".cue"):
			src, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			if trees["repo"] == nil {
				trees["repo"] = map[string][]byte{}
			}
			trees["repo"][filepath.ToSlash(rel)] = src
		case strings.HasSuffix(p, ".txtar"):
			a, err := txtar.ParseFile(p)
			if err != nil {
				return err
			}
			files := map[string][]byte{}
			for _, f := range a.Files {
				files[f.Name] = f.Data
			}
			trees[p] = files
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return trees
}

// checkTrees compares both readers on every instance of trees; it returns
// how many instances dataFiles takes and how many of those plainFiles
// takes.
func checkTrees(t *testing.T, trees map[string]map[string][]byte) (data, plain int) {
	t.Helper()
	for origin, files := range trees {
		for dir, srcs := range instancesOf(files) {
			if samePlain(t, origin+": "+dir, srcs) {
				plain++
			}
			if _, _, ok := viaCUE(srcs); ok {
				data++
			}
			// Each file alone as well.
			for _, s := range srcs {
				samePlain(t, origin+": "+s.name, []source{s})
			}
		}
	}
	return data, plain
}

func TestPlainMatchesCUEOnFixtures(t *testing.T) {
	data, plain := checkTrees(t, repoCorpus(t))
	t.Logf("instances of plain data: %d, read without CUE's parser: %d", data, plain)
	if plain == 0 {
		t.Error("no fixture read as plain data")
	}
}

// TestPlainMatchesCUEOnGenerated compares both readers on small trees of
// the bench generator, with and without L7 rules: all must be read here.
func TestPlainMatchesCUEOnGenerated(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the generator")
	}
	for _, rules := range []string{"0", "10"} {
		out := t.TempDir()
		cmd := exec.Command("go", "run", "./internal/testkit/gen", "-out", out, "-schema", "",
			"-devices", "12", "-balancers", "300", "-tenants", "5", "-rules", rules)
		cmd.Dir = ".."
		if msg, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("gen: %v: %s", err, msg)
		}
		files := map[string][]byte{}
		dir := filepath.Join(out, "lbc")
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			src, err := os.ReadFile(p)
			rel, _ := filepath.Rel(dir, p)
			files[filepath.ToSlash(rel)] = src
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		data, plain := checkTrees(t, map[string]map[string][]byte{"gen -rules " + rules: files})
		if data == 0 || plain != data {
			t.Errorf("gen -rules %s: %d instances of plain data, %d read without CUE's parser", rules, data, plain)
		}
	}
}

// plainRead are small files at the edges of the subset that plainFiles
// reads; plainOther are files it leaves to CUE's parser (not plain data,
// refused by CUE, or forms it does not read). Each is compared with CUE's
// reading.
var plainRead = []string{
	"package spec\n\na: 1\n",
	"a: 1\nb: \"x\"\n",
	"// c\npackage spec // c\n// c\na: 1 // c\n",
	"package spec\na: 1, b: 2\n",
	"a: 1,\n",
	"a: {b: 1, c: 2,}\n",
	"a: {\n}\nb: []\nc: {}\n",
	"a: [1, 2,]\nb: [\n\t1\n\t2\n]\n",
	"a : 1\n",
	"a:1\n",
	"a:\n\t1\n",
	"a: // c\n\t1\n",
	"a: {// c\n}\n",
	"a: [// c\n1]\n",
	"a: b: c: 1\n",
	"\"a\": \"b\": 1\n",
	"a: [string]: b: 1\na: x: {}\n",
	"a: [_]: 1\n",
	"[string]: {b: 1}\nx: {}\n",
	"a: 1e5\nb: 1E+5\nc: 1.5e-3\nd: 0.5\ne: -0\nf: -1.5\n",
	"a: 9223372036854775807\nb: -9223372036854775808\n",
	"a: true\nb: false\n",
	"int: 1\nbool: 1\nlen: 1\n",
	"a: \"\\\"\\\\\\/\\n\\t\\r\"\n",
	"a: \"é\"\n",
	"a: \"a\tb\"\n",
	"// é\na: 1\n",
	"a: 1\na: 1\n",
	"a: {b: 1}\na: {c: 2}\n",
	"",
	"// only a comment",
	"package spec",
	"a: 1",
	"devices: \"lb-a\": {address: \"x\", tags: [\"a\", \"b\"], capacity: {balancers: 1}}\nscheduler: {filters: [\"zone\"], costs: {spread: 0.5}}\n",
	"balancers: x: {nodes: [{address: \"a\"}], rules: [{match: [{path: prefix: \"/\"}], pool: \"p\"}], pools: p: nodes: []}\n",
	"devices: [1, {a: 1}]\nbalancers: x: [1, {b: 2}]\nscheduler: 5\n",
}

var plainOther = []string{
	"package spec, a: 1\n",
	"a: {b: 1\n, c: 2}\n",
	"a: [1\n, 2]\n",
	"a: [a: 1]\n",
	"a: [\"x\": 1]\n",
	"a: [ string ]: 1\n",
	"a: 01\n", "a: 1.\n", "a: .5\n", "a: 1_000\n", "a: 0x10\n", "a: 1Ki\n", "a: - 1\n", "a: +1\n",
	"a: 9223372036854775808\n",
	"a: 1e400\n",
	"c: null\n",
	"true: 1\n", "null: 1\n", "if: 1\n", "for: 1\n", "in: 1\n", "let: 1\n", "package: 1\n",
	"string: 1\n", "_a: 1\n", "#a: 1\n", "$a: 1\n", "a$: 1\n", "é: 1\n",
	"a?: 1\n", "a!: 1\n", "a=b: 1\n", "a :: 1\n",
	"a: \"\\u00e9\\x41\\a\"\n",
	"a: \"\\(x)\"\n",
	"b: \"\xff\"\n", "c: \"\xef\xbb\xbf\"\n",
	"// \xff\na: 1\n",
	"\xef\xbb\xbfa: 1\n",
	"a: \"\"\"\n\tx\n\t\"\"\"\n",
	"a: #\"x\"#\n", "a: 'x'\n",
	"a: 1\r\nb: 2\r\n",
	"a: 1 b: 2\n",
	"a: 1 & 1\n", "a: 1 | 2\n", "a: *1 | 2\n", "a: \"a\" + \"b\"\n", "a: b\nb: 1\n",
	"a: 1\na: 2\n", "a: [1]\na: [1, 2]\n",
	"a: [...]\n", "a: [for x in [1] {x}]\n", "a: {if true {b: 1}}\n", "a: {#b: 1}\n",
	"import \"strings\"\na: 1\n",
	"@if(x)\npackage spec\na: 1\n",
	"a: 1 @tag(x)\n",
	"a: (1)\n",
	"a: 1 // x\n/ b\n",
	"a: 1\x00\n",
	"a: {",
	"a: [1,",
	"a: \"x",
	"a:",
}

func TestPlainCases(t *testing.T) {
	for i, c := range plainRead {
		if !samePlain(t, fmt.Sprintf("case %d %q", i, c), []source{{"x.cue", []byte(c)}}) {
			t.Errorf("case %d %q: not read as plain data", i, c)
		}
	}
	for i, c := range plainOther {
		if samePlain(t, fmt.Sprintf("other case %d %q", i, c), []source{{"x.cue", []byte(c)}}) {
			t.Errorf("other case %d %q: read as plain data", i, c)
		}
	}
	// Two files: unified, of the same package or not.
	two := []struct {
		a, b string
		read bool
	}{
		{"package a\nx: 1\n", "package a\ny: 2\n", true},
		{"x: {a: 1}\n", "x: {b: 2}\nx: a: 1\n", true},
		{"package a\nx: 1\n", "package b\ny: 2\n", false},
		{"x: 1\n", "package b\ny: 2\n", false},
		{"x: 1\n", "x: 2\n", false},
	}
	for i, c := range two {
		if got := samePlain(t, fmt.Sprintf("two files %d", i), []source{{"d/a.cue", []byte(c.a)}, {"d/b.cue", []byte(c.b)}}); got != c.read {
			t.Errorf("two files %d: read %v, want %v", i, got, c.read)
		}
	}
}

// TestPlainRandomEdits compares both readers on random edits of plain
// files: bytes inserted, deleted or replaced by ones that matter to CUE.
func TestPlainRandomEdits(t *testing.T) {
	seeds := [][]byte{}
	for _, c := range append(plainRead, plainOther...) {
		seeds = append(seeds, []byte(c))
	}
	for _, files := range repoCorpus(t) {
		for name, src := range files {
			if strings.HasSuffix(name, ".cue") && len(src) < 4000 {
				seeds = append(seeds, src)
			}
		}
	}
	sort.Slice(seeds, func(i, j int) bool { return bytes.Compare(seeds[i], seeds[j]) < 0 })
	alphabet := []string{"\"", "\\", "\n", "\t", " ", "{", "}", "[", "]", ":", ",", "/", "//", "#", "_", "$",
		"-", "+", ".", "0", "1", "9", "e", "E", "a", "x", "@", "&", "|", "*", "?", "!", "=", "(", ")", "'",
		"é", "\xff", "\r", "\x00", "true", "null", "string", "\\(", "\"\"\"", "u00e9", "...", "if ", "for "}
	r := rand.New(rand.NewPCG(1, 2))
	n := 4000
	if testing.Short() {
		n = 500
	}
	taken := 0
	for k := 0; k < n; k++ {
		src := append([]byte(nil), seeds[r.IntN(len(seeds))]...)
		for e := 1 + r.IntN(3); e > 0; e-- {
			i := 0
			if len(src) > 0 {
				i = r.IntN(len(src) + 1)
			}
			a := []byte(alphabet[r.IntN(len(alphabet))])
			switch r.IntN(3) {
			case 0: // insert
				src = append(src[:i:i], append(a, src[i:]...)...)
			case 1: // delete
				if i < len(src) {
					src = append(src[:i:i], src[i+1:]...)
				}
			default: // replace
				if i < len(src) {
					src = append(src[:i:i], append(a, src[i+1:]...)...)
				}
			}
		}
		if samePlain(t, fmt.Sprintf("edit %d %q", k, src), []source{{"x.cue", src}}) {
			taken++
		}
	}
	t.Logf("%d of %d edits read as plain data", taken, n)
}

// FuzzPlain: what plainFiles takes, CUE's parser and dataFiles read the
// same way.
func FuzzPlain(f *testing.F) {
	for _, c := range append(plainRead, plainOther...) {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, src string) {
		samePlain(t, fmt.Sprintf("%q", src), []source{{"x.cue", []byte(src)}})
	})
}

// TestSetLines checks that setLines gives the line table CUE's
// SetLinesForContent gives (the positions of every diagnostic rest on it).
func TestSetLines(t *testing.T) {
	for _, s := range []string{"", "\n", "a", "a\n", "a\nb", "\n\n", "ab\ncd\n\nef\n", "x\n\ny"} {
		a := token.NewFile("a", -1, len(s))
		a.SetLinesForContent([]byte(s))
		b := token.NewFile("a", -1, len(s))
		setLines(b, []byte(s))
		la, lb := a.Lines(), b.Lines()
		if len(la) != len(lb) {
			t.Fatalf("%q: %v vs %v", s, la, lb)
		}
		for i := range la {
			if la[i] != lb[i] {
				t.Fatalf("%q: %v vs %v", s, la, lb)
			}
		}
	}
}
