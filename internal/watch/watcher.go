// Package watch is the machinery of `lbc watch`: it watches a spec tree
// with fsnotify, reports which instance directories a burst of edits
// touched, and reloads only those instances; compiling, planning and
// applying are left to the caller's callback.
package watch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Options tune a Watcher; the zero value is usable.
type Options struct {
	// Debounce is the quiet time that ends a burst of events (default
	// 100 ms). A burst that never goes quiet is reported after at most
	// ten times this, and never less than one second.
	Debounce time.Duration
	// Interval, when positive, also calls onChange(nil) this often, so
	// that the caller can re-plan to catch drift on the hosts.
	Interval time.Duration
	// Logf receives what the watcher does and the callback's errors;
	// nil discards them.
	Logf func(format string, args ...any)
}

// Watcher watches a spec tree. Directories are watched as they appear
// (with what they already hold) and dropped when they go; only .cue files
// and anything under cue.mod/ matter; editors' temporary and backup files
// are ignored.
type Watcher struct {
	root string
	opts Options
	fsw  *fsnotify.Watcher
	dirs map[string]bool // watched directories, slash paths relative to root
}

// New starts watching the tree rooted at dir. Call Run, or Close if Run is
// never called.
func New(dir string, opts Options) (*Watcher, error) {
	root, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", dir, err)
	}
	if fi, err := os.Stat(root); err != nil {
		return nil, fmt.Errorf("watch %s: %w", dir, err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("watch %s: not a directory", dir)
	}
	if opts.Debounce <= 0 {
		opts.Debounce = 100 * time.Millisecond
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", dir, err)
	}
	w := &Watcher{root: root, opts: opts, fsw: fsw, dirs: map[string]bool{}}
	if err := w.addTree(".", nil); err != nil {
		fsw.Close()
		return nil, fmt.Errorf("watch %s: %w", dir, err)
	}
	return w, nil
}

// Close stops watching. Run calls it when it returns.
func (w *Watcher) Close() error { return w.fsw.Close() }

// Dirs returns the watched directories, sorted, relative to the root.
// It must not be called while Run is running.
func (w *Watcher) Dirs() []string {
	out := make([]string, 0, len(w.dirs))
	for d := range w.dirs {
		out = append(out, d)
	}
	slices.Sort(out)
	return out
}

// Run delivers changes until ctx is cancelled, then returns nil after the
// callback in progress (if any) has returned; it returns an error only if
// watching itself fails. onChange receives the sorted instance directories
// (relative to the root, "." for the root) whose files changed in one
// debounced burst: a file's instance is its directory, a deleted or
// renamed-away directory reports itself and the directories watched below
// it, and a change under cue.mod reports its directory there ("cue.mod").
// onChange is never called concurrently with itself; events arriving while
// it runs are collected into the next burst. Its errors are logged, not
// fatal. Run closes the watcher.
func (w *Watcher) Run(ctx context.Context, onChange func(ctx context.Context, changedInstances []string) error) error {
	defer w.fsw.Close()
	maxWait := max(10*w.opts.Debounce, time.Second)

	pending := map[string]bool{}
	var burstStart time.Time
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var timerC <-chan time.Time
	arm := func() {
		now := time.Now()
		if burstStart.IsZero() {
			burstStart = now
		}
		wait := min(w.opts.Debounce, burstStart.Add(maxWait).Sub(now))
		timer.Reset(max(wait, 0))
		timerC = timer.C
	}

	var tickC <-chan time.Time
	if w.opts.Interval > 0 {
		t := time.NewTicker(w.opts.Interval)
		defer t.Stop()
		tickC = t.C
	}

	busy := false
	done := make(chan error, 1)
	call := func(changed []string) {
		busy = true
		go func() {
			defer func() {
				if p := recover(); p != nil {
					done <- fmt.Errorf("panic: %v", p)
				}
			}()
			done <- onChange(ctx, changed)
		}()
	}

	for {
		select {
		case <-ctx.Done():
			if busy {
				<-done
			}
			return nil
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return errors.New("watch: event stream closed")
			}
			if w.handle(ev, pending) && !busy {
				arm()
			}
		case err, ok := <-w.fsw.Errors:
			if !ok {
				return errors.New("watch: error stream closed")
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				w.opts.Logf("watch: events lost (%v); rescanning %s", err, w.root)
				w.rescan(pending)
				if !busy {
					arm()
				}
				continue
			}
			w.opts.Logf("watch: %v", err)
		case <-timerC:
			timerC = nil
			if busy || len(pending) == 0 {
				continue
			}
			changed := make([]string, 0, len(pending))
			for d := range pending {
				changed = append(changed, d)
			}
			slices.Sort(changed)
			clear(pending)
			burstStart = time.Time{}
			call(changed)
		case err := <-done:
			busy = false
			if err != nil && ctx.Err() == nil {
				w.opts.Logf("watch: %v", err)
			}
			if len(pending) > 0 {
				arm()
			}
		case <-tickC:
			if !busy {
				call(nil)
			}
		}
	}
}

// handle records what ev changed in pending and reports whether it
// changed anything that matters.
func (w *Watcher) handle(ev fsnotify.Event, pending map[string]bool) bool {
	rel, ok := w.rel(ev.Name)
	if !ok || rel == "." {
		return false
	}
	marked := false
	if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
		if w.dirs[rel] {
			for d := range w.dirs {
				if d == rel || strings.HasPrefix(d, rel+"/") {
					delete(w.dirs, d)
					// Gone dirs lose their watch by themselves; a renamed
					// one keeps it under its new name unless removed.
					_ = w.fsw.Remove(filepath.Join(w.root, filepath.FromSlash(d)))
					pending[d] = true
					marked = true
				}
			}
			w.opts.Logf("watch: directory %s gone", rel)
			return marked
		}
	}
	if ev.Has(fsnotify.Create) {
		if fi, err := os.Lstat(ev.Name); err == nil && fi.IsDir() {
			if skipDir(rel) {
				return false
			}
			before := len(pending)
			if err := w.addTree(rel, pending); err != nil {
				w.opts.Logf("watch: %v", err)
			}
			w.opts.Logf("watch: directory %s added", rel)
			return len(pending) > before
		}
	}
	if ev.Op == fsnotify.Chmod || !relevant(rel) {
		return false
	}
	pending[path.Dir(rel)] = true
	return true
}

// rel returns name relative to the root, slash separated.
func (w *Watcher) rel(name string) (string, bool) {
	r, err := filepath.Rel(w.root, name)
	if err != nil || r == ".." || strings.HasPrefix(r, ".."+string(filepath.Separator)) {
		return "", false
	}
	return filepath.ToSlash(r), true
}

// addTree watches dir (relative to the root) and every directory below it,
// marking in pending (when not nil) the directories of relevant files
// already there: files created before the watch was in place send no event.
func (w *Watcher) addTree(dir string, pending map[string]bool) error {
	start := filepath.Join(w.root, filepath.FromSlash(dir))
	return filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p != start {
				return nil // gone already; its removal event will follow
			}
			return err
		}
		rel, _ := w.rel(p)
		if !d.IsDir() {
			if pending != nil && relevant(rel) {
				pending[path.Dir(rel)] = true
			}
			return nil
		}
		if rel != "." && skipDir(rel) {
			return fs.SkipDir
		}
		if w.dirs[rel] {
			return nil
		}
		if err := w.fsw.Add(p); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return fs.SkipDir
			}
			return fmt.Errorf("watch %s: %w", p, err)
		}
		w.dirs[rel] = true
		return nil
	})
}

// rescan recovers from lost events: every watched directory is reported,
// the ones gone are dropped and new ones are added.
func (w *Watcher) rescan(pending map[string]bool) {
	for d := range w.dirs {
		pending[d] = true
		if _, err := os.Lstat(filepath.Join(w.root, filepath.FromSlash(d))); err != nil {
			delete(w.dirs, d)
			_ = w.fsw.Remove(filepath.Join(w.root, filepath.FromSlash(d)))
		}
	}
	if err := w.addTree(".", pending); err != nil {
		w.opts.Logf("watch: rescan: %v", err)
	}
}

// skipDir reports whether a directory is outside the spec tree's concern:
// hidden ones (.git) and those CUE ignores (_ prefix), but not cue.mod.
func skipDir(rel string) bool {
	for _, part := range strings.Split(rel, "/") {
		if strings.HasPrefix(part, ".") || strings.HasPrefix(part, "_") {
			return true
		}
	}
	return false
}

// relevant reports whether a file can change what the tree compiles to:
// a .cue file CUE would load, or anything in cue.mod, but no editor's
// swap, backup, lock or probe file.
func relevant(rel string) bool {
	base := path.Base(rel)
	if editorTemp(base) {
		return false
	}
	if rel == "cue.mod" || strings.HasPrefix(rel, "cue.mod/") {
		return true
	}
	return strings.HasSuffix(base, ".cue") && !strings.HasPrefix(base, ".") && !strings.HasPrefix(base, "_")
}

// editorTemp matches vim's swap files and its 4913 write probe, backup
// files (~), and emacs's lock (.#x) and autosave (#x#) files.
func editorTemp(base string) bool {
	switch {
	case base == "4913",
		strings.HasSuffix(base, "~"),
		strings.HasSuffix(base, ".swp"), strings.HasSuffix(base, ".swo"), strings.HasSuffix(base, ".swx"),
		strings.HasPrefix(base, ".#"),
		strings.HasPrefix(base, "#") && strings.HasSuffix(base, "#"):
		return true
	}
	return false
}
