package schema

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/build"
	"cuelang.org/go/cue/cuecontext"
	"cuelang.org/go/cue/load"
	"cuelang.org/go/cue/parser"

	"lbc/internal/par"
)

// Partial is what one instance (one directory of the tree) defines, checked
// on its own. Merge combines partials into a Spec and runs the checks that
// span instances.
type Partial struct {
	Dir          string   // instance directory, relative to the tree root ("." for the root)
	Files        []string // its .cue files, relative to the tree root
	Devices      map[string]*Device
	Balancers    map[string]*Balancer
	Scheduler    *Scheduler // nil when the instance sets none
	SchedulerPos Pos
	Diagnostics  Diagnostics // problems found in this instance alone

	// rejected holds the entities the instance defines that failed its own
	// checks ("devices/lb-a1" → position), so that Merge neither reports
	// them as unknown nor checks them further.
	rejected        map[string]Pos
	schedulerFields map[string]Pos
}

// LoadDir loads the spec tree rooted at dir within DefaultLimits;
// positions are relative to dir.
func LoadDir(ctx context.Context, dir string) (*Spec, error) {
	return DefaultLimits.LoadDir(ctx, dir)
}

// Load loads the spec tree fsys within DefaultLimits: every instance is
// checked against the schema in parallel, then the results are merged and
// checked together. On any problem it returns Diagnostics holding all of
// them. It returns when ctx is done (see Limits.Load).
func Load(ctx context.Context, fsys fs.FS) (*Spec, error) {
	return DefaultLimits.Load(ctx, fsys)
}

// LoadCached is Load reading the result of each unchanged instance from
// cache (nil: no cache) and storing the others there.
func LoadCached(ctx context.Context, fsys fs.FS, cache *Cache) (*Spec, error) {
	return DefaultLimits.LoadCached(ctx, fsys, cache)
}

func (l Limits) load(ctx context.Context, fsys fs.FS, cache *Cache) (*Spec, error) {
	dirs, err := Instances(fsys)
	if err != nil {
		return nil, err
	}
	var k *keyer
	if cache != nil {
		k = newKeyer(fsys, l)
	}
	parts := make([]*Partial, len(dirs))
	var stored atomic.Bool
	shared := newSharedImports()
	err = par.Do(ctx, len(dirs), 0, func(i int) (err error) {
		var put bool
		parts[i], put, err = l.loadCachedInstance(fsys, dirs[i], pathAuto, cache, k, shared)
		if put {
			stored.Store(true)
		}
		return err
	})
	if ctx.Err() != nil {
		return nil, fmt.Errorf("load specs: %w", ctx.Err())
	}
	if err != nil {
		return nil, err
	}
	if stored.Load() {
		cache.trim()
	}
	return l.Merge(parts)
}

// Instances returns the directories of fsys that hold .cue files, sorted;
// cue.mod and hidden directories are skipped.
func Instances(fsys fs.FS) ([]string, error) {
	var dirs []string
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != "." && (d.Name() == "cue.mod" || hidden(d.Name())) {
				return fs.SkipDir
			}
			return nil
		}
		if isSpecFile(d.Name()) {
			dir := path.Dir(p)
			if len(dirs) == 0 || dirs[len(dirs)-1] != dir {
				dirs = append(dirs, dir)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list spec instances: %w", err)
	}
	sort.Strings(dirs)
	return dirs, nil
}

func hidden(name string) bool { return strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") }

func isSpecFile(name string) bool { return strings.HasSuffix(name, ".cue") && !hidden(name) }

// LoadInstance evaluates the instance in directory dir of fsys against the
// schema and decodes it. Problems with the specs are in the Partial's
// Diagnostics; the error is for a tree that cannot be read.
//
// An instance whose files are plain data (see data.go) that the validator
// generated from the schema accepts is unified and decoded in Go, without
// CUE's evaluator (about ten times cheaper); any other instance is
// evaluated by CUE alone, without the schema, and its concrete result goes
// through the same validator (see evaluated.go); every instance the
// validator does not accept, and every instance with a problem, is
// evaluated by CUE unified with the schema, which reports the problems.
// All give the same Partial.
func LoadInstance(fsys fs.FS, dir string) (*Partial, error) {
	return DefaultLimits.LoadInstance(fsys, dir)
}

// LoadInstance is the package function LoadInstance within l.
func (l Limits) LoadInstance(fsys fs.FS, dir string) (*Partial, error) {
	return l.loadInstance(fsys, dir, pathAuto)
}

// LoadInstanceCached is LoadInstance within l, reading the result from
// cache when the instance is unchanged and storing it there when not
// (cache nil: no cache).
func (l Limits) LoadInstanceCached(fsys fs.FS, dir string, cache *Cache) (*Partial, error) {
	if cache == nil {
		return l.LoadInstance(fsys, dir)
	}
	p, put, err := l.loadCachedInstance(fsys, dir, pathAuto, cache, newKeyer(fsys, l), nil)
	if put && cache.puts.Add(1)%trimEvery == 0 {
		cache.trim()
	}
	return p, err
}

// How loadInstance evaluates an instance: plain data in Go, else evaluated
// alone and validated in Go, else unified with the schema by CUE
// (pathAuto); always unified by CUE (pathCUE); as plain data only
// (pathFast) or as plain data or evaluated alone (pathEvaluated), for
// tests: an instance these do not take returns errNotFast.
type evalPath int

const (
	pathAuto evalPath = iota
	pathCUE
	pathFast
	pathEvaluated
)

var errNotFast = errors.New("not taken by the fast path")

func loadInstance(fsys fs.FS, dir string, how evalPath) (*Partial, error) {
	return DefaultLimits.loadInstance(fsys, dir, how)
}

func (l Limits) loadInstance(fsys fs.FS, dir string, how evalPath) (*Partial, error) {
	p, _, err := l.loadCachedInstance(fsys, dir, how, nil, nil, nil)
	return p, err
}

// loadCachedInstance loads the instance dir, from cache when it holds it
// (cache nil: none); put reports that the result was stored. An instance
// with a file lbc does not read (see fileProblem) is not cached. shared
// holds the imported packages of the load (nil: each instance loads its
// own).
func (l Limits) loadCachedInstance(fsys fs.FS, dir string, how evalPath, cache *Cache, k *keyer, shared *sharedImports) (p *Partial, put bool, err error) {
	srcs, problems, err := l.readInstance(fsys, dir)
	if err != nil {
		return nil, false, err
	}
	var key string
	cacheable := false
	if cache != nil && len(problems) == 0 {
		if key, cacheable = k.key(dir, srcs); cacheable {
			if p := cache.get(key); p != nil && p.Dir == dir {
				return p, false, nil
			}
		}
	}
	p, err = l.evalInstance(fsys, dir, srcs, problems, how, shared)
	if err != nil || !cacheable {
		return p, false, err
	}
	cache.put(key, p)
	return p, true, nil
}

// source is one file of an instance as read.
type source struct {
	name string
	src  []byte // never written once read: plainReader keeps strings over it
}

// readInstance reads the .cue files of the instance dir, in name order;
// problems are the files that are what is wrong (see fileProblem), in the
// files' order.
func (l Limits) readInstance(fsys fs.FS, dir string) (srcs []source, problems map[string]Diagnostic, err error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, nil, fmt.Errorf("load instance %s: %w", dir, err)
	}
	for _, e := range entries {
		if e.IsDir() || !isSpecFile(e.Name()) {
			continue
		}
		name := path.Join(dir, e.Name())
		src, err := readSpecFile(fsys, name, l.MaxFileBytes)
		if err != nil {
			d, ok := fileProblem(name, err)
			if !ok {
				return nil, nil, fmt.Errorf("load instance %s: %w", dir, err)
			}
			if problems == nil {
				problems = map[string]Diagnostic{}
			}
			problems[name] = d
		}
		srcs = append(srcs, source{name, src})
	}
	if len(srcs) == 0 {
		return nil, nil, fmt.Errorf("load instance %s: no .cue files", dir)
	}
	return srcs, problems, nil
}

// evaluations counts the instances evaluated rather than read from a
// cache (tests read it).
var evaluations atomic.Int64

// evalInstance evaluates the instance dir whose files are srcs, with the
// imported packages of shared (see sharedImports; nil: its own).
func (l Limits) evalInstance(fsys fs.FS, dir string, srcs []source, problems map[string]Diagnostic, how evalPath, shared *sharedImports) (*Partial, error) {
	evaluations.Add(1)
	c, err := loadSchema()
	if err != nil {
		return nil, err
	}
	p := &Partial{Dir: dir, rejected: map[string]Pos{}}
	if how != pathCUE && len(problems) == 0 && l.plainInstance(c, p, srcs) {
		return p, nil
	}
	var files []*ast.File
	imports := false
	for _, s := range srcs {
		name := s.name
		p.Files = append(p.Files, name)
		if d, bad := problems[name]; bad {
			p.Diagnostics = append(p.Diagnostics, d)
			continue
		}
		f, err := parser.ParseFile(name, s.src)
		if err != nil {
			p.Diagnostics = append(p.Diagnostics, c.fromCUE(err, relName, func([]string) Pos { return Pos{File: name, Line: 1, Col: 1} })...)
			continue
		}
		files = append(files, f)
		for im := range f.ImportSpecs() {
			if !stdImport(im) {
				imports = true
			}
		}
	}
	if len(p.Diagnostics) > 0 {
		p.Diagnostics = p.Diagnostics.sorted()
		return p, nil
	}
	first := Pos{File: p.Files[0], Line: 1, Col: 1}
	if d, ok := packageMismatch(files); ok {
		p.Diagnostics = Diagnostics{d}
		return p, nil
	}

	pos := newPositions(relName)
	// takeData finishes p from concrete data when it is over the count
	// limits (diagnostics) or the generated validator accepts it
	// (decoded); false leaves p to CUE's evaluator with the schema.
	takeData := func(data *dval, from []*ast.File) bool {
		return l.takeData(c, p, data, pos, first, func() {
			for _, f := range from {
				pos.addFile(f)
			}
		})
	}
	if !imports && how != pathCUE {
		if data, ok := dataFiles(files); ok && takeData(data, files) {
			return p, nil
		}
	}
	if how == pathFast {
		return nil, errNotFast
	}
	// An instance that imports packages of the tree's module is made
	// once here, for the probe and the evaluated path, of its files and
	// the packages the load shares (see sharedImports); with the schema
	// (pathCUE) it is loaded by CUE's loader, which reads and parses the
	// instance and its imports again.
	var loaded *build.Instance
	if imports {
		if how == pathCUE {
			shared = nil
		}
		loaded = shared.instance(fsys, dir, files)
	}
	// Comprehensions that would make more than the count limits allow
	// are refused before CUE evaluates them (see probe.go).
	if ds := l.checkComprehensions(dir, files, loaded, relName); len(ds) > 0 {
		p.Diagnostics = ds.sorted()
		return p, nil
	}

	// buildInst builds (and so evaluates) the instance; with shape, the
	// shape's file (see shapeFile) is one of its files, so that it is
	// evaluated once with it (BuildInstance evaluates, and a Unify
	// afterwards would evaluate it all again). files are the spec's.
	var inst *build.Instance
	buildInst := func(ctx *cue.Context, shape bool) (cue.Value, []*ast.File, bool) {
		built := files
		if imports {
			// The first build takes the instance loaded above, a second
			// one (with the schema, after the evaluated path) loads it
			// again: a built instance is not built twice.
			inst, loaded = loaded, nil
			if inst == nil {
				inst, _ = loadWithImports(fsys, dir)
			}
			built = inst.Files
			if inst.Err != nil {
				p.Diagnostics = c.fromCUE(inst.Err, relName, func([]string) Pos { return first }).sorted()
				return cue.Value{}, nil, false
			}
		} else {
			inst = build.NewContext().NewInstance(dir, nil)
			for _, f := range files {
				if err := inst.AddSyntax(f); err != nil {
					p.Diagnostics = c.fromCUE(err, relName, func([]string) Pos { return first }).sorted()
					return cue.Value{}, nil, false
				}
			}
		}
		if shape {
			inst.Files = append(inst.Files[:len(inst.Files):len(inst.Files)], c.shapeFile())
		}
		return ctx.BuildInstance(inst), built, true
	}
	if how != pathCUE {
		// Not plain data: evaluated alone (see evaluated.go).
		v, built, ok := buildInst(cuecontext.New(), true)
		if !ok {
			return p, nil
		}
		if data, ok := evaluatedData(v); ok {
			entitiesAtLabels(data, inst)
			if takeData(data, built) {
				return p, nil
			}
		}
		if how == pathEvaluated {
			return nil, errNotFast
		}
	}

	ctx := cuecontext.New()
	spec := ctx.BuildFile(c.checkFile(false)).LookupPath(cue.MakePath(cue.Def("#Spec")))
	v, files, ok := buildInst(ctx, false)
	if !ok {
		return p, nil
	}
	for _, f := range files {
		pos.addFile(f)
	}
	fallback := func(cuePath []string) Pos {
		if p := pos.fallback(cuePath, first); p != first {
			return p
		}
		return valuePos(v, cuePath, first)
	}
	// No v.Err() here: it would evaluate the instance once alone and once
	// again unified; errors of the instance itself surface in Validate.
	v = v.Unify(spec)
	var diags Diagnostics
	if err := v.Validate(cue.Concrete(true)); err != nil {
		diags = c.fromCUE(err, relName, fallback)
	}
	if ds := l.countCUE(v, first); len(ds) > 0 {
		p.Diagnostics = ds
		return p, nil
	}
	decode(c, p, cueNode{v}, diags, pos, first)
	p.Diagnostics = p.Diagnostics.sorted()
	return p, nil
}

// fallback is the position for an error CUE places only in the schema:
// the entity's key, or the first file of the instance.
func (p *positions) fallback(sels []string, first Pos) Pos {
	if len(sels) >= 2 {
		var m map[string]*entityPos
		switch sels[0] {
		case "devices":
			m = p.devices
		case "balancers":
			m = p.balancers
		}
		if e := m[unquote(sels[1])]; e != nil {
			// The deepest field of the path the files write.
			e.resolve()
			rel := cuePath(sels[2:])
			for rel != "" {
				if fp, ok := e.fields[rel]; ok {
					return fp
				}
				i := strings.LastIndexAny(rel, ".[")
				if i < 0 {
					break
				}
				rel = rel[:i]
			}
			return e.pos
		}
	}
	if len(sels) >= 1 && sels[0] == "scheduler" && p.scheduler.IsValid() {
		if fp, ok := p.schedulerFields[cuePath(sels[1:])]; ok {
			return fp
		}
		return p.scheduler
	}
	return first
}

// valuePos is the position for an error CUE places only in the schema on
// a value the files do not write literally (made by a comprehension, or
// taken from a definition): where the spec files write the deepest value
// of the path that exists (see userPos), else first. A closed definition
// of the user's that lacks a field of the schema lands here.
func valuePos(v cue.Value, sels []string, first Pos) Pos {
	path := make([]cue.Selector, 0, len(sels))
	for _, s := range sels {
		switch {
		case s == "":
			return first
		case s[0] >= '0' && s[0] <= '9':
			i, err := strconv.Atoi(s)
			if err != nil {
				return first
			}
			path = append(path, cue.Index(i))
		case s[0] == '#':
			path = append(path, cue.Def(s))
		default:
			path = append(path, cue.Str(unquote(s)))
		}
	}
	for n := len(path); n >= 1; n-- {
		x := v.LookupPath(cue.MakePath(path[:n]...))
		if !x.Exists() {
			continue
		}
		if p := posOf(userPos(x), relName); p.IsValid() {
			return p
		}
	}
	return first
}

// relName turns a file name as CUE reports it into one relative to the tree.
func relName(name string) string { return strings.TrimPrefix(name, "/") }

// stdImport reports whether an import names a package of CUE's standard
// library, which needs no module.
func stdImport(im *ast.ImportSpec) bool {
	p := strings.Trim(im.Path.Value, `"`)
	first, _, _ := strings.Cut(p, "/")
	return !strings.Contains(first, ".")
}

func packageMismatch(files []*ast.File) (Diagnostic, bool) {
	for _, f := range files[1:] {
		if f.PackageName() != files[0].PackageName() {
			pos := Pos{File: f.Filename, Line: 1, Col: 1}
			for _, d := range f.Decls {
				if pk, ok := d.(*ast.Package); ok {
					pos = posOf(pk.Name.Pos(), relName)
				}
			}
			return errorf(pos, "", "package %q differs from package %q of %s: one directory is one package",
				f.PackageName(), files[0].PackageName(), files[0].Filename), true
		}
	}
	return Diagnostic{}, false
}

// loadWithImports loads an instance whose files import packages of the
// tree's own CUE module. CUE's loader reads fsys directly (a Git tree works
// as well as a directory); .cue files of the directories above dir are
// hidden from it, so that the instance is dir's files alone.
func loadWithImports(fsys fs.FS, dir string) (*build.Instance, []*ast.File) {
	arg := "."
	if dir != "." {
		arg = "./" + dir
	}
	cfg := &load.Config{
		FS:         instanceFS{fsys: fsys, dir: dir},
		Dir:        "/",
		ModuleRoot: "/",
		FromFSPath: func(p string) string { return strings.TrimPrefix(p, "/") },
	}
	insts := load.Instances([]string{arg}, cfg)
	inst := insts[0]
	return inst, inst.Files
}

// instanceFS hides the .cue files of the directories strictly above dir
// (CUE would otherwise unify files of the same package name from parent
// directories into the instance).
type instanceFS struct {
	fsys fs.FS
	dir  string
}

func (f instanceFS) isAncestor(d string) bool {
	if d == f.dir {
		return false
	}
	return d == "." || strings.HasPrefix(f.dir, d+"/")
}

func (f instanceFS) hides(name string) bool {
	return strings.HasSuffix(name, ".cue") && f.isAncestor(path.Dir(name))
}

func (f instanceFS) Open(name string) (fs.File, error) {
	if f.hides(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return f.fsys.Open(name)
}

func (f instanceFS) ReadDir(name string) ([]fs.DirEntry, error) {
	es, err := fs.ReadDir(f.fsys, name)
	if err != nil || !f.isAncestor(name) {
		return es, err
	}
	out := es[:0]
	for _, e := range es {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".cue") {
			out = append(out, e)
		}
	}
	return out, nil
}

func (f instanceFS) Stat(name string) (fs.FileInfo, error) {
	if f.hides(name) {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
	}
	return fs.Stat(f.fsys, name)
}
