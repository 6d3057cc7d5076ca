package gitsrc

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// FS returns the tree of commit rev below subdir (relative to the
// repository root; "" or "." for the root) as a read-only file system, and
// the commit's full hash. Nothing is checked out: files are read from the
// object store, so it works in bare repositories and shallow clones.
// Directories are read on first use; blobs when a file is opened.
func (r *Repo) FS(rev string, subdir string) (fs.FS, string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, err := r.commit(rev)
	if err != nil {
		return nil, "", err
	}
	t, err := c.Tree()
	if err != nil {
		return nil, "", fmt.Errorf("read tree of %s: %w", c.Hash, err)
	}
	sub := path.Clean(strings.Trim(subdirSlash(subdir), "/"))
	if sub == "" {
		sub = "."
	}
	if !fs.ValidPath(sub) {
		return nil, "", fmt.Errorf("read tree of %s: invalid directory %q", c.Hash, subdir)
	}
	if sub != "." {
		t, err = t.Tree(sub)
		if err != nil {
			return nil, "", fmt.Errorf("read %s at %s: %w", sub, c.Hash, err)
		}
	}
	tfs := &treeFS{repo: r, time: c.Committer.When}
	tfs.root = &node{name: ".", mode: filemode.Dir, hash: t.Hash, fs: tfs}
	return tfs, c.Hash.String(), nil
}

func subdirSlash(s string) string { return strings.ReplaceAll(s, "\\", "/") }

// treeFS implements fs.FS, fs.ReadDirFS, fs.StatFS and fs.ReadFileFS over a
// Git tree object. All access goes through repo.mu.
type treeFS struct {
	repo *Repo
	root *node
	time time.Time
}

// node is one entry of the tree; children are read when first needed.
type node struct {
	fs       *treeFS
	name     string
	mode     filemode.FileMode
	hash     plumbing.Hash
	size     int64 // -1 until known
	loaded   bool
	children []*node // sorted by name
}

var (
	_ fs.ReadDirFS  = (*treeFS)(nil)
	_ fs.StatFS     = (*treeFS)(nil)
	_ fs.ReadFileFS = (*treeFS)(nil)
)

func (n *node) isDir() bool { return n.mode == filemode.Dir || n.mode == filemode.Submodule }

// load reads a directory's entries; repo.mu must be held.
func (n *node) load() error {
	if n.loaded || n.mode != filemode.Dir {
		n.loaded = true
		return nil
	}
	t, err := object.GetTree(n.fs.repo.git.Storer, n.hash)
	if err != nil {
		return err
	}
	n.children = make([]*node, 0, len(t.Entries))
	for _, e := range t.Entries {
		n.children = append(n.children, &node{fs: n.fs, name: e.Name, mode: e.Mode, hash: e.Hash, size: -1})
	}
	slices.SortFunc(n.children, func(a, b *node) int { return strings.Compare(a.name, b.name) })
	n.loaded = true
	return nil
}

// lookup finds name (a valid fs path) following symbolic links that stay
// inside the tree; repo.mu must be held.
func (f *treeFS) lookup(op, name string, follow bool) (*node, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	hops := 0
	parts := strings.Split(name, "/")
	if name == "." {
		parts = nil
	}
	cur := f.root
	for i := 0; i < len(parts); i++ {
		if err := cur.load(); err != nil {
			return nil, &fs.PathError{Op: op, Path: name, Err: err}
		}
		if !cur.isDir() {
			return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
		}
		j, ok := slices.BinarySearchFunc(cur.children, parts[i], func(n *node, s string) int { return strings.Compare(n.name, s) })
		if !ok {
			return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
		}
		next := cur.children[j]
		last := i == len(parts)-1
		if next.mode == filemode.Symlink && (!last || follow) {
			hops++
			if hops > 40 {
				return nil, &fs.PathError{Op: op, Path: name, Err: errors.New("too many levels of symbolic links")}
			}
			target, err := next.read()
			if err != nil {
				return nil, &fs.PathError{Op: op, Path: name, Err: err}
			}
			// Resolve the target against the link's directory; a link that
			// leaves the tree does not exist as far as this FS is concerned.
			base := strings.Join(parts[:i], "/")
			t := string(target)
			if strings.HasPrefix(t, "/") {
				return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
			}
			joined := path.Join(base, t)
			if !fs.ValidPath(joined) {
				return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
			}
			rest := append(strings.Split(joined, "/"), parts[i+1:]...)
			if joined == "." {
				rest = parts[i+1:]
			}
			parts, i, cur = rest, -1, f.root
			continue
		}
		cur = next
	}
	return cur, nil
}

// read returns a blob's content; repo.mu must be held.
func (n *node) read() ([]byte, error) {
	b, err := object.GetBlob(n.fs.repo.git.Storer, n.hash)
	if err != nil {
		return nil, err
	}
	rd, err := b.Reader()
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	data, err := io.ReadAll(rd)
	if err != nil {
		return nil, err
	}
	n.size = int64(len(data))
	return data, nil
}

// info describes n; repo.mu must be held.
func (n *node) info() (fs.FileInfo, error) {
	if n.size < 0 && !n.isDir() {
		o, err := n.fs.repo.git.Storer.EncodedObject(plumbing.BlobObject, n.hash)
		if err != nil {
			return nil, err
		}
		n.size = o.Size()
	}
	return fileInfo{n: n, size: max(n.size, 0)}, nil
}

func (f *treeFS) Open(name string) (fs.File, error) {
	f.repo.mu.Lock()
	defer f.repo.mu.Unlock()
	n, err := f.lookup("open", name, true)
	if err != nil {
		return nil, err
	}
	if n.isDir() {
		if err := n.load(); err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return &dirFile{n: n, entries: n.children}, nil
	}
	data, err := n.read()
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return &file{Reader: bytes.NewReader(data), n: n}, nil
}

func (f *treeFS) ReadFile(name string) ([]byte, error) {
	f.repo.mu.Lock()
	defer f.repo.mu.Unlock()
	n, err := f.lookup("read", name, true)
	if err != nil {
		return nil, err
	}
	if n.isDir() {
		return nil, &fs.PathError{Op: "read", Path: name, Err: errors.New("is a directory")}
	}
	data, err := n.read()
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: err}
	}
	return data, nil
}

func (f *treeFS) ReadDir(name string) ([]fs.DirEntry, error) {
	f.repo.mu.Lock()
	defer f.repo.mu.Unlock()
	n, err := f.lookup("readdir", name, true)
	if err != nil {
		return nil, err
	}
	if !n.isDir() {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	if err := n.load(); err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	return entries(n.children), nil
}

func (f *treeFS) Stat(name string) (fs.FileInfo, error) {
	f.repo.mu.Lock()
	defer f.repo.mu.Unlock()
	n, err := f.lookup("stat", name, true)
	if err != nil {
		return nil, err
	}
	fi, err := n.info()
	if err != nil {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: err}
	}
	return fi, nil
}

func entries(ns []*node) []fs.DirEntry {
	out := make([]fs.DirEntry, len(ns))
	for i, n := range ns {
		out[i] = dirEntry{n}
	}
	return out
}

type fileInfo struct {
	n    *node
	size int64
}

func (i fileInfo) Name() string       { return i.n.name }
func (i fileInfo) Size() int64        { return i.size }
func (i fileInfo) ModTime() time.Time { return i.n.fs.time }
func (i fileInfo) IsDir() bool        { return i.n.isDir() }
func (i fileInfo) Sys() any           { return i.n.hash }
func (i fileInfo) Mode() fs.FileMode  { return goMode(i.n.mode) }

func goMode(m filemode.FileMode) fs.FileMode {
	switch m {
	case filemode.Dir, filemode.Submodule:
		return fs.ModeDir | 0o555
	case filemode.Symlink:
		return fs.ModeSymlink | 0o777
	case filemode.Executable:
		return 0o555
	default:
		return 0o444
	}
}

type dirEntry struct{ n *node }

func (d dirEntry) Name() string      { return d.n.name }
func (d dirEntry) IsDir() bool       { return d.n.isDir() }
func (d dirEntry) Type() fs.FileMode { return goMode(d.n.mode).Type() }
func (d dirEntry) Info() (fs.FileInfo, error) {
	d.n.fs.repo.mu.Lock()
	defer d.n.fs.repo.mu.Unlock()
	return d.n.info()
}

// file is an open blob; its content was read whole (spec files are small).
type file struct {
	*bytes.Reader
	n *node
}

func (f *file) Stat() (fs.FileInfo, error) { return fileInfo{n: f.n, size: f.Reader.Size()}, nil }
func (f *file) Close() error               { return nil }

type dirFile struct {
	n       *node
	entries []*node
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return fileInfo{n: d.n}, nil }
func (d *dirFile) Close() error               { return nil }
func (d *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.n.name, Err: errors.New("is a directory")}
}

func (d *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	if n <= 0 {
		out := entries(d.entries)
		d.entries = nil
		return out, nil
	}
	if len(d.entries) == 0 {
		return nil, io.EOF
	}
	k := min(n, len(d.entries))
	out := entries(d.entries[:k])
	d.entries = d.entries[k:]
	return out, nil
}
