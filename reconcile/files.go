package reconcile

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"time"

	"lbc/compiler"
	"lbc/reconcile/host"
	"lbc/schema"
)

// Auxiliary files are the files a device's haproxy.cfg reads besides
// itself (certificates, map files): see compiler.AuxFile for how the
// compiler names them and host.AuxFile for how a transaction ships them.
// This file turns the compiler's list into the plan's (DesiredFile),
// compares it with the host's fingerprints (FileChange), and resolves the
// content of referenced files (FileSource) at plan and at apply time: a
// plan, saved or shown, holds their sha256, never their bytes.

// FileSource resolves the content of an auxiliary file that the compiler
// names by reference (compiler.AuxFile.Ref), such as a certificate
// source. Resolve returns the file's bytes as the host gets them.
type FileSource interface {
	Resolve(ctx context.Context, kind, ref string) ([]byte, error)
}

// ErrNoFileSource: a plan names a referenced file and no FileSource was
// given to resolve it.
var ErrNoFileSource = errors.New("no source for referenced files")

// DesiredFile is an auxiliary file apply writes to a device. A plan holds
// its content only when the compiler rendered it (Ref is ""); a
// referenced file's content is resolved again from the source at apply
// time and must have the plan's SHA256.
type DesiredFile struct {
	Path    string `json:"path"`
	Mode    uint32 `json:"mode"`
	Kind    string `json:"kind"`
	Ref     string `json:"ref,omitempty"`
	SHA256  string `json:"sha256"`
	Content string `json:"content,omitempty"` // only when Ref is ""

	data []byte // the resolved content of a referenced file; never saved
}

// FileChange is one auxiliary file that apply writes or removes, as plans
// and their views show it: fingerprints, never content.
type FileChange struct {
	Path string `json:"path"`
	Kind string `json:"kind,omitempty"`
	Ref  string `json:"ref,omitempty"`
	From string `json:"from,omitempty"` // sha256 on the host; "" when absent
	To   string `json:"to,omitempty"`   // sha256 apply writes; "" when removed
}

// String is the change as one line: "+file PATH (KIND REF) sha256 TO",
// "~file PATH (KIND REF) sha256 FROM -> TO" or "-file PATH sha256 FROM".
func (c FileChange) String() string {
	what := c.Path
	if c.Kind != "" {
		what += " (" + c.Kind
		if c.Ref != "" {
			what += " " + c.Ref
		}
		what += ")"
	}
	switch {
	case c.To == "":
		return fmt.Sprintf("-file %s sha256 %s", what, orAbsent(c.From))
	case c.From == "":
		return fmt.Sprintf("+file %s sha256 %s", what, c.To)
	}
	return fmt.Sprintf("~file %s sha256 %s -> %s", what, c.From, c.To)
}

func orAbsent(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}

// desiredFiles resolves the compiler's auxiliary files of one device into
// the plan's, with their fingerprints.
func desiredFiles(ctx context.Context, files []compiler.AuxFile, src FileSource) ([]DesiredFile, error) {
	var out []DesiredFile
	for _, f := range files {
		d := DesiredFile{Path: f.Path, Mode: f.Mode, Kind: f.Kind, Ref: f.Ref}
		switch {
		case f.Ref == "":
			d.Content = string(f.Data)
			d.SHA256 = sha256Hex(f.Data)
		case src == nil:
			return nil, fmt.Errorf("%s %s: %w", f.Kind, f.Ref, ErrNoFileSource)
		default:
			b, err := src.Resolve(ctx, f.Kind, f.Ref)
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", f.Kind, f.Ref, err)
			}
			d.data, d.SHA256 = b, sha256Hex(b)
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// content is the file's bytes: its Content, or the resolved data of a
// referenced file (nil until resolved).
func (f *DesiredFile) content() []byte {
	if f.Ref == "" {
		return []byte(f.Content)
	}
	return f.data
}

// resolveFiles fills in the content of the referenced files of d that are
// not resolved yet (a plan loaded from a file) from src, refusing content
// that is not what the plan saw.
func resolveFiles(ctx context.Context, d *Desired, src FileSource) error {
	for i := range d.Files {
		f := &d.Files[i]
		if f.Ref == "" || f.data != nil {
			continue
		}
		if src == nil {
			return fmt.Errorf("%s %s: %w (give the certificate source the plan was made with)", f.Kind, f.Ref, ErrNoFileSource)
		}
		b, err := src.Resolve(ctx, f.Kind, f.Ref)
		if err != nil {
			return fmt.Errorf("%s %s: %w", f.Kind, f.Ref, err)
		}
		if sha256Hex(b) != f.SHA256 {
			return fmt.Errorf("%w: %s %s changed in its source since the plan (sha256 %s, the plan has %s)", ErrStale, f.Kind, f.Ref, sha256Hex(b), f.SHA256)
		}
		f.data = b
	}
	return nil
}

// filePaths are the paths of the auxiliary files d wants.
func (d *Desired) filePaths() []string {
	ps := make([]string, len(d.Files))
	for i, f := range d.Files {
		ps[i] = f.Path
	}
	return ps
}

// fileSums maps each file d wants to its sha256, as state.json records it.
func (d *Desired) fileSums() map[string]string {
	if len(d.Files) == 0 {
		return nil
	}
	m := make(map[string]string, len(d.Files))
	for _, f := range d.Files {
		m[f.Path] = f.SHA256
	}
	return m
}

// compareFiles fills dp's file changes, removals and fingerprints from
// the host's fingerprints (live) and the files lbc wrote before (st, may
// be nil). It reports whether state.json's record of the files differs
// from what apply writes.
func compareFiles(dp *DevicePlan, live *Live, st *State) (stateBehind bool, err error) {
	want := map[string]bool{}
	for _, f := range dp.Desired.Files {
		want[f.Path] = true
		have := live.Files[f.Path]
		dp.Fingerprints[f.Path] = have
		if have != f.SHA256 {
			dp.FileChanges = append(dp.FileChanges, FileChange{Path: f.Path, Kind: f.Kind, Ref: f.Ref, From: have, To: f.SHA256})
		}
	}
	var wrote map[string]string
	if st != nil {
		wrote = st.Files
	}
	var gone []string
	for p := range wrote {
		if !want[p] {
			// state.json is the host's: its paths are checked as a spec's.
			if err := schema.CheckPath(p); err != nil {
				return false, fmt.Errorf("%s: files: %w", dp.Host.StatePath(), err)
			}
			gone = append(gone, p)
		}
	}
	sort.Strings(gone)
	for _, p := range gone {
		dp.FileChanges = append(dp.FileChanges, FileChange{Path: p, From: wrote[p]})
	}
	dp.Desired.FilesRemove = gone
	sums := dp.Desired.fileSums()
	stateBehind = len(sums) != len(wrote)
	for p, s := range sums {
		if wrote[p] != s {
			stateBehind = true
		}
	}
	return stateBehind, nil
}

// hostFiles are the files of d that the host does not have as d wants
// them (live: the fingerprints read under the lock), with their content.
func hostFiles(d *Desired, live *Live) ([]host.AuxFile, error) {
	var out []host.AuxFile
	for i := range d.Files {
		f := &d.Files[i]
		if live.Files[f.Path] == f.SHA256 {
			continue
		}
		b := f.content()
		if b == nil || sha256Hex(b) != f.SHA256 {
			return nil, fmt.Errorf("%s %s: content not resolved", f.Kind, f.Path)
		}
		out = append(out, host.AuxFile{Path: f.Path, Mode: fs.FileMode(f.Mode).Perm(), Data: b})
	}
	return out, nil
}

// CertInfo describes a certificate a VIP serves, as plans and status show
// it: subject, SANs, issuer, expiry and fingerprint, never key bytes.
type CertInfo struct {
	VIP      string    `json:"vip"` // address:port
	Name     string    `json:"name,omitempty"`
	HostPath string    `json:"hostPath,omitempty"` // a certificate already on the host: not read
	Subject  string    `json:"subject,omitempty"`
	SANs     []string  `json:"sans,omitempty"`
	Issuer   string    `json:"issuer,omitempty"`
	NotAfter time.Time `json:"notAfter,omitzero"`
	SHA256   string    `json:"sha256,omitempty"`
	Warning  string    `json:"warning,omitempty"` // expires soon
}
