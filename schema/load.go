package schema

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

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

func (l Limits) load(ctx context.Context, fsys fs.FS) (*Spec, error) {
	dirs, err := Instances(fsys)
	if err != nil {
		return nil, err
	}
	parts := make([]*Partial, len(dirs))
	err = par.Do(ctx, len(dirs), 0, func(i int) (err error) {
		parts[i], err = l.LoadInstance(fsys, dirs[i])
		return err
	})
	if ctx.Err() != nil {
		return nil, fmt.Errorf("load specs: %w", ctx.Err())
	}
	if err != nil {
		return nil, err
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
// CUE's evaluator (about ten times cheaper); every other instance, and every
// instance with a problem, is evaluated by CUE, which reports the problems.
// Both give the same Partial.
func LoadInstance(fsys fs.FS, dir string) (*Partial, error) {
	return DefaultLimits.LoadInstance(fsys, dir)
}

// LoadInstance is the package function LoadInstance within l.
func (l Limits) LoadInstance(fsys fs.FS, dir string) (*Partial, error) {
	return l.loadInstance(fsys, dir, pathAuto)
}

// How loadInstance evaluates an instance: plain data in Go when it can
// (pathAuto), always with CUE (pathCUE), or in Go only (pathFast: tests;
// an instance the fast path does not take returns errNotFast).
type evalPath int

const (
	pathAuto evalPath = iota
	pathCUE
	pathFast
)

var errNotFast = errors.New("not taken by the fast path")

func loadInstance(fsys fs.FS, dir string, how evalPath) (*Partial, error) {
	return DefaultLimits.loadInstance(fsys, dir, how)
}

func (l Limits) loadInstance(fsys fs.FS, dir string, how evalPath) (*Partial, error) {
	c, err := loadSchema()
	if err != nil {
		return nil, err
	}
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("load instance %s: %w", dir, err)
	}
	p := &Partial{Dir: dir, rejected: map[string]Pos{}}
	var files []*ast.File
	imports := false
	for _, e := range entries {
		if e.IsDir() || !isSpecFile(e.Name()) {
			continue
		}
		name := path.Join(dir, e.Name())
		src, err := readSpecFile(fsys, name, l.MaxFileBytes)
		if err != nil {
			if d, ok := fileProblem(name, err); ok {
				p.Files = append(p.Files, name)
				p.Diagnostics = append(p.Diagnostics, d)
				continue
			}
			return nil, fmt.Errorf("load instance %s: %w", dir, err)
		}
		p.Files = append(p.Files, name)
		f, err := parser.ParseFile(name, src)
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
	if len(p.Files) == 0 {
		return nil, fmt.Errorf("load instance %s: no .cue files", dir)
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
	if !imports && how != pathCUE {
		if data, ok := dataFiles(files); ok {
			if ds := l.countData(data, first); len(ds) > 0 {
				p.Diagnostics = ds
				return p, nil
			}
			if ok, _ := c.validator.check(data); ok {
				for _, f := range files {
					pos.addFile(f)
				}
				decode(c, p, data, nil, pos, first)
				p.Diagnostics = p.Diagnostics.sorted()
				return p, nil
			}
		}
	}
	if how == pathFast {
		return nil, errNotFast
	}

	ctx := cuecontext.New()
	spec := ctx.BuildFile(c.checkFile(false)).LookupPath(cue.MakePath(cue.Def("#Spec")))
	var v cue.Value
	if imports {
		var inst *build.Instance
		inst, files = loadWithImports(fsys, dir)
		if inst.Err != nil {
			p.Diagnostics = c.fromCUE(inst.Err, relName, func([]string) Pos { return first }).sorted()
			return p, nil
		}
		v = ctx.BuildInstance(inst)
	} else {
		inst := build.NewContext().NewInstance(dir, nil)
		for _, f := range files {
			if err := inst.AddSyntax(f); err != nil {
				p.Diagnostics = c.fromCUE(err, relName, func([]string) Pos { return first }).sorted()
				return p, nil
			}
		}
		v = ctx.BuildInstance(inst)
	}
	for _, f := range files {
		pos.addFile(f)
	}
	fallback := func(cuePath []string) Pos { return pos.fallback(cuePath, first) }
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
