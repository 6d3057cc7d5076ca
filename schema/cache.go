package schema

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/parser"

	"lbc/internal/version"
)

// Cache keeps the result of each instance (its Partial: everything it
// defines and every problem found in it alone) on disk, keyed by a hash of
// what the result depends on: the instance's files, the files of every
// package of the tree's CUE module it imports (transitively) and the
// module file, lbc's version and build, and the schema. An unchanged
// instance is then read back instead of evaluated; the checks across
// instances (Merge) always run.
//
// Entries are written atomically (a temporary file renamed into place), so
// concurrent runs see a whole entry or none; an entry that does not read
// back whole (truncated, corrupt, from another format) is a miss and is
// rewritten. The directory is kept under MaxSize by removing the entries
// used longest ago.
type Cache struct {
	dir     string // the instances' entries
	root    string // the cache directory (see Results)
	maxSize int64
	puts    atomic.Int64 // entries stored by LoadInstanceCached
}

// trimEvery: LoadInstanceCached trims the directory after this many
// stores (LoadCached after every load that stored one).
const trimEvery = 32

// DefaultCacheSize bounds the cache directory: about 25 trees of 10,000
// balancers.
const DefaultCacheSize = 512 << 20

// cacheFormat names the layout of entries; a change of it or of
// encodePartial changes this string.
const cacheFormat = "lbc-instance-cache-v4\n"

// CacheDir is the cache directory: $LBC_CACHE when set, else lbc under the
// user's cache directory (os.UserCacheDir).
func CacheDir() (string, error) {
	if d := os.Getenv("LBC_CACHE"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("cache directory: %w (set LBC_CACHE)", err)
	}
	return filepath.Join(d, "lbc"), nil
}

// OpenCache returns the cache in dir, creating it (mode 0700) when missing.
// maxSize bounds its size in bytes (DefaultCacheSize when <= 0).
func OpenCache(dir string, maxSize int64) (*Cache, error) {
	if maxSize <= 0 {
		maxSize = DefaultCacheSize
	}
	d := filepath.Join(dir, "instances")
	if err := os.MkdirAll(d, 0o700); err != nil {
		return nil, fmt.Errorf("open cache: %w", err)
	}
	return &Cache{dir: d, root: dir, maxSize: maxSize}, nil
}

// buildID identifies the running lbc: its version, and its executable (size
// and modification time; a rebuilt lbc of the same version is another
// build), or the VCS stamp of the build when there is no executable to see.
var buildID = sync.OnceValue(func() string {
	var b strings.Builder
	b.WriteString(version.Version)
	if bi, ok := debug.ReadBuildInfo(); ok {
		b.WriteString("\n" + bi.GoVersion)
		for _, s := range bi.Settings {
			if strings.HasPrefix(s.Key, "vcs.") {
				b.WriteString("\n" + s.Key + "=" + s.Value)
			}
		}
	}
	if exe, err := os.Executable(); err == nil {
		if st, err := os.Stat(exe); err == nil {
			fmt.Fprintf(&b, "\n%s %d %d", exe, st.Size(), st.ModTime().UnixNano())
		}
	}
	return b.String()
})

// keyer computes cache keys for the instances of one tree; the hashes of
// imported packages are computed once per tree.
type keyer struct {
	fsys   fs.FS
	lim    Limits // a file over the size limit, a count over the limits: another result
	mu     sync.Mutex
	module *moduleInfo
	pkgs   map[string]*pkgHash // import path → hash of its files and imports
}

type moduleInfo struct {
	path string // module path from cue.mod/module.cue; "" when none
	hash []byte // of cue.mod/module.cue
	err  error
}

type pkgHash struct {
	once sync.Once
	sum  []byte
	err  error
}

func newKeyer(fsys fs.FS, lim Limits) *keyer {
	return &keyer{fsys: fsys, lim: lim, pkgs: map[string]*pkgHash{}}
}

// key returns the cache key of the instance dir whose files are srcs.
// ok is false when the key cannot be known (an import that cannot be
// resolved to files of the tree): such an instance is not cached.
func (k *keyer) key(dir string, srcs []source) (string, bool) {
	h := sha256.New()
	io.WriteString(h, cacheFormat)
	io.WriteString(h, buildID())
	io.WriteString(h, "\x00")
	io.WriteString(h, schemaSource)
	fmt.Fprintf(h, "\x00%d %d %d\x00%s\x00", k.lim.MaxFileBytes, k.lim.MaxDevices, k.lim.MaxBalancers, dir)
	imports := map[string]bool{}
	for _, s := range srcs {
		fmt.Fprintf(h, "%s\x00%d\x00", s.name, len(s.src))
		h.Write(s.src)
		if !k.imports(s, imports) {
			return "", false
		}
	}
	if len(imports) > 0 {
		sum, ok := k.importsHash(imports)
		if !ok {
			return "", false
		}
		h.Write(sum)
	}
	return hex.EncodeToString(h.Sum(nil)), true
}

// imports adds the non-standard import paths of one file to set; false
// when the file's imports cannot be read (the instance is then evaluated
// and reports the syntax error).
func (k *keyer) imports(s source, set map[string]bool) bool {
	if !bytes.Contains(s.src, []byte("import")) {
		return true
	}
	f, err := parser.ParseFile(s.name, s.src, parser.ImportsOnly)
	if err != nil {
		return false
	}
	for im := range f.ImportSpecs() {
		if !stdImport(im) {
			set[importPath(im)] = true
		}
	}
	return true
}

func importPath(im *ast.ImportSpec) string {
	p, _ := strconv.Unquote(im.Path.Value)
	p, _, _ = strings.Cut(p, ":") // a package qualifier names the same directory
	return p
}

// importsHash hashes the module file and every package in set with what
// it imports.
func (k *keyer) importsHash(set map[string]bool) ([]byte, bool) {
	m := k.moduleInfo()
	if m.err != nil {
		return nil, false
	}
	paths := make([]string, 0, len(set))
	for p := range set {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	h := sha256.New()
	h.Write(m.hash)
	for _, p := range paths {
		sum, ok := k.pkg(p, 0)
		if !ok {
			return nil, false
		}
		io.WriteString(h, p+"\x00")
		h.Write(sum)
	}
	return h.Sum(nil), true
}

func (k *keyer) moduleInfo() *moduleInfo {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.module == nil {
		k.module = &moduleInfo{}
		src, err := readSpecFile(k.fsys, "cue.mod/module.cue", k.lim.MaxFileBytes)
		if err != nil {
			k.module.err = err
			return k.module
		}
		sum := sha256.Sum256(src)
		k.module.hash = sum[:]
		k.module.path, k.module.err = modulePath(src)
	}
	return k.module
}

// modulePath reads the module path from the text of cue.mod/module.cue.
func modulePath(src []byte) (string, error) {
	f, err := parser.ParseFile("cue.mod/module.cue", src)
	if err != nil {
		return "", err
	}
	for _, d := range f.Decls {
		if fd, ok := d.(*ast.Field); ok {
			if name, ok := labelName(fd.Label); ok && name == "module" {
				if lit, ok := fd.Value.(*ast.BasicLit); ok {
					s, err := strconv.Unquote(lit.Value)
					if err == nil {
						s, _, _ = strings.Cut(s, "@") // major version suffix
						return s, nil
					}
				}
			}
		}
	}
	return "", errors.New("no module path")
}

// maxImportDepth bounds the chain of imports followed for a key.
const maxImportDepth = 32

// pkg returns the hash of the package at import path p: its files and the
// hashes of what they import. Only packages of the tree's own module are
// resolved; any other import makes the key unknown.
func (k *keyer) pkg(p string, depth int) ([]byte, bool) {
	if depth > maxImportDepth {
		return nil, false
	}
	m := k.moduleInfo()
	rel, ok := strings.CutPrefix(p, m.path+"/")
	if m.path == "" || !ok || !fs.ValidPath(rel) {
		return nil, false
	}
	k.mu.Lock()
	ph := k.pkgs[p]
	if ph == nil {
		ph = &pkgHash{}
		k.pkgs[p] = ph
	}
	k.mu.Unlock()
	ph.once.Do(func() {
		ph.sum, ph.err = k.pkgFiles(rel, depth)
	})
	return ph.sum, ph.err == nil
}

var errNoKey = errors.New("no cache key")

// pkgFiles hashes the files of the package in dir, and those of the
// directories above it (CUE's loader adds their files of the same package
// name to an imported package).
func (k *keyer) pkgFiles(dir string, depth int) ([]byte, error) {
	h := sha256.New()
	imports := map[string]bool{}
	n := 0
	for d := dir; ; d = path.Dir(d) {
		entries, err := fs.ReadDir(k.fsys, d)
		if err != nil && d == dir {
			return nil, err
		}
		for _, e := range entries {
			if !isSpecFile(e.Name()) || e.IsDir() {
				continue
			}
			if !e.Type().IsRegular() {
				return nil, errNoKey // what a link reads is not known here
			}
			name := path.Join(d, e.Name())
			src, err := readSpecFile(k.fsys, name, k.lim.MaxFileBytes)
			if err != nil {
				return nil, err
			}
			if d == dir {
				n++
			}
			fmt.Fprintf(h, "%s\x00%d\x00", name, len(src))
			h.Write(src)
			if !k.imports(source{name, src}, imports) {
				return nil, errNoKey
			}
		}
		if d == "." {
			break
		}
	}
	if n == 0 {
		return nil, errNoKey
	}
	paths := make([]string, 0, len(imports))
	for p := range imports {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		sum, ok := k.pkg(p, depth+1)
		if !ok {
			return nil, errNoKey
		}
		io.WriteString(h, p+"\x00")
		h.Write(sum)
	}
	return h.Sum(nil), nil
}

// get returns the Partial stored under key, or nil.
func (c *Cache) get(key string) *Partial {
	b := readEntry(c.dir, key, cacheFormat)
	if b == nil {
		return nil
	}
	p, err := decodePartial(b)
	if err != nil {
		return nil
	}
	return p
}

// put stores p under key atomically; errors only cost the next run time.
func (c *Cache) put(key string, p *Partial) {
	writeEntry(c.dir, key, cacheFormat, encodePartial(p))
}

// trim keeps the instances' entries within maxSize (see trimDir).
func (c *Cache) trim() { trimDir(c.dir, c.maxSize) }

// readEntry returns the payload of the entry key in dir, sealed with
// format (see seal), or nil when it is missing or does not read back
// whole. It marks the entry used (for eviction), at most once an hour.
func readEntry(dir, key, format string) []byte {
	name := filepath.Join(dir, key)
	b, err := os.ReadFile(name)
	if err != nil {
		return nil
	}
	payload, err := unseal(b, format)
	if err != nil {
		return nil
	}
	if st, err := os.Stat(name); err == nil && time.Since(st.ModTime()) > time.Hour {
		now := time.Now()
		os.Chtimes(name, now, now)
	}
	return payload
}

// writeEntry stores payload under key in dir atomically (a temporary file
// renamed into place); errors only cost the next run time.
func writeEntry(dir, key, format string, payload []byte) {
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return
	}
	_, err = f.Write(seal(payload, format))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(dir, key))
	}
	if err != nil {
		os.Remove(f.Name())
	}
}

// seal frames a payload: the format line, the SHA-256 of the payload, the
// payload.
func seal(payload []byte, format string) []byte {
	sum := sha256.Sum256(payload)
	out := make([]byte, 0, len(format)+len(sum)+len(payload))
	out = append(out, format...)
	out = append(out, sum[:]...)
	return append(out, payload...)
}

func unseal(b []byte, format string) ([]byte, error) {
	rest, ok := bytes.CutPrefix(b, []byte(format))
	if !ok || len(rest) < sha256.Size {
		return nil, errCorrupt
	}
	sum, payload := rest[:sha256.Size], rest[sha256.Size:]
	if got := sha256.Sum256(payload); !bytes.Equal(got[:], sum) {
		return nil, errCorrupt
	}
	return payload, nil
}

// trimDir removes the entries of dir used longest ago until it holds at
// most maxSize bytes, and temporary files older than an hour (left by a
// killed run).
func trimDir(dir string, maxSize int64) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	type ent struct {
		name string
		size int64
		mod  time.Time
	}
	var es []ent
	var total int64
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		if strings.HasPrefix(e.Name(), ".tmp-") {
			if time.Since(info.ModTime()) > time.Hour {
				os.Remove(filepath.Join(dir, e.Name()))
			}
			continue
		}
		es = append(es, ent{e.Name(), info.Size(), info.ModTime()})
		total += info.Size()
	}
	if total <= maxSize {
		return
	}
	sort.Slice(es, func(i, j int) bool { return es[i].mod.Before(es[j].mod) })
	for _, e := range es {
		if total <= maxSize {
			break
		}
		if os.Remove(filepath.Join(dir, e.name)) == nil {
			total -= e.size
		}
	}
}
