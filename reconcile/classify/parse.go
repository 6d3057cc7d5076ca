package classify

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"lbc/compiler"
)

// config is a haproxy.cfg as lbc renders it: sections in file order.
type config struct {
	sections []*section
	byHead   map[string]*section
}

// section is one global, defaults, frontend or backend section.
type section struct {
	head    string   // "global", "backend be_web"
	lines   []string // directives other than server lines, trimmed, in order
	servers []*server
	byName  map[string]*server
	algo    string   // backend: the balance algorithm
	dflt    []string // backend: default-server keywords
	cookie  bool     // backend: cookie persistence
}

// server is one server line.
type server struct {
	name     string
	addr     string // address:port as written
	weight   int
	maxconn  int
	check    bool
	backup   bool
	disabled bool
	cookie   string
	// tls: the nodeTLS words ("ssl verify required ca-file P sni
	// str(N) verifyhost N check-ssl check-sni N"), "" without.
	tls  string
	args []string // every word after the name: the address and keywords
}

// parse reads a haproxy.cfg rendered by lbc and left unedited (its header's
// content hash holds). Anything else is an error: the caller reloads.
func parse(b []byte) (*config, error) {
	if _, err := compiler.ParseHeader(b); err != nil {
		return nil, err
	}
	body := string(b[strings.IndexByte(string(b), '\n')+1:])
	c := &config{byHead: map[string]*section{}}
	var cur *section
	for i, line := range strings.Split(body, "\n") {
		n := i + 2 // line number in the file
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
			continue
		case strings.HasPrefix(line, "    "):
			d := line[4:]
			if strings.HasPrefix(d, "#") {
				continue
			}
			if cur == nil {
				return nil, fmt.Errorf("line %d: directive outside a section", n)
			}
			if err := cur.add(d); err != nil {
				return nil, fmt.Errorf("line %d: %w", n, err)
			}
		default:
			f := strings.Split(line, " ")
			ok := len(f) == 1 && (f[0] == "global" || f[0] == "defaults") ||
				len(f) == 2 && (f[0] == "frontend" || f[0] == "backend") && safeWord(f[1])
			if !ok {
				return nil, fmt.Errorf("line %d: not a section lbc renders", n)
			}
			if c.byHead[line] != nil {
				return nil, fmt.Errorf("line %d: section repeated", n)
			}
			cur = &section{head: line, byName: map[string]*server{}}
			c.sections = append(c.sections, cur)
			c.byHead[line] = cur
		}
	}
	return c, nil
}

func (s *section) add(d string) error {
	backend := strings.HasPrefix(s.head, "backend ")
	switch {
	case s.head == "global" && strings.HasPrefix(d, "description lbc:"):
		return nil // differs in every rendering (see the package comment)
	case backend && strings.HasPrefix(d, "server "):
		sv, err := parseServer(d)
		if err != nil {
			return err
		}
		if s.byName[sv.name] != nil {
			return fmt.Errorf("server %s repeated", sv.name)
		}
		s.servers = append(s.servers, sv)
		s.byName[sv.name] = sv
		return nil
	case backend && strings.HasPrefix(d, "balance "):
		s.algo = strings.TrimPrefix(d, "balance ")
	case backend && strings.HasPrefix(d, "default-server "):
		s.dflt = strings.Split(strings.TrimPrefix(d, "default-server "), " ")
	case backend && strings.HasPrefix(d, "cookie "):
		s.cookie = true
	}
	s.lines = append(s.lines, d)
	return nil
}

// parseServer reads "server NAME ADDR:PORT weight W [maxconn N] [check]
// [ssl ...] [backup] [disabled] [cookie C]", the keywords in that order
// (ssl and its words: compiler's serverTLS, printable ASCII).
func parseServer(d string) (*server, error) {
	f := strings.Split(d, " ")
	if len(f) < 5 || !safeWord(f[1]) || !safeWord(f[2]) || f[3] != "weight" {
		return nil, errors.New("not a server line lbc renders")
	}
	sv := &server{name: f[1], addr: f[2], args: f[2:]}
	w, err := strconv.Atoi(f[4])
	if err != nil || w < 0 || w > 256 {
		return nil, errors.New("server weight out of range")
	}
	sv.weight = w
	rest := f[5:]
	// Each optional keyword at most once and in the rendered order.
	if len(rest) >= 2 && rest[0] == "maxconn" {
		m, err := strconv.Atoi(rest[1])
		if err != nil || m < 1 {
			return nil, errors.New("server maxconn out of range")
		}
		sv.maxconn, rest = m, rest[2:]
	}
	if len(rest) > 0 && rest[0] == "check" {
		sv.check, rest = true, rest[1:]
	}
	if len(rest) > 0 && rest[0] == "ssl" {
		n := 1
		for n < len(rest) && rest[n] != "backup" && rest[n] != "disabled" && rest[n] != "cookie" {
			if !printableWord(rest[n]) {
				return nil, errors.New("server ssl keyword lbc does not render")
			}
			n++
		}
		sv.tls, rest = strings.Join(rest[:n], " "), rest[n:]
	}
	for _, kw := range []struct {
		name string
		dst  *bool
	}{{"backup", &sv.backup}, {"disabled", &sv.disabled}} {
		if len(rest) > 0 && rest[0] == kw.name {
			*kw.dst, rest = true, rest[1:]
		}
	}
	if len(rest) == 2 && rest[0] == "cookie" && safeWord(rest[1]) {
		sv.cookie, rest = rest[1], nil
	}
	if len(rest) > 0 {
		return nil, errors.New("server keyword lbc does not render")
	}
	return sv, nil
}

// safeWord accepts the characters of lbc's section, server and address
// words: the only text from a live file that reaches an operation or a
// reason.
func safeWord(s string) bool {
	if s == "" || len(s) > 200 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._:-[]", c) >= 0) {
			return false
		}
	}
	return true
}

// printableWord: a non-empty word of printable ASCII (no space).
func printableWord(s string) bool {
	if s == "" || len(s) > 4096 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}
