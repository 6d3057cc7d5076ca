package schema

import (
	"bytes"
	"strconv"
	"unicode/utf8"
	"unsafe"

	"cuelang.org/go/cue/literal"
	"cuelang.org/go/cue/token"
)

// A reader of the plain-data subset of CUE that builds dval directly, and
// records the field positions, without CUE's syntax tree: most of a large
// spec tree is plain data, and CUE's parser and the conversion of its tree
// were most of the time of loading it (their work grows with the text;
// ten L7 rules per balancer double it).
//
// The subset: comments, a package clause, fields whose labels are simple
// identifiers or double-quoted strings (and [string]: / [_]: patterns),
// chained labels (a: b: 1), structs, lists, strings without interpolation
// and with a few escapes, decimal integers and floats (with a leading -),
// true and false. A file with anything else (imports, references,
// definitions, optional fields, comprehensions, null, multi-line or raw
// strings, other separators or spacing CUE would read differently, ...)
// is not plain: the instance goes to CUE's parser as before. So a value
// read here is the one dataFiles makes of CUE's syntax tree, at the same
// file:line:col (plain_test.go compares both on every fixture), and a file
// CUE would refuse is never read here.

// plainFiles reads the files of an instance as plain data and unifies them
// as dataFiles does; pos gets their field positions as addFile records
// them. ok is false when a file is not plain, the files name different
// packages, or two values conflict.
func plainFiles(srcs []source, pos *positions) (top *dval, ok bool) {
	defer func() {
		if isNotData(recover()) {
			top, ok = nil, false
		}
	}()
	top = newStruct(token.NoPos, 0)
	pkg := ""
	a := &plainAlloc{}
	for i, s := range srcs {
		r := newPlainReader(s.name, s.src, a)
		name := r.file(top, pos)
		if i > 0 && name != pkg {
			panic(notData{})
		}
		pkg = name
	}
	applyPatterns(top)
	return top, true
}

// plainReader reads one file.
type plainReader struct {
	src  string // the file's text: the strings read are parts of it
	i    int    // offset of the next byte
	tf   *token.File
	name string
	a    *plainAlloc
}

// newPlainReader reads src as a string without copying it: the strings
// read are parts of src, which no one writes after it is read (a source's
// bytes are only read: hashed, parsed).
func newPlainReader(name string, src []byte, a *plainAlloc) *plainReader {
	tf := token.NewFile(name, -1, len(src))
	setLines(tf, src)
	return &plainReader{src: unsafe.String(unsafe.SliceData(src), len(src)), tf: tf, name: name, a: a}
}

// setLines gives tf the line table of src that tf.SetLinesForContent
// would, finding the newlines with bytes.IndexByte instead of a loop over
// every byte (that loop was a tenth of the reader's time, and ten L7
// rules a balancer double the text).
func setLines(tf *token.File, src []byte) {
	if len(src) == 0 {
		tf.SetLinesForContent(src)
		return
	}
	lines := make([]int, 1, bytes.Count(src, []byte{'\n'})+1)
	for off := 0; ; {
		i := bytes.IndexByte(src[off:], '\n')
		if i < 0 || off+i+1 == len(src) {
			break
		}
		off += i + 1
		lines = append(lines, off)
	}
	if !tf.SetLines(lines) {
		tf.SetLinesForContent(src)
	}
}

// plainAlloc hands out the values of an instance from slabs, one
// allocation for many (they all live as long as the instance's data), and
// the fields of structs and elements of lists through scratch slices.
type plainAlloc struct {
	vs slabOf[dval]
	as slabOf[dagg]
	fs scratch[dfield]
	es scratch[*dval]
}

const slab = 256

func (a *plainAlloc) val() *dval { return a.vs.next() }

func (a *plainAlloc) agg() *dagg { return a.as.next() }

// slabOf hands out the elements of one allocation after the other.
type slabOf[T any] []T

func (s *slabOf[T]) next() *T {
	if len(*s) == 0 {
		*s = make([]T, slab)
	}
	x := &(*s)[0]
	*s = (*s)[1:]
	return x
}

// scratch gathers the parts of the structs (or lists) open, one slice per
// depth, and gives each a slice of its exact size when it closes, cut from
// a slab (an append to it reallocates rather than writes over its
// neighbour).
type scratch[T any] struct {
	stack [][]T
	depth int
	slab  []T
}

// open returns the empty scratch slice of a struct or list opening.
func (s *scratch[T]) open() []T {
	if s.depth == len(s.stack) {
		s.stack = append(s.stack, make([]T, 0, 16))
	}
	s.depth++
	return s.stack[s.depth-1][:0]
}

// close keeps xs, the parts gathered since open, as the scratch slice of
// its depth and returns a copy of its exact size.
func (s *scratch[T]) close(xs []T) []T {
	s.depth--
	s.stack[s.depth] = xs[:0]
	n := len(xs)
	if n > slab/4 {
		return append([]T(nil), xs...)
	}
	out := s.cut(n)
	copy(out, xs)
	return out
}

// cut returns n elements of the slab, with no room beyond them.
func (s *scratch[T]) cut(n int) []T {
	if len(s.slab) < n {
		s.slab = make([]T, slab)
	}
	out := s.slab[:n:n]
	s.slab = s.slab[n:]
	return out
}

// recorder says which field positions a value records (see
// positions.fields): nil, none; entities, the entities of a devices or
// balancers field; else the fields under prefix into m, and with lazy
// (an entity's own fields), the lazy subtrees into lazy.
type recorder struct {
	p        *positions
	entities map[string]*entityPos
	m        map[string]Pos
	prefix   string
	lazy     *[]lazyField
}

// plainLazy is a lazy subtree read here: resolve reads it again to record
// its positions.
type plainLazy struct {
	r   *plainReader
	off int
}

// fields records the positions of the fields of the value at l.off under
// key into m.
func (l *plainLazy) fields(p *positions, m map[string]Pos, key string) {
	r := &plainReader{src: l.r.src, tf: l.r.tf, name: l.r.name, i: l.off, a: &plainAlloc{}}
	r.value(&recorder{p: p, m: m, prefix: key}, true)
}

func (r *plainReader) fail() { panic(notData{}) }

func (r *plainReader) at(off int) token.Pos { return r.tf.Pos(off, token.NoRelPos) }

func (r *plainReader) peek() byte {
	if r.i < len(r.src) {
		return r.src[r.i]
	}
	return 0
}

// space skips blanks, and with lines newlines and comments too; it reports
// whether it crossed a newline. A comment is only skipped with lines, so
// that a comment always ends a line that a newline ends.
func (r *plainReader) space(lines bool) (nl bool) {
	for r.i < len(r.src) {
		switch c := r.src[r.i]; {
		case c == ' ' || c == '\t':
			r.i++
		case c == '\n' && lines:
			r.i++
			nl = true
		case c == '/' && lines:
			r.comment()
		default:
			return nl
		}
	}
	return nl
}

// comment skips a // comment up to its newline.
func (r *plainReader) comment() {
	if r.i+1 >= len(r.src) || r.src[r.i+1] != '/' {
		r.fail()
	}
	start := r.i
	ascii := true
	for r.i < len(r.src) && r.src[r.i] != '\n' {
		c := r.src[r.i]
		if c < 0x20 && c != '\t' || c == 0x7f {
			r.fail()
		}
		if c >= utf8.RuneSelf {
			ascii = false
		}
		r.i++
	}
	if !ascii {
		r.checkUTF8(r.src[start:r.i])
	}
}

// checkUTF8 refuses what CUE's scanner refuses: invalid UTF-8 and a byte
// order mark.
func (r *plainReader) checkUTF8(s string) {
	if !utf8.ValidString(s) {
		r.fail()
	}
	for _, c := range s {
		if c == 0xFEFF {
			r.fail()
		}
	}
}

// sep reads what ends a field or an element: a comma, or a newline or a
// comment (CUE inserts the comma there), or the closer right after (0: the
// end of the file). It reports whether the struct, list or file goes on.
func (r *plainReader) sep(closer byte) bool {
	r.space(false)
	switch c := r.peek(); {
	case r.i == len(r.src):
		if closer != 0 {
			r.fail()
		}
		return false
	case c == closer && closer != 0:
		r.i++
		return false
	case c == ',':
		r.i++
		r.space(true)
	case c == '\n' || c == '/':
		r.space(true)
	default:
		r.fail()
	}
	switch {
	case r.i == len(r.src):
		if closer != 0 {
			r.fail()
		}
		return false
	case r.peek() == closer && closer != 0:
		r.i++
		return false
	}
	return true
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func isIdentByte(c byte) bool {
	return isLetter(c) || c >= '0' && c <= '9' || c == '_' || c == '$' || c == '#' || c >= utf8.RuneSelf
}

// ident reads a simple identifier: a letter, then letters, digits and _.
func (r *plainReader) ident() string {
	start := r.i
	if !isLetter(r.peek()) {
		r.fail()
	}
	for r.i < len(r.src) && isIdentByte(r.src[r.i]) {
		c := r.src[r.i]
		if c == '$' || c == '#' || c >= utf8.RuneSelf {
			r.fail()
		}
		r.i++
	}
	return r.src[start:r.i]
}

// isKeyword reports whether the identifier s is not a field name here. A
// switch, not a map: every label of a spec is asked, and hashing them
// was a tenth of the reader's time.
func isKeyword(s string) bool {
	switch s {
	case "package", "import", "for", "in", "if", "let",
		"true", "false", "null", "func", "string",
		"div", "mod", "quo", "rem":
		return true
	}
	return false
}

// file reads the file into top and returns its package name ("" for
// none).
func (r *plainReader) file(top *dval, pos *positions) string {
	r.space(true)
	pkg := ""
	if r.hasWord("package") {
		r.i += len("package")
		if c := r.peek(); c != ' ' && c != '\t' {
			r.fail()
		}
		r.space(false)
		pkg = r.ident()
		if isKeyword(pkg) {
			r.fail()
		}
		r.space(false)
		if c := r.peek(); r.i < len(r.src) && c != '\n' && c != '/' {
			r.fail()
		}
		r.space(true)
	}
	for r.i < len(r.src) {
		r.field(top, &recorder{p: pos}, true)
		if !r.sep(0) {
			break
		}
	}
	return pkg
}

// hasWord reports whether the identifier w starts at the next byte.
func (r *plainReader) hasWord(w string) bool {
	n := r.i + len(w)
	return n <= len(r.src) && r.src[r.i:n] == w && (n == len(r.src) || !isIdentByte(r.src[n]))
}

// label reads a field label: its name, or pattern for [string] and [_].
func (r *plainReader) label() (name string, at int, pattern bool) {
	at = r.i
	switch c := r.peek(); {
	case c == '"':
		name = r.str()
	case c == '[':
		switch {
		case r.hasAt("[string]"):
			r.i += len("[string]")
		case r.hasAt("[_]"):
			r.i += len("[_]")
		default:
			r.fail()
		}
		pattern = true
	default:
		name = r.ident()
		if isKeyword(name) {
			r.fail()
		}
	}
	r.space(false)
	if r.peek() != ':' {
		r.fail()
	}
	r.i++
	r.space(true)
	return name, at, pattern
}

func (r *plainReader) hasAt(s string) bool {
	return len(r.src)-r.i >= len(s) && r.src[r.i:r.i+len(s)] == s
}

// field reads one field into the struct s (addField's work), recording
// its positions as rec says; top is set for a field of the file.
func (r *plainReader) field(s *dval, rec *recorder, top bool) {
	name, at, pattern := r.label()
	if pattern {
		s.addPattern(r.value(nil, true))
		return
	}
	valueAt := r.i
	var child *recorder
	if rec != nil {
		child = rec.child(name, r, at, valueAt, top)
	}
	v := r.value(child, true)
	v.at = r.at(at)
	if prev := s.get(name); prev != nil {
		unifyData(prev, v, true)
		return
	}
	s.add(name, v)
}

// child records the field name (label at at, value at valueAt) of a
// struct whose fields rec records and returns what its value records.
func (rec *recorder) child(name string, r *plainReader, at, valueAt int, top bool) *recorder {
	p := rec.p
	switch {
	case top:
		switch name {
		case "devices":
			return &recorder{p: p, entities: p.devices}
		case "balancers":
			return &recorder{p: p, entities: p.balancers}
		case "scheduler":
			if !p.scheduler.IsValid() {
				p.scheduler = p.pos(r.at(at))
			}
			return &recorder{p: p, m: p.schedulerFields}
		}
		return nil
	case rec.entities != nil:
		e := rec.entities[name]
		if e == nil {
			e = &entityPos{pos: p.pos(r.at(at)), fields: map[string]Pos{}, p: p}
			rec.entities[name] = e
		}
		return &recorder{p: p, m: e.fields, lazy: &e.lazy}
	}
	key := name
	if rec.prefix != "" {
		key = rec.prefix + "." + name
	}
	if _, ok := rec.m[key]; !ok {
		rec.m[key] = p.pos(r.at(valueAt))
	}
	if rec.lazy != nil && lazyFields[name] {
		*rec.lazy = append(*rec.lazy, lazyField{key: key, plain: &plainLazy{r, valueAt}})
		return nil
	}
	return &recorder{p: p, m: rec.m, prefix: key}
}

// value reads a value (toData's work); chain allows the label of a
// chained field (a field's value, not a list's element).
func (r *plainReader) value(rec *recorder, chain bool) *dval {
	start := r.i
	switch c := r.peek(); {
	case c == '{':
		s, empty := r.open(dStruct, '}')
		if empty {
			return s
		}
		s.fields = r.a.fs.open()
		for {
			r.field(s, rec, false)
			if !r.sep('}') {
				break
			}
		}
		s.fields = r.a.fs.close(s.fields)
		return s
	case c == '[':
		if chain && (r.hasAt("[string]") || r.hasAt("[_]")) {
			return r.implicit(rec)
		}
		l, empty := r.open(dList, ']')
		if empty {
			l.elems = []*dval{}
			return l
		}
		l.elems = r.a.es.open()
		for n := 0; ; n++ {
			var erec *recorder
			if rec != nil && rec.m != nil {
				key := rec.prefix + "[" + strconv.Itoa(n) + "]"
				if _, ok := rec.m[key]; !ok {
					rec.m[key] = rec.p.pos(r.at(r.i))
				}
				erec = &recorder{p: rec.p, m: rec.m, prefix: key}
			}
			l.elems = append(l.elems, r.value(erec, false))
			if !r.sep(']') {
				break
			}
		}
		l.elems = r.a.es.close(l.elems)
		return l
	case c == '"':
		s := r.str()
		if chain && r.label1() {
			r.i = start
			return r.implicit(rec)
		}
		v := r.a.val()
		v.kind, v.s, v.at = dString, s, r.at(start)
		return v
	case c == '-' || c >= '0' && c <= '9':
		return r.number()
	case isLetter(c):
		w := r.ident()
		if chain && r.label1() {
			r.i = start
			return r.implicit(rec)
		}
		switch w {
		case "true", "false":
			r.end()
			v := r.a.val()
			v.kind, v.b, v.at = dBool, w == "true", r.at(start)
			return v
		}
	}
	r.fail()
	return nil
}

// open reads the bracket opening a struct or a list of kind, and the
// space after it; empty reports that its closer follows (read too).
func (r *plainReader) open(kind dkind, closer byte) (v *dval, empty bool) {
	v = r.a.val()
	v.kind, v.at, v.dagg = kind, r.at(r.i), r.a.agg()
	r.i++
	r.space(true)
	if r.peek() == closer {
		r.i++
		return v, true
	}
	return v, false
}

// label1 reports whether a label's colon follows (the value read was a
// label of a chained field).
func (r *plainReader) label1() bool {
	j := r.i
	for j < len(r.src) && (r.src[j] == ' ' || r.src[j] == '\t') {
		j++
	}
	return j < len(r.src) && r.src[j] == ':'
}

// implicit reads the struct of one field that a chained label (a: b: 1)
// makes; its position is its field's.
func (r *plainReader) implicit(rec *recorder) *dval {
	s := r.a.val()
	s.kind, s.at, s.dagg = dStruct, r.at(r.i), r.a.agg()
	s.fields = r.a.fs.cut(1)[:0]
	r.field(s, rec, false)
	return s
}

// end checks that a scalar is followed by what may follow a value.
func (r *plainReader) end() {
	if r.i == len(r.src) {
		return
	}
	switch r.src[r.i] {
	case ' ', '\t', '\n', ',', '}', ']':
		return
	case '/':
		if r.i+1 < len(r.src) && r.src[r.i+1] == '/' {
			return
		}
	}
	r.fail()
}

func (r *plainReader) digits() int {
	n := 0
	for r.i < len(r.src) && r.src[r.i] >= '0' && r.src[r.i] <= '9' {
		r.i++
		n++
	}
	return n
}

// number reads a decimal integer or float, with a leading - or not.
func (r *plainReader) number() *dval {
	start := r.i
	if r.peek() == '-' {
		r.i++
	}
	first := r.i
	if r.digits() == 0 || r.src[first] == '0' && r.i-first > 1 {
		r.fail()
	}
	float := false
	if r.peek() == '.' {
		r.i++
		if r.digits() == 0 {
			r.fail()
		}
		float = true
	}
	if c := r.peek(); c == 'e' || c == 'E' {
		r.i++
		if c := r.peek(); c == '+' || c == '-' {
			r.i++
		}
		if r.digits() == 0 {
			r.fail()
		}
		float = true
	}
	r.end()
	text := r.src[start:r.i]
	v := r.a.val()
	v.s, v.at = text, r.at(start)
	var err error
	if float {
		var f float64
		f, err = strconv.ParseFloat(text, 64)
		v.setFloat(f, text)
	} else {
		v.kind = dInt
		v.i, err = strconv.ParseInt(text, 10, 64)
	}
	if err != nil {
		r.fail()
	}
	return v
}

// str reads a double-quoted string on one line: printable ASCII, tabs,
// valid UTF-8, and the escapes \" \\ \/ \n \t \r.
func (r *plainReader) str() string {
	start := r.i
	r.i++
	if r.hasAt(`""`) {
		r.fail() // """ multi-line
	}
	plain := true
	for {
		if r.i >= len(r.src) {
			r.fail()
		}
		c := r.src[r.i]
		switch {
		case c == '"':
			r.i++
			if plain {
				return r.src[start+1 : r.i-1]
			}
			lit := r.src[start:r.i]
			r.checkUTF8(lit)
			s, err := literal.Unquote(lit)
			if err != nil {
				r.fail()
			}
			return s
		case c == '\\':
			if r.i+1 >= len(r.src) {
				r.fail()
			}
			switch r.src[r.i+1] {
			case '"', '\\', '/', 'n', 't', 'r':
			default:
				r.fail()
			}
			plain = false
			r.i += 2
		case c == '\t':
			plain = false
			r.i++
		case c < 0x20 || c == 0x7f:
			r.fail()
		default:
			if c >= utf8.RuneSelf {
				plain = false
			}
			r.i++
		}
	}
}

// plainInstance finishes p from the files srcs read as plain data (see
// plainFiles) when takeData takes them; false leaves p as it was, to CUE's
// parser and the other paths.
func (l Limits) plainInstance(c *compiled, p *Partial, srcs []source) bool {
	pos := newPositions(relName)
	data, ok := plainFiles(srcs, pos)
	if !ok {
		return false
	}
	files := make([]string, len(srcs))
	for i, s := range srcs {
		files[i] = s.name
	}
	p.Files = files
	if !l.takeData(c, p, data, pos, Pos{File: files[0], Line: 1, Col: 1}, func() {}) {
		p.Files = nil
		return false
	}
	return true
}

// takeData finishes p from concrete data when it is over the count limits
// (diagnostics) or the generated validator accepts it (decoded); false
// leaves p to CUE's evaluator with the schema. record fills pos with the
// positions of the data's files, when needed.
func (l Limits) takeData(c *compiled, p *Partial, data *dval, pos *positions, first Pos, record func()) bool {
	if ds := l.countData(data, first); len(ds) > 0 {
		p.Diagnostics = ds
		return true
	}
	if ok, _ := c.validator.check(data); !ok {
		return false
	}
	record()
	decode(c, p, data, nil, pos, first)
	p.Diagnostics = p.Diagnostics.sorted()
	return true
}
