package cli

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"sort"
	"sync/atomic"

	"lbc/compiler"
	"lbc/internal/version"
	"lbc/schema"
)

// The result cache of lbc compile. A compile is a pure function of the
// tree, its lock file, the revision stamped into the files and lbc itself,
// so the rendered files of an unchanged tree are kept in the cache (see
// schema.Cache.PutResult) under a key of all of these, and a compile of
// the same tree reads them back instead of loading, scheduling and
// rendering it again: it then reads and hashes every spec file (the key),
// reads the entry and compares OUT with it. Only a tree that compiled
// without error is stored; --no-cache neither reads nor writes it.

// resultCodec names the layout of an entry; a change of encodeResult
// changes it.
const resultCodec = "compile-result-v2\x00"

// resultHits counts compiles answered from the cache (tests read it).
var resultHits atomic.Int64

// compileResultKey is the cache key of the compile of src: ok is false
// when the tree's result cannot be cached (see schema.Limits.TreeKey).
func (e *env) compileResultKey(src *specSource) (string, bool) {
	tree, ok := e.args.Limits.TreeKey(e.ctx, src.fsys)
	if !ok {
		return "", false
	}
	lock, err := schema.ReadSpecFile(src.fsys, compiler.LockFileName, maxLockBytes)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		lock = nil
	case err != nil:
		return "", false
	default:
		lock = append([]byte("lock\x00"), lock...)
	}
	h := sha256.New()
	for _, s := range []string{resultCodec, version.Version, src.revision, tree} {
		io.WriteString(h, s+"\x00")
	}
	h.Write(lock)
	return hex.EncodeToString(h.Sum(nil)), true
}

// cachedCompile returns the compile of src read from cache, or nil (and
// the key to store it under, "" when it cannot be cached).
func (e *env) cachedCompile(cache *schema.Cache, src *specSource) (*compiled, string) {
	key, ok := e.compileResultKey(src)
	if !ok {
		return nil, ""
	}
	b := cache.Result(key)
	if b == nil {
		return nil, key
	}
	res, balancers, err := decodeResult(b)
	if err != nil {
		return nil, key
	}
	prev, err := readLock(src)
	if err != nil {
		return nil, key
	}
	resultHits.Add(1)
	return &compiled{src: src, prev: prev, res: res, balancers: balancers}, key
}

// encodeResult encodes what lbc compile writes and prints of res: the
// revision, the balancer count, the placement and its stats, and each
// device's files (DeviceArtifacts.Files). A cached result holds nothing
// else: no VIP plan, no certificate references; only lbc compile reads
// it.
func encodeResult(res *compiler.Result, balancers int) []byte {
	var b []byte
	num := func(n int) { b = binary.AppendUvarint(b, uint64(n)) }
	str := func(s []byte) { num(len(s)); b = append(b, s...) }
	str([]byte(res.Revision))
	num(balancers)
	for _, n := range []int{res.Stats.New, res.Stats.Kept, res.Stats.Moved, res.Stats.Removed} {
		num(n)
	}
	str(res.Placement.Marshal())
	names := make([]string, 0, len(res.Devices))
	for n := range res.Devices {
		names = append(names, n)
	}
	sort.Strings(names)
	num(len(names))
	for _, n := range names {
		str([]byte(n))
		files := res.Devices[n].Files()
		fnames := make([]string, 0, len(files))
		for f := range files {
			fnames = append(fnames, f)
		}
		sort.Strings(fnames)
		num(len(fnames))
		for _, f := range fnames {
			str([]byte(f))
			str(files[f])
		}
	}
	return b
}

// setFile puts the file name (as DeviceArtifacts.Files names it) into d;
// false for a name Files does not make.
func setFile(d *compiler.DeviceArtifacts, name string, data []byte) bool {
	switch {
	case name == "haproxy.cfg":
		d.HAProxyCfg = data
	case name == "vips.json":
		d.VIPsJSON = data
	case name == "keepalived.conf":
		d.Keepalived = data
	case compiler.IsMapName(name):
		// Files names a map file by its base name, so the path is only
		// that here: lbc compile writes OUT/<device>/<name>.
		d.AuxFiles = append(d.AuxFiles, compiler.AuxFile{Path: name, Kind: compiler.AuxMap, Data: data})
	default:
		return false
	}
	return true
}

var errBadResult = errors.New("bad cached result")

// decodeResult reads what encodeResult wrote; an entry that does not read
// whole is an error (a miss).
func decodeResult(b []byte) (res *compiler.Result, balancers int, err error) {
	bad := false
	num := func() int {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b))+1<<20 {
			bad = true
			return 0
		}
		b = b[k:]
		return int(n)
	}
	str := func() []byte {
		n := num()
		if bad || n > len(b) {
			bad = true
			return nil
		}
		s := b[:n:n]
		b = b[n:]
		return s
	}
	res = &compiler.Result{Revision: string(str())}
	balancers = num()
	res.Stats = compiler.Stats{New: num(), Kept: num(), Moved: num(), Removed: num()}
	lock := str()
	n := num()
	if bad {
		return nil, 0, errBadResult
	}
	if res.Placement, err = compiler.ParseLock(lock); err != nil {
		return nil, 0, errBadResult
	}
	res.Devices = make(map[string]*compiler.DeviceArtifacts, min(n, len(b)))
	for range n {
		d := &compiler.DeviceArtifacts{Device: string(str())}
		nf := num()
		for range min(nf, len(b)) {
			name, data := string(str()), str()
			if bad || !setFile(d, name, data) {
				return nil, 0, errBadResult
			}
		}
		if bad || len(d.Files()) != nf {
			return nil, 0, errBadResult
		}
		res.Devices[d.Device] = d
	}
	if len(b) != 0 || len(res.Devices) != n {
		return nil, 0, errBadResult
	}
	return res, balancers, nil
}
