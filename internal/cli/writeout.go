package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"lbc/compiler"
	"lbc/internal/atomicfs"
	"lbc/internal/outdir"
	"lbc/internal/par"
)

// writeArtifacts makes dir hold exactly the compiled files and the marker
// of an output directory lbc made (outdir.Check has allowed dir): one
// directory per device holding exactly the device's files.
//
// A dir that does not exist yet, or is empty, is filled beside it and
// swapped in whole (see atomicfs.ReplaceDir). An OUT of lbc's is updated
// in place, and only where it differs: every file is compared with what
// OUT holds and only a file whose bytes changed is written (into a
// temporary file beside it, renamed over it); files and directories that
// are not the compile's are removed. A one-tenant change then rewrites
// the files of the few devices it touches, not all of OUT. All new files
// are staged before the first rename: when one cannot be written, OUT is
// left as it was. Each file is replaced whole, but while the renames run a
// reader may see some devices' new files beside others' old ones.
//
// Nothing is fsynced: OUT is a build output that compile makes again from
// the tree, and plan and apply compile the tree themselves rather than read
// OUT. After a power loss OUT may hold empty files; the next compile sees
// they differ and rewrites them.
//
// It returns how long writing the files took (staging and renames) and
// how many files it wrote or removed.
func writeArtifacts(dir string, res *compiler.Result) (files time.Duration, changed int, err error) {
	names := make([]string, 0, len(res.Devices))
	for name := range res.Devices {
		names = append(names, name)
	}
	sort.Strings(names)
	if m, err := os.Lstat(filepath.Join(dir, outdir.Marker)); err == nil && m.Mode().IsRegular() {
		start := time.Now()
		changed, err := updateArtifacts(dir, names, res)
		return time.Since(start), changed, err
	}
	err = atomicfs.ReplaceDir(dir, func(tmp string) error {
		start := time.Now()
		defer func() { files = time.Since(start) }()
		if err := outdir.Mark(tmp); err != nil {
			return err
		}
		return par.Do(context.Background(), len(names), writeWorkers, func(i int) error {
			return writeDevice(tmp, names[i], res.Devices[names[i]])
		})
	})
	return files, len(names), err
}

// outUpdate is what updateArtifacts changes in OUT: staged files to rename
// over their target, and paths to remove (before the renames).
type outUpdate struct {
	mu      sync.Mutex
	renames [][2]string // staged temporary → target
	removes []string
}

func (u *outUpdate) rename(tmp, target string) {
	u.mu.Lock()
	u.renames = append(u.renames, [2]string{tmp, target})
	u.mu.Unlock()
}

func (u *outUpdate) remove(p string) {
	u.mu.Lock()
	u.removes = append(u.removes, p)
	u.mu.Unlock()
}

// updateArtifacts updates dir, an OUT of lbc's, in place (see
// writeArtifacts).
func updateArtifacts(dir string, names []string, res *compiler.Result) (int, error) {
	u := &outUpdate{}
	es, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("write %s: %w", dir, err)
	}
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	for _, e := range es {
		if e.Name() != outdir.Marker && !want[e.Name()] {
			u.remove(filepath.Join(dir, e.Name()))
		}
	}
	err = par.Do(context.Background(), len(names), writeWorkers, func(i int) error {
		return stageDevice(dir, names[i], res.Devices[names[i]], u)
	})
	if err != nil {
		for _, r := range u.renames {
			os.RemoveAll(r[0])
		}
		return 0, err
	}
	for _, p := range u.removes {
		if err := os.RemoveAll(p); err != nil {
			return 0, fmt.Errorf("write %s: %w", dir, err)
		}
	}
	for _, r := range u.renames {
		if err := os.Rename(r[0], r[1]); err != nil {
			return 0, fmt.Errorf("write %s: %w", dir, err)
		}
	}
	return len(u.renames) + len(u.removes), nil
}

// stageDevice compares the files of device name with dir/name and stages
// what differs into u: a device directory that is missing (or not a
// directory) is written whole into a temporary directory; else each file
// that is missing or differs is written into a temporary file beside it,
// and each entry that is not one of the device's files is to be removed.
func stageDevice(dir, name string, d *compiler.DeviceArtifacts, u *outUpdate) error {
	dd := filepath.Join(dir, name)
	st, err := os.Lstat(dd)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err != nil || !st.IsDir() {
		tmp, err := os.MkdirTemp(dir, "."+name+".new-*")
		if err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
		// Staged before its chmod and files, so that a failure below
		// removes it with the others.
		u.rename(tmp, dd)
		if err := os.Chmod(tmp, 0o755); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
		if err := writeFiles(tmp, name, d.Files()); err != nil {
			return err
		}
		if st != nil {
			u.remove(dd) // not a directory: removed before the rename
		}
		return nil
	}
	files := d.Files()
	es, err := os.ReadDir(dd)
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	for _, e := range es {
		if _, ok := files[e.Name()]; !ok || !e.Type().IsRegular() {
			u.remove(filepath.Join(dd, e.Name()))
		}
	}
	for _, f := range sortedKeys(files) {
		p := filepath.Join(dd, f)
		if sameFile(p, files[f]) {
			continue
		}
		tmp, err := os.CreateTemp(dd, "."+f+".tmp-*")
		if err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
		u.rename(tmp.Name(), p)
		_, err = tmp.Write(files[f])
		if err == nil {
			err = tmp.Chmod(0o644)
		}
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	return nil
}

// sameFile reports whether the file at p holds exactly want. It reads the
// file through a buffer of compareBufs rather than whole: a compile reads
// back as many bytes as it makes when OUT is unchanged, and one new buffer
// a file was as much memory again.
func sameFile(p string, want []byte) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || st.Size() != int64(len(want)) {
		return false
	}
	bp := compareBufs.Get().(*[]byte)
	defer compareBufs.Put(bp)
	for {
		n, err := io.ReadFull(f, *bp)
		if n > len(want) || !bytes.Equal((*bp)[:n], want[:n]) {
			return false
		}
		want = want[n:]
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return len(want) == 0
		}
		if err != nil {
			return false
		}
	}
}

var compareBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func sortedKeys(m map[string][]byte) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// writeWorkers is how many devices writeArtifacts writes at once. Creating
// files is mostly kernel work that also waits on the file system's journal,
// so more workers than CPUs still help.
const writeWorkers = 8

// writeDevice writes the files of one device into a new directory dir/name.
func writeDevice(dir, name string, d *compiler.DeviceArtifacts) error {
	dd := filepath.Join(dir, name)
	if err := os.Mkdir(dd, 0o755); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return writeFiles(dd, name, d.Files())
}

// writeFiles writes files into the directory dd of device name.
func writeFiles(dd, name string, files map[string][]byte) error {
	for _, f := range sortedKeys(files) {
		if err := os.WriteFile(filepath.Join(dd, f), files[f], 0o644); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	return nil
}
