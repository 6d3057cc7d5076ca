package reconcile

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"

	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// hostKeyIndex checks host keys against a known_hosts file as
// knownhosts.New does, at a cost that does not grow with the file: the
// library scans every line of the file for each check (and lbc checks
// twice a connection), so a run over a fleet whose hosts are all in one
// known_hosts costs O(N²). hostKeyIndex reads the file once and indexes
// its plain lines (no marker, not hashed, host patterns without
// wildcards or negation) by host and port. Every other line (@revoked,
// @cert-authority, hashed hosts, wildcard patterns) is left to the
// library, which reads them alone from a copy of the file in which the
// plain lines are blank (so that its line numbers are the file's), and
// is asked on every check: a revoked key is refused whatever the plain
// lines say, a certificate is the library's alone, and a key that a
// wildcard or hashed line holds is accepted.
type hostKeyIndex struct {
	file  string
	plain map[string][]knownhosts.KnownKey // by knownhosts.Normalize of host:port
	rest  ssh.HostKeyCallback              // the other lines; nil when there are none
	tmp   string                           // the copy rest was read from
}

// newHostKeyIndex reads file.
func newHostKeyIndex(file string) (ssh.HostKeyCallback, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	ix := &hostKeyIndex{file: file, plain: map[string][]knownhosts.KnownKey{}}
	var rest bytes.Buffer
	hasRest := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Bytes()
		if hosts, key, ok := plainLine(line); ok {
			for _, h := range hosts {
				ix.plain[h] = append(ix.plain[h], knownhosts.KnownKey{Key: key, Filename: file, Line: n})
			}
			rest.WriteByte('\n')
			continue
		}
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			hasRest = true
		}
		rest.Write(line)
		rest.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if hasRest {
		f, err := os.CreateTemp("", "lbc-known_hosts-*")
		if err != nil {
			return nil, err
		}
		ix.tmp = f.Name()
		defer os.Remove(ix.tmp)
		_, err = f.Write(rest.Bytes())
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
		if ix.rest, err = knownhosts.New(ix.tmp); err != nil {
			return nil, errors.New(strings.ReplaceAll(err.Error(), ix.tmp, file))
		}
	}
	return ix.check, nil
}

// plainLine reads a line of plain host patterns and a key: the hosts it
// names (normalized) and its key; ok is false for anything else.
func plainLine(line []byte) (hosts []string, key ssh.PublicKey, ok bool) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] == '#' || line[0] == '@' || line[0] == '|' {
		return nil, nil, false
	}
	i := bytes.IndexAny(line, " \t")
	if i < 0 {
		return nil, nil, false
	}
	patterns, rest := string(line[:i]), bytes.TrimSpace(line[i:])
	if strings.ContainsAny(patterns, "*?!|") {
		return nil, nil, false
	}
	key, _, _, _, err := ssh.ParseAuthorizedKey(rest)
	if err != nil {
		return nil, nil, false
	}
	for _, p := range strings.Split(patterns, ",") {
		host, port := p, "22"
		if strings.HasPrefix(p, "[") {
			h, pt, err := net.SplitHostPort(p)
			if err != nil {
				return nil, nil, false
			}
			host, port = h, pt
		} else if strings.ContainsAny(p, "[]") || p == "" {
			return nil, nil, false
		}
		hosts = append(hosts, knownhosts.Normalize(net.JoinHostPort(host, port)))
	}
	return hosts, key, true
}

// check is the HostKeyCallback: knownhosts.New(file)'s answer, from the
// index and the library's reading of the other lines.
func (ix *hostKeyIndex) check(hostname string, remote net.Addr, key ssh.PublicKey) error {
	var restErr error
	if ix.rest != nil {
		restErr = ix.fixNames(ix.rest(hostname, remote, key))
		var re *knownhosts.RevokedError
		if errors.As(restErr, &re) {
			return restErr
		}
	}
	if _, isCert := key.(*ssh.Certificate); isCert {
		if ix.rest == nil {
			return &knownhosts.KeyError{}
		}
		return restErr
	}
	// The address the library checks: the host name when given, else the
	// remote address.
	a := remote.String()
	if hostname != "" {
		a = hostname
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("knownhosts: SplitHostPort(%s): %v", a, err)
	}
	want := ix.plain[knownhosts.Normalize(net.JoinHostPort(host, port))]
	blob := key.Marshal()
	for _, k := range want {
		if bytes.Equal(k.Key.Marshal(), blob) {
			return nil
		}
	}
	if ix.rest != nil && restErr == nil {
		return nil // a hashed or wildcard line holds the key
	}
	ke := &knownhosts.KeyError{Want: append([]knownhosts.KnownKey(nil), want...)}
	var re *knownhosts.KeyError
	if errors.As(restErr, &re) {
		ke.Want = append(ke.Want, re.Want...)
	} else if restErr != nil {
		return restErr
	}
	return ke
}

// fixNames puts the file's name where the library's errors name the copy.
func (ix *hostKeyIndex) fixNames(err error) error {
	var ke *knownhosts.KeyError
	var re *knownhosts.RevokedError
	switch {
	case errors.As(err, &ke):
		for i := range ke.Want {
			if ke.Want[i].Filename == ix.tmp {
				ke.Want[i].Filename = ix.file
			}
		}
	case errors.As(err, &re):
		if re.Revoked.Filename == ix.tmp {
			re.Revoked.Filename = ix.file
		}
	}
	return err
}
