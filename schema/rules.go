package schema

import (
	"errors"
	"fmt"
	"net/netip"
	"path"
	"regexp"
	"strings"
	"time"
)

// The rules for values that reach a host's files and directives, one
// function each. The spec checks (check.go) use them, and they are
// exported so that whatever else hands such a value to a host (a saved
// plan read back) re-checks it with the same rule. Their errors say what
// is wrong with the value; the caller adds where it was found.

// PathChars are the only characters of a path lbc puts into a host file or
// command: HAProxy reads ',' in a socket address as a list separator and
// '@' as an address family (ipv4@, abns@, fd@), socat reads ',' and ':',
// and '%', '+', '=' mean nothing good in either.
const PathChars = "A-Za-z0-9._/-"

// MaxPathLen is the longest path the schema accepts; MaxPathElem the
// longest element of a path (the host's NAME_MAX of 255, less room for the
// suffixes lbc adds to staged and temporary files, such as ".lbc-new").
const (
	MaxPathLen  = 1000
	MaxPathElem = 240
)

// SocketName is the stats socket HAProxy opens in the state directory; the
// whole socket path must fit a Unix socket address (sun_path: 108 bytes,
// one of them the terminating NUL).
const (
	SocketName      = "haproxy.sock"
	maxSocketPath   = 107
	MaxStateDirLen  = maxSocketPath - len("/"+SocketName)
	MaxHAProxyTimer = (1<<31 - 1) * time.Millisecond // HAProxy's largest timer: 2^31-1 ms, about 24.8 days
)

var pathRE = regexp.MustCompile("^/[" + PathChars + "]*$")

// CheckPath checks an absolute path of a file or directory on a host: made
// of PathChars only, clean (no "..", "//", "." or trailing "/"), not the
// root, within MaxPathLen and with no element longer than MaxPathElem.
func CheckPath(p string) error {
	if !pathRE.MatchString(p) {
		return fmt.Errorf("invalid path %s: must be an absolute path of %s", Quote(p), pathCharsText)
	}
	if len(p) > MaxPathLen {
		return fmt.Errorf("invalid path %s: longer than %d bytes", Quote(p), MaxPathLen)
	}
	if c := path.Clean(p); c != p {
		return fmt.Errorf("path %s is not clean (write %s)", Quote(p), Quote(c))
	}
	if p == "/" {
		return errors.New(`invalid path "/": names no file`)
	}
	for _, e := range strings.Split(p[1:], "/") {
		if len(e) > MaxPathElem {
			return fmt.Errorf("invalid path %s: an element is longer than %d bytes", Quote(p), MaxPathElem)
		}
	}
	return nil
}

const pathCharsText = "A-Z a-z 0-9 . _ / -"

// sharedDirs are directories every local user can write to or that the
// system owns: a state directory there would let another user plant the
// files lbc runs as root (txn.sh) or mix lbc's files with the system's.
var sharedDirs = map[string]string{
	"/tmp": "world-writable", "/var/tmp": "world-writable", "/dev/shm": "world-writable",
	"/run/shm": "world-writable", "/run/lock": "world-writable", "/var/lock": "world-writable",
	"/var/crash": "world-writable", "/var/mail": "shared", "/var/spool": "shared",
	"/run": "a system directory", "/var/run": "a system directory", "/var": "a system directory",
	"/var/lib": "a system directory", "/var/cache": "a system directory", "/var/log": "a system directory",
	"/etc": "a system directory", "/usr": "a system directory", "/usr/local": "a system directory",
	"/bin": "a system directory", "/sbin": "a system directory", "/lib": "a system directory",
	"/lib64": "a system directory", "/boot": "a system directory", "/opt": "a system directory",
	"/srv": "a system directory", "/mnt": "a system directory", "/media": "a system directory",
	"/home": "a system directory", "/root": "a system directory",
}

// pseudoTrees are trees no state directory may be in: kernel file systems,
// and per-user runtime directories (shared with every process of the user,
// emptied at logout).
var pseudoTrees = []string{"/dev", "/proc", "/sys", "/run/user"}

// CheckStateDir checks a device's stateDir: a path (CheckPath) short
// enough for the stats socket path below it (MaxStateDirLen), and not a
// well-known shared or system directory. Whether the directory on the host
// is owned and writable as it must be is for the host side to check.
func CheckStateDir(p string) error {
	if err := CheckPath(p); err != nil {
		if p == "/" {
			return errors.New(`stateDir "/" is the root directory: use a directory of lbc's own such as /var/lib/lbc`)
		}
		return err
	}
	if len(p) > MaxStateDirLen {
		return fmt.Errorf("stateDir is %d bytes, more than %d: the stats socket path below it (stateDir/%s) would not fit a Unix socket address (%d bytes)",
			len(p), MaxStateDirLen, SocketName, maxSocketPath)
	}
	if why, ok := sharedDirs[p]; ok {
		return fmt.Errorf("stateDir %q is %s: use a directory of lbc's own such as /var/lib/lbc", p, describeShared(why))
	}
	for _, t := range pseudoTrees {
		if p == t || strings.HasPrefix(p, t+"/") {
			return fmt.Errorf("stateDir %q is under %s: use a directory of lbc's own such as /var/lib/lbc", p, t)
		}
	}
	return nil
}

func describeShared(why string) string {
	switch why {
	case "world-writable":
		return "a world-writable shared directory"
	case "shared":
		return "a shared directory"
	}
	return why
}

// CheckDuration checks a duration that becomes an HAProxy timer: greater
// than 0 and at most MaxHAProxyTimer.
func CheckDuration(d time.Duration) error {
	switch {
	case d <= 0:
		return errors.New("must be greater than 0")
	case d > MaxHAProxyTimer:
		return fmt.Errorf("more than HAProxy's largest timer, %dms (about 24.8 days)", MaxHAProxyTimer/time.Millisecond)
	}
	return nil
}

// CheckVIP checks a VIP address: a unicast address a host can carry and
// clients reach. Loopback, link-local, multicast, unspecified and the IPv4
// limited broadcast address are refused, and so is an IPv4-mapped IPv6
// address (write the IPv4 address). The broadcast address of a network a
// device carries is CheckVIPInNetwork's.
func CheckVIP(a netip.Addr) error {
	switch {
	case !a.IsValid():
		return errors.New("not an IP address")
	case a.Zone() != "":
		return errors.New("an IPv6 zone is not allowed")
	case a.Is4In6():
		return fmt.Errorf("an IPv4-mapped IPv6 address (write %s)", a.Unmap())
	case a.IsUnspecified():
		return errors.New("the unspecified address")
	case a.IsLoopback():
		return errors.New("a loopback address")
	case a.IsLinkLocalUnicast():
		return errors.New("a link-local address")
	case a.IsMulticast():
		return errors.New("a multicast address")
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return errors.New("the broadcast address")
	}
	return nil
}

// CheckVIPInNetwork checks a VIP against a network that a device carries
// it in: an IPv4 VIP may not be the network's broadcast address (its last
// address, for prefixes of /30 and shorter).
func CheckVIPInNetwork(a netip.Addr, n netip.Prefix) error {
	a = a.Unmap()
	if !a.Is4() || !n.Addr().Is4() || n.Bits() > 30 || !n.Contains(a) {
		return nil
	}
	if a == lastAddr(n) {
		return fmt.Errorf("the broadcast address of %s", n)
	}
	return nil
}

// lastAddr is the last address of an IPv4 prefix.
func lastAddr(n netip.Prefix) netip.Addr {
	b := n.Masked().Addr().As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v |= 1<<(32-n.Bits()) - 1
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// SameAddr reports whether two addresses are the same host address, an
// IPv4-mapped IPv6 address being the IPv4 address it maps.
func SameAddr(a, b netip.Addr) bool { return a.Unmap() == b.Unmap() }

// maxQuoted is how much of a value an error message shows.
const maxQuoted = 80

// Quote quotes s for a message, as %q does, showing at most the first 80
// bytes of a long value and its length: a message never echoes a whole
// huge value.
func Quote(s string) string {
	if len(s) <= maxQuoted {
		return fmt.Sprintf("%q", s)
	}
	cut := maxQuoted
	for cut > 0 && !utf8RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%q... (%d bytes)", s[:cut], len(s))
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }
