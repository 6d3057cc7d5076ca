package schema

import (
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/build"
	"cuelang.org/go/cue/cuecontext"
)

// sharedImports holds, for one load of a tree, the packages of the tree's
// module that its instances import, read and parsed by CUE's loader once
// and shared by every instance that imports the same packages from a
// directory with the same parent (CUE's loader, through instanceFS, sees
// the same files for all of them), instead of loaded again for each (a
// tenant directory of 100 balancers spent a tenth of its load there,
// reading and parsing its own files a second time and the imported
// package's once more). Each instance is still evaluated in its own
// cue.Context: only the parsed packages are shared, which CUE reads and
// does not change once they have been built without an error.
type sharedImports struct {
	mu   sync.Mutex
	sets map[string]*importSet
}

// importSet is the imports of the instances of one key (see instance).
type importSet struct {
	once      sync.Once
	ok        bool // the first instance loaded and its imports built without error
	imports   []*build.Instance
	canonical func(string) string
}

// sharedBuilds counts the instances made with shared imports (tests read
// it).
var sharedBuilds atomic.Int64

func newSharedImports() *sharedImports {
	return &sharedImports{sets: map[string]*importSet{}}
}

// instance returns the instance dir, whose files are files (parsed from
// its sources, not changed), ready to build: made of files and the shared
// imports when an instance of the same key loaded without a problem,
// else loaded by CUE's loader (loadWithImports), whose errors are then
// reported as before. s nil: always the loader.
func (s *sharedImports) instance(fsys fs.FS, dir string, files []*ast.File) *build.Instance {
	if s == nil {
		inst, _ := loadWithImports(fsys, dir)
		return inst
	}
	set := s.set(importsKey(dir, files))
	var first *build.Instance
	set.once.Do(func() {
		first, _ = loadWithImports(fsys, dir)
		set.ok = first.Err == nil && buildsAlone(first.Imports)
		set.imports, set.canonical = first.Imports, first.CanonicalImportPath
	})
	if first != nil || !set.ok {
		if first == nil {
			first, _ = loadWithImports(fsys, dir)
		}
		return first
	}
	inst := build.NewContext().NewInstance(dir, nil)
	for _, f := range files {
		if inst.AddSyntax(f) != nil {
			inst, _ := loadWithImports(fsys, dir)
			return inst
		}
	}
	inst.Imports, inst.CanonicalImportPath = slices.Clip(set.imports), set.canonical
	if inst.Complete() != nil || inst.ResolutionErr != nil {
		inst, _ := loadWithImports(fsys, dir)
		return inst
	}
	sharedBuilds.Add(1)
	return inst
}

func (s *sharedImports) set(key string) *importSet {
	s.mu.Lock()
	defer s.mu.Unlock()
	set := s.sets[key]
	if set == nil {
		set = &importSet{}
		s.sets[key] = set
	}
	return set
}

// importsKey is the parent directory of dir and the import paths of files,
// sorted: instances with the same key are given the same imports by CUE's
// loader.
func importsKey(dir string, files []*ast.File) string {
	var paths []string
	for _, f := range files {
		for im := range f.ImportSpecs() {
			if p, err := strconv.Unquote(im.Path.Value); err == nil {
				paths = append(paths, p)
			}
		}
	}
	slices.Sort(paths)
	return path.Dir(dir) + "\x00" + strings.Join(slices.Compact(paths), "\x00")
}

// buildsAlone reports whether each of imports builds without an error in
// a context of its own: CUE writes a build error into the imported
// package's build.Instance, which instances evaluated at the same time
// must then not share.
func buildsAlone(imports []*build.Instance) bool {
	ctx := cuecontext.New()
	for _, im := range imports {
		if im.Err != nil || ctx.BuildInstance(im).Err() != nil || im.Err != nil {
			return false
		}
	}
	return true
}
