package reconcile

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"path"
	"strings"

	"lbc/compiler"
	"lbc/reconcile/classify"
	"lbc/reconcile/host"
)

// Certificate rotation without a reload (see host/certrt.go for what the
// host runs). A change whose only file changes are new contents of
// certificate bundles that the running HAProxy has loaded (a bind's crt
// in the live haproxy.cfg, which lbc applied last) is a runtime change:
// one operation per certificate ("rotate cert NAME: sha256 OLD → NEW",
// fingerprints only), sent after the server operations. Apply compares
// what `show ssl cert` says after the commit with the new file (serial,
// SHA-1 fingerprint, notAfter), and after a rollback with what it said
// before the change. Anything else that writes or removes a file reloads.

// maxCertPayload bounds a bundle sent on the stats socket: HAProxy 2.6
// reads a command and its payload into its CLI buffer (tune.bufsize,
// 16 KiB unless the config raises it). A larger bundle reloads.
const maxCertPayload = 12 << 10

// fileRuntimeOps returns the operations that apply the file changes at
// runtime, or why they need a reload. files are the device's desired
// files (their sizes), liveCfg the live haproxy.cfg, trusted that lbc
// applied it last (so the running HAProxy runs it).
func fileRuntimeOps(changes []FileChange, files []DesiredFile, liveCfg []byte, trusted bool) ([]classify.Op, string) {
	size := map[string]int{}
	for i := range files {
		size[files[i].Path] = len(files[i].content())
	}
	var ops []classify.Op
	for _, c := range changes {
		switch {
		case c.To == "":
			return nil, "file " + c.Path + " is removed: HAProxy lets go of a file at a reload"
		case c.Kind == compiler.AuxMap:
			continue // a host table: mapRuntime decides (maprt.go)
		case c.Kind != compiler.AuxCert:
			return nil, "file " + c.Path + " (" + string(c.Kind) + ") changes too: HAProxy reads it at a reload"
		case c.From == "":
			return nil, "certificate " + c.Path + " is new: HAProxy loads a new certificate at a reload"
		case !trusted:
			return nil, "the live haproxy.cfg is not the one lbc applied last: whether HAProxy runs certificate " + c.Path + " is not known"
		case !loadsCert(liveCfg, c.Path):
			return nil, "certificate " + c.Path + " is not a crt of the live haproxy.cfg"
		case size[c.Path] > maxCertPayload:
			return nil, fmt.Sprintf("certificate %s is %d bytes, more than a stats socket payload (%d)", c.Path, size[c.Path], maxCertPayload)
		}
		name := c.Ref
		if name == "" {
			name = strings.TrimSuffix(path.Base(c.Path), ".pem")
		}
		ops = append(ops, classify.Op{Kind: classify.KindCert, Name: name, File: c.Path, From: c.From, To: c.To})
	}
	return ops, ""
}

// loadsCert reports whether a bind line of cfg loads the bundle at p.
func loadsCert(cfg []byte, p string) bool {
	sc := bufio.NewScanner(bytes.NewReader(cfg))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] != "bind" {
			continue
		}
		for i := 1; i+1 < len(f); i++ {
			if f[i] == "crt" && f[i+1] == p {
				return true
			}
		}
	}
	return false
}

// planFileClass sets the plan's class for a change that writes or removes
// auxiliary files or changes keepalived.conf, as apply runs it
// (tx.runtimePart): certificate rotations are runtime operations; any
// other file, or keepalived.conf, makes a runtime change a reload. It
// reports whether the change may still be runtime (host tables are
// mapRuntime's to decide: planMaps).
func planFileClass(dp *DevicePlan, live *Live, trusted bool) bool {
	c := dp.Change
	if c != nil && c.Class == classify.Reload {
		return false
	}
	reload := func(reason string) {
		if c != nil {
			dp.Change = &classify.Result{Class: classify.Reload, Reason: reason}
		}
	}
	if dp.KeepalivedDiff != "" {
		reload("a map, certificate or keepalived.conf changes too: HAProxy reads those files at a reload")
		return false
	}
	if len(dp.FileChanges) == 0 {
		return true
	}
	ops, reason := fileRuntimeOps(dp.FileChanges, dp.Desired.Files, live.Config.Data, trusted && live.Config.Exists)
	if reason != "" {
		reload(reason)
		return false
	}
	if c == nil {
		c = &classify.Result{Class: classify.Runtime}
		dp.Change = c
	}
	c.Ops = append(c.Ops, ops...)
	return true
}

// applyFileOps are the file operations of the transaction: the files it
// writes (x.files) compared with what the lock holder read; reason when
// they need a reload.
func (x *tx) applyFileOps(trusted bool) ([]classify.Op, string) {
	d := &x.dp.Desired
	if len(d.FilesRemove) > 0 {
		return nil, "files are removed"
	}
	var changes []FileChange
	for _, f := range x.files {
		for _, df := range d.Files {
			if df.Path == f.Path {
				changes = append(changes, FileChange{Path: f.Path, Kind: df.Kind, Ref: df.Ref, From: x.live.Files[f.Path], To: df.SHA256})
			}
		}
	}
	return fileRuntimeOps(changes, d.Files, x.live.Config.Data, trusted)
}

// addCertRotations adds the runtime commands of the certificate
// operations among ops to rt.
func addCertRotations(rt *host.Runtime, ops []classify.Op) error {
	for _, o := range ops {
		if o.Kind == classify.KindCert {
			if err := rt.AddCertRotation(o.File); err != nil {
				return err
			}
		}
	}
	return nil
}

// certFactsOf is what `show ssl cert` must say of the bundle b (its first
// certificate, the leaf).
func certFactsOf(b []byte) (host.CertFacts, error) {
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return host.CertFacts{}, fmt.Errorf("no certificate in the bundle")
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return host.CertFacts{}, err
		}
		sum := sha1.Sum(c.Raw)
		return host.CertFacts{
			Serial:   host.NormSerial(c.SerialNumber.Text(16)),
			NotAfter: c.NotAfter.UTC().Format("Jan _2 15:04:05 2006 GMT"),
			SHA1:     strings.ToUpper(hex.EncodeToString(sum[:])),
		}, nil
	}
}

// certOpsIn are the certificate operations among ops.
func certOpsIn(ops []classify.Op) []classify.Op {
	var out []classify.Op
	for _, o := range ops {
		if o.Kind == classify.KindCert {
			out = append(out, o)
		}
	}
	return out
}

// verifyCerts compares the answers of `show ssl cert` (one a certificate
// operation, in order) with the new bundles the transaction wrote.
func (x *tx) verifyCerts(ops []classify.Op, answers []string) error {
	certs := certOpsIn(ops)
	if len(answers) != len(certs) {
		return fmt.Errorf("show ssl cert: %d answers for %d certificates", len(answers), len(certs))
	}
	for i, o := range certs {
		var data []byte
		for _, f := range x.files {
			if f.Path == o.File {
				data = f.Data
			}
		}
		want, err := certFactsOf(data)
		if err != nil {
			return fmt.Errorf("certificate %s: %w", o.Name, err)
		}
		got, err := host.ParseShowCert(answers[i])
		if err != nil {
			return fmt.Errorf("certificate %s: %w", o.Name, err)
		}
		if got != want {
			return fmt.Errorf("certificate %s: HAProxy runs %s, the new file has %s", o.Name, got, want)
		}
	}
	return nil
}

// verifyCertsBack compares the answers of `show ssl cert` after a
// rollback with those before the change (before: nil when the runtime
// step did not get to ask, so sent no certificate command).
func verifyCertsBack(before, after []string) error {
	if before == nil {
		return nil
	}
	if len(before) != len(after) {
		return fmt.Errorf("show ssl cert: %d answers after the rollback, %d before", len(after), len(before))
	}
	for i := range before {
		b, err := host.ParseShowCert(before[i])
		if err != nil {
			return fmt.Errorf("before the change: %w", err)
		}
		a, err := host.ParseShowCert(after[i])
		if err != nil {
			return fmt.Errorf("after the rollback: %w", err)
		}
		if a != b {
			return fmt.Errorf("after the rollback HAProxy runs %s, before the change %s", a, b)
		}
	}
	return nil
}
