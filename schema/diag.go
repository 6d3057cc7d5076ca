package schema

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/token"
)

// Severity of a diagnostic.
const (
	SeverityError   = "error"
	SeverityWarning = "warning"
)

// Diagnostic is one problem found in a spec tree, at a place in a file.
// Path is the full field path, labels that are not identifiers quoted as in
// CUE: balancers."shop-web".nodes[0].weight.
type Diagnostic struct {
	Severity string `json:"severity"`
	Message  string `json:"message"`
	Path     string `json:"path,omitempty"`
	Pos             // file, line, column
}

// String formats d as file:line:col: path: message.
func (d Diagnostic) String() string {
	var b strings.Builder
	b.WriteString(d.Pos.String())
	b.WriteString(": ")
	if d.Path != "" {
		b.WriteString(d.Path)
		b.WriteString(": ")
	}
	if d.Severity == SeverityWarning {
		b.WriteString("warning: ")
	}
	b.WriteString(d.Message)
	return b.String()
}

// Diagnostics is every problem found, sorted by file, line, column and path.
// It is the error Load returns.
type Diagnostics []Diagnostic

func (ds Diagnostics) Error() string {
	lines := make([]string, len(ds))
	for i, d := range ds {
		lines[i] = d.String()
	}
	return strings.Join(lines, "\n")
}

// HasErrors reports whether any diagnostic is an error, not a warning.
func (ds Diagnostics) HasErrors() bool {
	for _, d := range ds {
		if d.Severity != SeverityWarning {
			return true
		}
	}
	return false
}

// Sort orders ds by file, line, column, path and message, and drops exact duplicates.
func (ds Diagnostics) sorted() Diagnostics {
	sort.SliceStable(ds, func(i, j int) bool {
		a, b := ds[i], ds[j]
		if a.Pos != b.Pos || a.Path != b.Path {
			return less(a.Pos, b.Pos, a.Path, b.Path)
		}
		return a.Message < b.Message
	})
	out := ds[:0]
	for i, d := range ds {
		if i > 0 && d == ds[i-1] {
			continue
		}
		out = append(out, d)
	}
	return out
}

// errorf makes an error diagnostic.
func errorf(pos Pos, path string, format string, args ...any) Diagnostic {
	return Diagnostic{Severity: SeverityError, Message: clean(fmt.Sprintf(format, args...)), Path: path, Pos: pos}
}

// clean escapes control characters so that a message stays one line, and
// shortens the long quoted values in it (see shortenQuoted).
func clean(s string) string {
	s = redactKeyMaterial(s)
	s = shortenQuoted(s)
	if strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) < 0 {
		return s
	}
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

// label formats one path element: identifiers bare, anything else quoted.
func label(s string) string {
	if ast.IsValidIdent(s) && !strings.HasPrefix(s, "#") && !strings.HasPrefix(s, "_") {
		return s
	}
	return strconv.Quote(s)
}

// join appends a field path relative to an entity ("nodes[0].weight") to
// the entity's path.
func join(base, rel string) string {
	if rel == "" {
		return base
	}
	if strings.HasPrefix(rel, "[") {
		return base + rel
	}
	return base + "." + rel
}

func devicePath(name string) string   { return "devices." + label(name) }
func balancerPath(name string) string { return "balancers." + label(name) }

// cuePath converts the path of a CUE error (selectors as CUE prints them,
// list indices as plain numbers) to lbc's form.
func cuePath(sels []string) string {
	var b strings.Builder
	for i, s := range sels {
		if s != "" && s[0] >= '0' && s[0] <= '9' {
			b.WriteString("[" + s + "]")
			continue
		}
		if strings.HasPrefix(s, `"`) {
			if u, err := strconv.Unquote(s); err == nil {
				s = label(u)
			}
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(s)
	}
	return b.String()
}

var (
	outOfBoundRE = regexp.MustCompile(`^invalid value (.*) \(out of bound =~(".*")\)$`)
	boundRE      = regexp.MustCompile(`^invalid value (.*) \(out of bound ([<>]=?|!=)(.*)\)$`)
	emptyDisjRE  = regexp.MustCompile(`^\d+ errors in empty disjunction:?$`)
)

// fromCUE converts a CUE error into diagnostics: disjunction noise dropped,
// messages made readable, each with a position in a spec file. rel maps a
// CUE file name to one relative to the tree; fallback gives a position for
// an error CUE places only in the schema (e.g. a missing field).
func (c *compiled) fromCUE(err error, rel func(string) string, fallback func(path []string) Pos) Diagnostics {
	var out Diagnostics
	for _, e := range errors.Errors(err) {
		format, args := e.Msg()
		msg := fmt.Sprintf(format, args...)
		if emptyDisjRE.MatchString(msg) {
			continue
		}
		positions := errors.Positions(e)
		loser := false
		var pos Pos
		var also []string
		for _, p := range positions {
			if c.inDefault(p) {
				loser = true
				break
			}
			if p.Filename() == schemaFile || !p.IsValid() {
				continue
			}
			pp := Pos{File: rel(p.Filename()), Line: p.Line(), Col: p.Column()}
			if !pos.IsValid() {
				pos = pp
			} else if pp != pos {
				also = append(also, pp.String())
			}
		}
		if loser {
			continue
		}
		path := e.Path()
		if !pos.IsValid() {
			pos = fallback(path)
		}
		msg = c.rewrite(path, msg)
		if len(also) > 0 {
			msg += " (see also " + strings.Join(also, ", ") + ")"
		}
		out = append(out, Diagnostic{
			Severity: SeverityError,
			Message:  clean(msg),
			Path:     cuePath(path),
			Pos:      pos,
		})
	}
	return out
}

// rewrite turns CUE's wording into lbc's.
func (c *compiled) rewrite(path []string, msg string) string {
	if m := outOfBoundRE.FindStringSubmatch(msg); m != nil {
		if re, err := strconv.Unquote(m[2]); err == nil {
			return "invalid value " + m[1] + ": " + c.describeRegex(re)
		}
	}
	if m := boundRE.FindStringSubmatch(msg); m != nil {
		return "invalid value " + m[1] + ": must be " + m[2] + " " + m[3]
	}
	switch msg {
	case "field not allowed":
		if len(path) == 2 && (path[0] == "devices" || path[0] == "balancers") {
			name := path[1]
			if u, err := strconv.Unquote(name); err == nil {
				name = u
			}
			return "invalid name " + strconv.Quote(name) + ": " + c.describeRegex(nameRegex)
		}
		if len(path) > 0 {
			msg := "unknown field " + strconv.Quote(unquote(path[len(path)-1]))
			if inTLS(path) {
				msg += ": a certificate is a reference (name in the certificate source, or hostPath on the host); PEM text and keys are never written in a spec"
			}
			return msg
		}
		return "unknown field"
	case "field is required but not present":
		return "missing required field"
	}
	if rest, ok := strings.CutPrefix(msg, "incomplete value "); ok {
		return "not a concrete value: " + rest
	}
	return msg
}

func unquote(s string) string {
	if u, err := strconv.Unquote(s); err == nil {
		return u
	}
	return s
}

const nameRegex = `^[a-z0-9][a-z0-9._-]{0,62}$`

// posOf converts a CUE position.
func posOf(p token.Pos, rel func(string) string) Pos {
	if !p.IsValid() || p.Filename() == schemaFile {
		return Pos{}
	}
	pp := p.Position() // one line table lookup for both line and column
	return Pos{File: rel(pp.Filename), Line: pp.Line, Col: pp.Column}
}

// shortenQuoted cuts every double-quoted string in msg that is longer than
// maxQuoted bytes to its first maxQuoted bytes and its length, so that a
// message never echoes a whole huge value (as Quote does for values lbc
// quotes itself; this catches the values CUE's messages quote).
func shortenQuoted(msg string) string {
	if len(msg) < 2*maxQuoted {
		return msg
	}
	return mapQuoted(msg, func(q string) string {
		body := q[1 : len(q)-1]
		if len(body) <= maxQuoted {
			return q
		}
		cut := maxQuoted
		for cut > 0 && (!utf8RuneStart(body[cut]) || body[cut-1] == '\\') {
			cut--
		}
		return fmt.Sprintf("\"%s\"... (%d bytes)", body[:cut], len(body))
	})
}

// mapQuoted replaces every double-quoted string of msg (as Go quotes
// them: a backslash escapes the next byte), quotes included, with f of
// it; what follows an unterminated quote is left as it is.
func mapQuoted(msg string, f func(quoted string) string) string {
	var b strings.Builder
	i := 0
	for {
		start := strings.IndexByte(msg[i:], '"')
		if start < 0 {
			break
		}
		start += i
		end := start + 1
		for end < len(msg) && msg[end] != '"' {
			if msg[end] == '\\' {
				end++
			}
			end++
		}
		if end >= len(msg) {
			break
		}
		b.WriteString(msg[i:start])
		b.WriteString(f(msg[start : end+1]))
		i = end + 1
	}
	b.WriteString(msg[i:])
	return b.String()
}
