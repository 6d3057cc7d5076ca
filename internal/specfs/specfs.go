// Package specfs opens a spec tree on disk for reading as a tree lbc does
// not trust: only regular files and directories inside the tree are read
// (a symbolic link may lead elsewhere inside it, never out of it), never a
// device, FIFO or socket (opening a FIFO would wait for a writer forever),
// and no file beyond a size limit. What the files mean is the schema's.
package specfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"
)

// ErrOutside is the error for a path that a symbolic link leads out of the
// tree (or round in a loop).
var ErrOutside = errors.New("a symbolic link that leads out of the spec tree")

// NotRegularError is the error for a file that is neither a regular file
// nor a directory.
type NotRegularError struct{ Mode fs.FileMode }

func (e *NotRegularError) Error() string {
	return "not a regular file (" + kind(e.Mode) + "): only regular files are read"
}

// TooLargeError is the error for a file over the size limit.
type TooLargeError struct{ Size, Limit int64 }

func (e *TooLargeError) Error() string {
	if e.Size < 0 {
		return fmt.Sprintf("larger than the limit of %s a file (--max-file-size)", Bytes(e.Limit))
	}
	return fmt.Sprintf("%s, larger than the limit of %s a file (--max-file-size)", Bytes(e.Size), Bytes(e.Limit))
}

func kind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m.IsDir():
		return "a directory"
	}
	return "mode " + m.String()
}

// Bytes formats a byte count: "64 MiB", "1.5 GiB", "512 bytes".
func Bytes(n int64) string {
	units := []string{"KiB", "MiB", "GiB", "TiB"}
	if n < 1024 {
		return fmt.Sprintf("%d bytes", n)
	}
	f, u := float64(n), ""
	for _, x := range units {
		f /= 1024
		u = x
		if f < 1024 {
			break
		}
	}
	s := fmt.Sprintf("%.1f", f)
	s = strings.TrimSuffix(s, ".0")
	return s + " " + u
}

// FS is a spec tree on disk. It implements fs.FS, fs.ReadDirFS,
// fs.ReadFileFS and fs.StatFS.
type FS struct {
	root *os.Root
	max  int64
}

// Open opens the tree rooted at dir; maxFile bounds every file read (<= 0:
// no bound). Close releases it.
func Open(dir string, maxFile int64) (*FS, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	return &FS{root: r, max: maxFile}, nil
}

// Close releases the tree.
func (f *FS) Close() error { return f.root.Close() }

// explain turns an error of opening name into ErrOutside when a symbolic
// link on the way is why.
func (f *FS) explain(op, name string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return err
	}
	var pe *fs.PathError
	if errors.As(err, &pe) && (pe.Err == syscall.ELOOP || strings.Contains(pe.Err.Error(), "escapes")) {
		return &fs.PathError{Op: op, Path: name, Err: ErrOutside}
	}
	// Any other failure with a symbolic link on the way: os.Root refuses
	// links that leave the root, absolute ones included.
	for p := name; p != "." && p != "/"; p = path.Dir(p) {
		if st, lerr := f.root.Lstat(p); lerr == nil && st.Mode()&fs.ModeSymlink != 0 {
			return &fs.PathError{Op: op, Path: name, Err: ErrOutside}
		}
	}
	return err
}

// Open opens name: a directory or a regular file. A FIFO or device is
// opened without waiting (O_NONBLOCK) and refused.
func (f *FS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	file, err := f.root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, f.explain("open", name, err)
	}
	st, err := file.Stat()
	if err != nil {
		file.Close()
		return nil, err
	}
	switch {
	case st.IsDir():
		return file, nil
	case !st.Mode().IsRegular():
		file.Close()
		return nil, &fs.PathError{Op: "open", Path: name, Err: &NotRegularError{Mode: st.Mode()}}
	case f.max > 0 && st.Size() > f.max:
		file.Close()
		return nil, &fs.PathError{Op: "open", Path: name, Err: &TooLargeError{Size: st.Size(), Limit: f.max}}
	}
	if f.max <= 0 {
		return file, nil
	}
	return &limitedFile{File: file, name: name, left: f.max, max: f.max}, nil
}

// ReadFile reads name whole, within the size limit.
func (f *FS) ReadFile(name string) ([]byte, error) {
	file, err := f.Open(name)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	if st, err := file.Stat(); err == nil && st.IsDir() {
		return nil, &fs.PathError{Op: "read", Path: name, Err: &NotRegularError{Mode: st.Mode()}}
	}
	return io.ReadAll(file)
}

// ReadDir lists a directory, sorted by name.
func (f *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	file, err := f.Open(name)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	d, ok := file.(fs.ReadDirFile)
	if !ok {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	es, err := d.ReadDir(-1)
	slices.SortFunc(es, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return es, err
}

// Stat returns what name is (following symbolic links inside the tree).
func (f *FS) Stat(name string) (fs.FileInfo, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrInvalid}
	}
	st, err := f.root.Stat(name)
	if err != nil {
		return nil, f.explain("stat", name, err)
	}
	return st, nil
}

// Limit returns fsys with every regular file read within max bytes (<= 0:
// fsys itself): for a tree that is not on disk (a Git revision), where
// the other rules hold by construction (no FIFO, no link out of a tree).
func Limit(fsys fs.FS, max int64) fs.FS {
	if max <= 0 {
		return fsys
	}
	return limitFS{fsys: fsys, max: max}
}

type limitFS struct {
	fsys fs.FS
	max  int64
}

func (l limitFS) Open(name string) (fs.File, error) {
	f, err := l.fsys.Open(name)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return f, nil
	}
	if st.Size() > l.max {
		f.Close()
		return nil, &fs.PathError{Op: "open", Path: name, Err: &TooLargeError{Size: st.Size(), Limit: l.max}}
	}
	return &limitedFile{File: f, name: name, left: l.max, max: l.max}, nil
}

func (l limitFS) ReadDir(name string) ([]fs.DirEntry, error) { return fs.ReadDir(l.fsys, name) }

func (l limitFS) Stat(name string) (fs.FileInfo, error) { return fs.Stat(l.fsys, name) }

// limitedFile is a regular file that fails a read past the size limit (a
// file that grows after it was opened).
type limitedFile struct {
	fs.File
	name      string
	left, max int64
}

func (l *limitedFile) Read(p []byte) (int, error) {
	if l.left <= 0 {
		// One byte more tells a file of exactly the limit from a longer one.
		var b [1]byte
		if n, _ := l.File.Read(b[:]); n > 0 {
			return 0, &fs.PathError{Op: "read", Path: l.name, Err: &TooLargeError{Size: -1, Limit: l.max}}
		}
		return 0, io.EOF
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.File.Read(p)
	l.left -= int64(n)
	return n, err
}
