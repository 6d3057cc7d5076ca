package schema

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"lbc/internal/par"
)

// A whole tree's result (what lbc compile makes of an unchanged tree) is
// kept in the cache beside the instances' entries, under results/, keyed
// by TreeKey and what else the caller's result depends on. The caller
// encodes the result; the cache seals it (a checksum: an entry that does
// not read back whole is a miss), writes it atomically and keeps the
// directory within a quarter of the cache's size, least recently used
// first.

// resultFormat names the framing of result entries.
const resultFormat = "lbc-result-cache-v1\n"

// TreeKey is a hash of everything the instances of fsys depend on, as the
// instances' cache keys are (their files, the packages of the tree's
// module they import, lbc's version and build, the schema, l), together
// with the list of instances. ok is false when an instance has no key (a
// file lbc does not read, an import outside the tree's module): the tree's
// result is then not cached. It reads every file of the tree, not more.
func (l Limits) TreeKey(ctx context.Context, fsys fs.FS) (key string, ok bool) {
	dirs, err := Instances(fsys)
	if err != nil || len(dirs) == 0 {
		return "", false
	}
	k := newKeyer(fsys, l)
	keys := make([]string, len(dirs))
	err = par.Do(ctx, len(dirs), 0, func(i int) error {
		srcs, problems, err := l.readInstance(fsys, dirs[i])
		if err != nil || len(problems) > 0 {
			return errNoKey
		}
		var ok bool
		if keys[i], ok = k.key(dirs[i], srcs); !ok {
			return errNoKey
		}
		return nil
	})
	if err != nil {
		return "", false
	}
	h := sha256.New()
	io.WriteString(h, resultFormat)
	for i, d := range dirs {
		io.WriteString(h, d+"\x00"+keys[i]+"\x00")
	}
	return hex.EncodeToString(h.Sum(nil)), true
}

func (c *Cache) resultsDir() string { return filepath.Join(c.root, "results") }

// Result returns the payload stored under key by PutResult, or nil.
func (c *Cache) Result(key string) []byte {
	return readEntry(c.resultsDir(), key, resultFormat)
}

// PutResult stores payload under key; errors only cost the next run time.
func (c *Cache) PutResult(key string, payload []byte) {
	d := c.resultsDir()
	if os.MkdirAll(d, 0o700) != nil {
		return
	}
	writeEntry(d, key, resultFormat, payload)
	trimDir(d, c.maxSize/4)
}
