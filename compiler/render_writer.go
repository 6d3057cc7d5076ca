package compiler

import (
	"lbc/schema"

	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"time"
)

// cfgWriter builds a rendered file in one byte slice and keeps the first
// error. The file's header line (see headerPrefix) is reserved at the start
// and filled in by finish, once the body is known, so that a file costs
// one allocation when the size hint is right. The hot lines are appended
// piece by piece (s, i, addr, nl); line, with fmt, is for the rare ones.
type cfgWriter struct {
	buf     []byte
	hdr     string // the header up to the content hash
	err     error
	seenAP  []netip.AddrPort            // the VIPs or nodes of the section being written (see see)
	seenSet map[netip.AddrPort]struct{} // the same, once there are many
	dev     *schema.Device              // the device rendered for (certificate paths)
}

// headerHashLen is the length of the hex SHA-256 that ends the header line.
const headerHashLen = 2 * sha256.Size

// newCfgWriter starts a file with room for sizeHint bytes of body. It
// fails when opts would not make a safe header.
func newCfgWriter(opts Options, sizeHint int) (*cfgWriter, error) {
	hdr, err := headerPrefix(opts)
	if err != nil {
		return nil, err
	}
	n := len(hdr) + headerHashLen + 1
	return &cfgWriter{buf: make([]byte, n, n+sizeHint), hdr: hdr}, nil
}

// body returns what was written after the reserved header.
func (w *cfgWriter) body() []byte { return w.buf[len(w.hdr)+headerHashLen+1:] }

// finish fills the header in and returns the file.
func (w *cfgWriter) finish() []byte {
	sum := sha256.Sum256(w.body())
	n := copy(w.buf, w.hdr)
	hex.Encode(w.buf[n:], sum[:])
	w.buf[n+headerHashLen] = '\n'
	return w.buf
}

// headerPrefix is the header line up to the content hash:
// "# lbc VERSION revision REVISION content sha256:".
func headerPrefix(opts Options) (string, error) {
	version, rev := opts.Version, opts.Revision
	if version == "" {
		version = "unknown"
	}
	if rev == "" {
		rev = "none"
	}
	for _, v := range []struct{ what, s string }{{"version", version}, {"revision", rev}} {
		if err := checkWord(v.s, false); err != nil {
			return "", fmt.Errorf("render header: %s: %w", v.what, err)
		}
	}
	return "# lbc " + version + " revision " + rev + " content sha256:", nil
}

func (w *cfgWriter) line(format string, args ...any) {
	w.buf = fmt.Appendf(w.buf, format, args...)
	w.buf = append(w.buf, '\n')
}

// s appends strings.
func (w *cfgWriter) s(ss ...string) {
	for _, s := range ss {
		w.buf = append(w.buf, s...)
	}
}

// i appends n in decimal.
func (w *cfgWriter) i(n int) { w.buf = strconv.AppendInt(w.buf, int64(n), 10) }

// addr appends a as netip.Addr.String does.
func (w *cfgWriter) addr(a netip.Addr) { w.buf = a.AppendTo(w.buf) }

// addrPort appends ap as netip.AddrPort.String does.
func (w *cfgWriter) addrPort(ap netip.AddrPort) { w.buf = ap.AppendTo(w.buf) }

// nl ends a line.
func (w *cfgWriter) nl() { w.buf = append(w.buf, '\n') }

func (w *cfgWriter) fail(format string, args ...any) {
	if w.err == nil {
		w.err = fmt.Errorf(format, args...)
	}
}

// word records an error unless s is one safe word of an HAProxy file.
func (w *cfgWriter) word(s, what string) {
	if err := checkWord(s, false); err != nil {
		w.fail("%s: %w", what, err)
	}
}

// balancerWord is word for a field of a balancer: the message is only
// built when s is not safe.
func (w *cfgWriter) balancerWord(s, balancer, field string) {
	if err := checkWord(s, false); err != nil {
		w.fail("balancer %s: %s: %w", balancer, field, err)
	}
}

// see records ap as seen in the section being written and reports
// whether it already was; resetSeen starts a section.
func (w *cfgWriter) see(ap netip.AddrPort) bool {
	if w.seenSet != nil {
		_, dup := w.seenSet[ap]
		w.seenSet[ap] = struct{}{}
		return dup
	}
	for _, x := range w.seenAP {
		if x == ap {
			return true
		}
	}
	w.seenAP = append(w.seenAP, ap)
	if len(w.seenAP) > 32 { // many nodes: a linear scan would be quadratic
		w.seenSet = make(map[netip.AddrPort]struct{}, 2*len(w.seenAP))
		for _, x := range w.seenAP {
			w.seenSet[x] = struct{}{}
		}
	}
	return false
}

func (w *cfgWriter) resetSeen() { w.seenAP, w.seenSet = w.seenAP[:0], nil }

// duration appends d for HAProxy (see haDuration), recording an error
// when d is out of range.
func (w *cfgWriter) duration(d time.Duration, balancer, field string) {
	if d <= 0 || d > maxTimer {
		w.fail("balancer %s: %s %s out of range", balancer, field, d)
		w.buf = append(w.buf, '0')
		return
	}
	w.buf = appendDuration(w.buf, d)
}

// haDuration writes d in whole seconds when it is, else in milliseconds
// (rounded up: HAProxy's resolution).
func haDuration(d time.Duration) string { return string(appendDuration(nil, d)) }

func appendDuration(b []byte, d time.Duration) []byte {
	if d%time.Second == 0 {
		return append(strconv.AppendInt(b, int64(d/time.Second), 10), 's')
	}
	ms := (d + time.Millisecond - 1) / time.Millisecond
	return append(strconv.AppendInt(b, int64(ms), 10), "ms"...)
}
