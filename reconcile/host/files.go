package host

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// AuxFile is a file that haproxy.cfg reads besides itself (a TLS
// certificate with its key, a map file), shipped in the config's own
// transaction: the change script stages it beside its live path, the
// device's check command sees it, keep-last-good keeps the live one,
// swap renames it into place with haproxy.cfg, and the rollback script
// puts the old one back. Its bytes travel only inside the script's text
// on the SSH session: no script, step output or error prints them, and
// state.json records their sha256 only.
//
// To add a file kind (see reconcile.FileSource and compiler.AuxFile): the
// compiler names the file (path on the host, mode, kind, and either its
// content or a reference a FileSource resolves at plan and apply time),
// and the host side needs nothing new: every kind is staged, checked,
// kept, swapped and rolled back the same way.
type AuxFile struct {
	Path string      // absolute path on the host, a spec-safe path (schema.CheckPath)
	Mode fs.FileMode // permission bits; the staged file has them before any byte is written
	Data []byte      // the content; never printed
}

// AuxDirMode is the mode of a directory the change script makes for an
// auxiliary file (an existing directory is left as it is).
const AuxDirMode = 0o700

// checkSuffix names the copy of haproxy.cfg that the check command reads
// when auxiliary files change: the staged config with each changed file's
// path replaced by its staged path, so that the check sees the new files
// without touching the live ones that the running HAProxy may re-read.
const checkSuffix = ".lbc-check"

// LastGoodFile is where keep-last-good keeps the live auxiliary file at p:
// one name per path (a hash: paths may be longer than a file name).
func (h Host) LastGoodFile(p string) string {
	sum := sha256.Sum256([]byte(p))
	return h.LastGood(path.Join("files", hex.EncodeToString(sum[:16])))
}

// auxPaths are the paths of files, sorted.
func auxPaths(files []AuxFile) []string {
	ps := make([]string, len(files))
	for i, f := range files {
		ps[i] = f.Path
	}
	sort.Strings(ps)
	return ps
}

// stageAuxCmd writes f beside its live path: the staged file is created
// empty and given its mode before its bytes are written, so a key is
// never readable by others, not even for a moment.
func stageAuxCmd(f AuxFile) (string, error) {
	st := staged(f.Path)
	w, err := writeFileCmd(st, string(f.Data))
	if err != nil {
		return "", err
	}
	dir := path.Dir(f.Path)
	return fmt.Sprintf("{ [ -d %s ] || { mkdir -p %s && chmod %o %s; }; } && : > %s && chmod %o %s && %s",
		q(dir), q(dir), AuxDirMode, q(dir), q(st), f.Mode.Perm(), q(st), w), nil
}

// keepAuxCmd keeps the live file at p (when there is one) as last-good,
// or removes a stale last-good copy. A hard link costs no copy (the swap
// renames the new file over p, so the link keeps the old bytes); cp -p
// where the state directory is on another file system (keeping the mode).
func keepAuxCmd(h Host, p string) string {
	good := h.LastGoodFile(p)
	return fmt.Sprintf("if [ -e %s ]; then %s && { ln -f %s %s 2>/dev/null || cp -p %s %s; }; else rm -f %s; fi",
		q(p), mkdirCmd(path.Dir(good)), q(p), q(good), q(p), q(good), q(good))
}

// restoreAuxCmd puts the last-good copy of p back, or removes p when the
// change found none (the file is new).
func restoreAuxCmd(h Host, p string) string {
	good, tmp := h.LastGoodFile(p), p+".lbc-rb"
	return fmt.Sprintf("if [ -e %s ]; then cp -p %s %s && mv -f %s %s; else rm -f %s; fi",
		q(good), q(good), q(tmp), q(tmp), q(p), q(p))
}

// checkConfig is config as the check command reads it when files change:
// every occurrence of a changed file's path, as a whole path (not the
// start of a longer one), replaced by its staged path. Paths are spec-safe
// ([A-Za-z0-9._/-]), so a path ends where a character outside that set
// (or the text) does.
func checkConfig(config string, files []AuxFile) string {
	for _, p := range auxPaths(files) {
		var b strings.Builder
		rest := config
		for {
			i := strings.Index(rest, p)
			if i < 0 {
				b.WriteString(rest)
				break
			}
			end := i + len(p)
			whole := (i == 0 || !pathByte(rest[i-1])) && (end == len(rest) || !pathByte(rest[end]))
			b.WriteString(rest[:i])
			if whole {
				b.WriteString(staged(p))
			} else {
				b.WriteString(p)
			}
			rest = rest[end:]
		}
		config = b.String()
	}
	return config
}

func pathByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '/' || c == '-'
}

// auxReadCmd prints, for each path, "==lbc file SHA256 PATH" or "==lbc
// file absent PATH": the files' fingerprints, never their bytes.
func auxReadCmd(paths []string) string {
	if len(paths) == 0 {
		return ""
	}
	return fmt.Sprintf(`lbc_ok=0; for lbc_f in %s; do if [ -f "$lbc_f" ]; then lbc_s=$(sha256sum < "$lbc_f") || lbc_ok=1; echo "%s $lbc_f ${lbc_s%%%% *}"; else echo "%s $lbc_f absent"; fi; done; [ $lbc_ok = 0 ]`,
		strings.Join(quoteAll(paths), " "), fileLinePrefix, fileLinePrefix)
}

func quoteAll(ps []string) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = q(p)
	}
	return out
}

// fileLinePrefix starts a line of auxReadCmd.
const fileLinePrefix = markerPrefix + "file"

// contentLinePrefix starts the lines around a map file's bytes in the
// read (mapReadCmd): "==lbc content PATH", its base64, "==lbc content end".
const contentLinePrefix = markerPrefix + "content"

// IsMapFile reports whether p is a host-table map file lbc renders
// (compiler.HostsMapName: lbc-hosts-<balancer>.map): the one kind of
// auxiliary file whose bytes the read returns.
func IsMapFile(p string) bool {
	b := path.Base(p)
	return strings.HasPrefix(b, "lbc-hosts-") && strings.HasSuffix(b, ".map") && len(b) > len("lbc-hosts-.map")
}

// mapReadCmd prints the bytes, in base64, of each map file of paths the
// host has (see contentLinePrefix); "" when paths hold none. A failed
// read ends the chain, so the read's output is cut short (an error).
func mapReadCmd(paths []string) string {
	var maps []string
	for _, p := range paths {
		if IsMapFile(p) {
			maps = append(maps, p)
		}
	}
	sort.Strings(maps)
	cmds := make([]string, len(maps))
	for i, p := range maps {
		cmds[i] = fmt.Sprintf("if [ -f %s ]; then echo %s && base64 < %s && echo '%s end'; fi",
			q(p), q(contentLinePrefix+" "+p), q(p), contentLinePrefix)
	}
	return strings.Join(cmds, " && ")
}
