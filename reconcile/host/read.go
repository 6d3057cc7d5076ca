package host

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/netip"
	"sort"
	"strings"
)

// File is one file read from a host.
type File struct {
	Exists bool
	Data   []byte
}

// Fingerprint is the sha256 of the file's bytes, or "" when it is absent.
func (f File) Fingerprint() string {
	if !f.Exists {
		return ""
	}
	return Fingerprint(f.Data)
}

// Live is what a device runs now, read in one round trip.
type Live struct {
	Config     File
	StateFile  File
	State      *State // nil when state.json is absent
	Keepalived File   // read only when the device has a keepalived config path
	// Files maps the path of each auxiliary file asked for to its sha256,
	// "" when it is absent (its bytes are never read, but a map file's:
	// FileData).
	Files map[string]string
	// FileData holds the bytes of each map file asked for (IsMapFile)
	// that the host has: a host table is no secret, and the plan shows
	// its entries added and removed.
	FileData  map[string][]byte
	Addresses []string
	// Runtime is the answer of the running HAProxy to `show servers
	// state` on the stats socket (absent when the socket does not exist
	// or does not answer); ParseServersState reads it.
	Runtime File
}

// The read's section markers: "==lbc NAME present", the file in base64,
// "==lbc NAME end"; or "==lbc NAME absent"; then "==lbc addr" and the
// output of `ip -j addr show`.
const (
	secConfig     = "config"
	secState      = "state"
	secKeepalived = "keepalived"
	secRuntime    = "runtime"
	addrLine      = markerPrefix + "addr"
)

// ReadScript prints, in one round trip, each file as a section (config,
// state.json, and keepalived.conf when keepalived is set), the
// fingerprint of each auxiliary file at files, the running HAProxy's
// `show servers state` as the section runtime (absent when the stats
// socket is not there or does not answer: it never fails the read), then
// the addresses; ParseRead reads its output.
func ReadScript(h Host, keepalived bool, files []string) string {
	var b strings.Builder
	// The answer goes to base64 through a here-document: no pipe, one
	// process besides lbc_cli.
	b.WriteString(cliFunc)
	fmt.Fprintf(&b, `rtsec() { if [ -S %[1]s ] && lbc_rs=$(lbc_cli %[1]s 2>/dev/null <<'LBC_CLI'
show servers state
LBC_CLI
) && [ -n "$lbc_rs" ]; then echo "%[2]s present"; base64 <<LBC_RS || return 1
$lbc_rs
LBC_RS
echo "%[2]s end"; else echo "%[2]s absent"; fi; }
`, q(h.SocketPath()), markerPrefix+secRuntime)
	b.WriteString(`sec() { if [ -e "$2" ]; then echo "` + markerPrefix + `$1 present"; base64 < "$2" || return 1; echo "` + markerPrefix + `$1 end"; else echo "` + markerPrefix + `$1 absent"; fi; }; `)
	fmt.Fprintf(&b, "sec %s %s && sec %s %s", secConfig, q(h.Config), secState, q(h.StatePath()))
	if keepalived {
		fmt.Fprintf(&b, " && sec %s %s", secKeepalived, q(h.KeepalivedConfig))
	}
	if len(files) > 0 {
		fmt.Fprintf(&b, " && { %s; }", auxReadCmd(files))
	}
	if c := mapReadCmd(files); c != "" {
		fmt.Fprintf(&b, " && { %s; }", c)
	}
	fmt.Fprintf(&b, " && rtsec && echo '%s' && %s -j addr show", addrLine, h.ip())
	return b.String()
}

// ParseRead reads the output of ReadScript. Anything it does not expect
// (a line outside a section, a marker out of order, bad base64, a
// state.json that does not parse, output cut short) is an error.
func ParseRead(out []byte) (*Live, error) {
	l := &Live{}
	files := map[string]*File{secConfig: &l.Config, secState: &l.StateFile, secKeepalived: &l.Keepalived, secRuntime: &l.Runtime}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64*1024), 64*1024*1024)
	var cur *File
	var buf strings.Builder
	sawAddr := false
	mapPath := "" // the map file whose bytes are being read
	for sc.Scan() {
		line := sc.Text()
		if sawAddr {
			buf.WriteString(line)
			buf.WriteByte('\n')
			continue
		}
		if p, ok := strings.CutPrefix(line, contentLinePrefix+" "); ok && cur == nil && strings.HasPrefix(p, "/") {
			if _, dup := l.FileData[p]; dup || !IsMapFile(p) {
				return nil, fmt.Errorf("read live state: unexpected line %q", line)
			}
			mapPath, cur = p, &File{}
			buf.Reset()
			continue
		}
		if line == contentLinePrefix+" end" && mapPath != "" {
			data, err := base64.StdEncoding.DecodeString(buf.String())
			if err != nil {
				return nil, fmt.Errorf("read live state: map file %s: %w", mapPath, err)
			}
			if l.FileData == nil {
				l.FileData = map[string][]byte{}
			}
			l.FileData[mapPath] = data
			mapPath, cur = "", nil
			buf.Reset()
			continue
		}
		if rest, ok := strings.CutPrefix(line, fileLinePrefix+" "); ok && cur == nil {
			p, sum, ok := strings.Cut(rest, " ")
			if !ok || !strings.HasPrefix(p, "/") || (sum != "absent" && !isSHA256(sum)) {
				return nil, fmt.Errorf("read live state: unexpected line %q", line)
			}
			if sum == "absent" {
				sum = ""
			}
			if l.Files == nil {
				l.Files = map[string]string{}
			}
			l.Files[p] = sum
			continue
		}
		if name, ok := strings.CutPrefix(line, markerPrefix); ok {
			f := strings.Fields(name)
			switch {
			case line == addrLine && cur == nil:
				sawAddr = true
			case len(f) == 2 && files[f[0]] != nil && f[1] == "absent" && cur == nil:
			case len(f) == 2 && files[f[0]] != nil && f[1] == "present" && cur == nil:
				cur = files[f[0]]
				buf.Reset()
			case len(f) == 2 && files[f[0]] == cur && f[1] == "end" && cur != nil:
				data, err := base64.StdEncoding.DecodeString(buf.String())
				if err != nil {
					return nil, fmt.Errorf("read live state: section %s: %w", f[0], err)
				}
				cur.Exists, cur.Data = true, data
				cur = nil
				buf.Reset()
			default:
				return nil, fmt.Errorf("read live state: unexpected line %q", line)
			}
			continue
		}
		if cur == nil {
			return nil, fmt.Errorf("read live state: unexpected line %q", line)
		}
		buf.WriteString(line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read live state: %w", err)
	}
	if !sawAddr {
		return nil, fmt.Errorf("read live state: output cut short")
	}
	addrs, err := parseIPAddr([]byte(buf.String()))
	if err != nil {
		return nil, err
	}
	l.Addresses = addrs
	if l.StateFile.Exists {
		s, err := ParseState(l.StateFile.Data)
		if err != nil {
			return nil, err
		}
		l.State = s
	}
	return l, nil
}

// parseIPAddr reads `ip -j addr show` into sorted "addr/prefix dev iface".
func parseIPAddr(b []byte) ([]string, error) {
	var links []struct {
		Ifname   string `json:"ifname"`
		AddrInfo []struct {
			Local     string `json:"local"`
			Prefixlen int    `json:"prefixlen"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(b), &links); err != nil {
		return nil, fmt.Errorf("read live state: parse ip -j addr show: %w", err)
	}
	var out []string
	for _, l := range links {
		for _, a := range l.AddrInfo {
			addr, err := netip.ParseAddr(a.Local)
			if err != nil {
				continue // not an IP address (never for inet/inet6)
			}
			out = append(out, VIPString(addr, a.Prefixlen, l.Ifname))
		}
	}
	sort.Strings(out)
	return out, nil
}

// isSHA256 reports whether s is a sha256 in lower-case hex.
func isSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
