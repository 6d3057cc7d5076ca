package schema

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"sync"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/cuecontext"
	"cuelang.org/go/cue/parser"
	"cuelang.org/go/cue/token"
)

//go:embed schema.cue
var schemaSource string

// schemaFile is the file name CUE positions carry for the embedded schema;
// it cannot clash with a spec file, whose names are relative paths.
const schemaFile = "lbc:schema.cue"

// Source returns the text of the embedded CUE schema.
func Source() string { return schemaSource }

// compiled is the schema compiled once, with what the error conversion
// needs to know about it.
type compiled struct {
	value cue.Value // #Spec as evaluated, in its own context

	// defaults holds the positions of default values (X in *X | Y). A CUE
	// error that points at one is the losing side of a disjunction, always
	// reported beside the real error, so it is dropped.
	defaults [][2]int // byte offsets [start, end) in the schema file
	// regexes maps each regular expression of the schema to what it means,
	// for readable messages.
	regexes map[string]string
	// Templates: the defaults of the schema, filled in after validation.
	device   rawDevice
	balancer rawBalancer
	node     rawNode
	pool     rawPool
	tls      rawTLS
	nodeTLS  rawNodeTLS
	cookie   string
	// redirectCode is #Redirect's default code.
	redirectCode int
	scheduler    rawScheduler

	// shape is the CUE source of the fields unification with #Spec adds
	// (see vnode.shape); an instance evaluated alone is unified with it
	// (see shapeFile).
	shape string

	// validator checks plain data against #Spec in Go (the fast path).
	validator *vnode
	valMu     sync.Mutex // guards the CUE values the validator asks
}

var (
	schemaOnce sync.Once
	theSchema  *compiled
	schemaErr  error
)

func loadSchema() (*compiled, error) {
	schemaOnce.Do(func() { theSchema, schemaErr = compileSchema() })
	return theSchema, schemaErr
}

func compileSchema() (*compiled, error) {
	// The schema as written, with its defaults: the source of the templates.
	orig, err := parser.ParseFile(schemaFile, schemaSource)
	if err != nil {
		return nil, fmt.Errorf("parse embedded schema: %w", err)
	}
	c := &compiled{regexes: map[string]string{}}
	check := c.checkFile(true)
	ctx := cuecontext.New()
	v := ctx.BuildFile(orig)
	if err := v.Err(); err != nil {
		return nil, fmt.Errorf("compile embedded schema: %w", err)
	}
	cv := ctx.BuildFile(check)
	c.value = cv.LookupPath(cue.ParsePath("#Spec"))
	if err := cv.Err(); err != nil {
		return nil, fmt.Errorf("compile embedded schema: %w", err)
	}
	for name, desc := range regexNames {
		src, ok := regexOf(v.LookupPath(cue.ParsePath(name)))
		if !ok {
			return nil, fmt.Errorf("embedded schema: %s is not a regular expression", name)
		}
		c.regexes[src] = desc
	}
	// Templates: each definition with its defaults, required fields stubbed.
	tmpl := func(def, stub string, dst any) error {
		x := v.LookupPath(cue.ParsePath(def)).Unify(ctx.CompileString(stub))
		b, err := x.MarshalJSON()
		if err == nil {
			err = json.Unmarshal(b, dst)
		}
		if err != nil {
			return fmt.Errorf("embedded schema: defaults of %s: %w", def, err)
		}
		return nil
	}
	var node rawBalancer
	var pers rawPersistence
	var redirect struct {
		Code int `json:"code"`
	}
	for _, t := range []struct {
		def, stub string
		dst       any
	}{
		{"#Device", `{address: "x"}`, &c.device},
		{"#Balancer", `{vips: [], nodes: []}`, &c.balancer},
		{"#Balancer", `{vips: [], nodes: [{address: "::1", port: 1}]}`, &node},
		{"#Persistence", `{type: "cookie"}`, &pers},
		{"#Pool", `{nodes: []}`, &c.pool},
		{"#TLS", `{certificates: []}`, &c.tls},
		{"#NodeTLS", `{}`, &c.nodeTLS},
		{"#Redirect", `{}`, &redirect},
		{"#Scheduler", `{}`, &c.scheduler},
	} {
		if err := tmpl(t.def, t.stub, t.dst); err != nil {
			return nil, err
		}
	}
	// The validator, generated from the schema as evaluated, in a context
	// of its own.
	vctx := cuecontext.New()
	vs := vctx.BuildFile(c.checkFile(false)).LookupPath(cue.ParsePath("#Spec"))
	if err := vs.Err(); err != nil {
		return nil, fmt.Errorf("compile embedded schema: %w", err)
	}
	c.validator = newValidator(vs, &c.valMu, 0)
	var shape strings.Builder
	c.validator.shape(&shape)
	c.shape = shape.String()
	c.node = node.Nodes[0]
	// A list field of the schema is always present in a unified CUE value,
	// and the decoder reads an empty one as nil: the templates hold nil too,
	// so that data the fast path decodes without the field reads the same.
	nilEmptySlices(reflect.ValueOf(&c.device).Elem())
	nilEmptySlices(reflect.ValueOf(&c.balancer).Elem())
	nilEmptySlices(reflect.ValueOf(&c.node).Elem())
	c.cookie = pers.Cookie
	c.redirectCode = redirect.Code
	nilEmptySlices(reflect.ValueOf(&c.pool).Elem())
	return c, nil
}

// nilEmptySlices sets the empty slices in the struct v, recursively, to nil.
func nilEmptySlices(v reflect.Value) {
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.Slice:
			if f.CanSet() && f.Len() == 0 {
				f.Set(reflect.Zero(f.Type()))
			}
		case reflect.Struct:
			nilEmptySlices(f)
		}
	}
}

// checkFile returns the schema as evaluated: every "f: *D | T" turned into
// "f?: T". Each CUE context needs its own syntax tree (building one
// resolves identifiers in place), so every call parses afresh; it costs
// about as much as parsing one small spec file.
func (c *compiled) checkFile(record bool) *ast.File {
	f, err := parser.ParseFile(schemaFile, schemaSource)
	if err != nil {
		panic(err) // parsed without error once in compileSchema
	}
	ast.Walk(f, func(n ast.Node) bool {
		fd, ok := n.(*ast.Field)
		if !ok {
			return true
		}
		if or, ok := fd.Value.(*ast.BinaryExpr); ok && or.Op == token.OR {
			if def, ok := or.X.(*ast.UnaryExpr); ok && def.Op == token.MUL {
				if record {
					c.defaults = append(c.defaults, [2]int{def.X.Pos().Offset(), def.X.End().Offset()})
				}
				fd.Value = or.Y
				fd.Constraint = token.OPTION
			}
		}
		return true
	}, nil)
	return f
}

// inDefault reports whether p lies inside a default value of the schema.
func (c *compiled) inDefault(p token.Pos) bool {
	if p.Filename() != schemaFile {
		return false
	}
	o := p.Offset()
	for _, d := range c.defaults {
		if o >= d[0] && o < d[1] {
			return true
		}
	}
	return false
}

// regexOf returns the pattern of a value of the form =~"...".
func regexOf(v cue.Value) (string, bool) {
	op, args := v.Expr()
	if op != cue.RegexMatchOp || len(args) != 1 {
		return "", false
	}
	s, err := args[0].String()
	return s, err == nil
}

// regexNames describes the named patterns of the schema; a value that fails
// one gets this text instead of the bare regular expression.
var regexNames = map[string]string{
	"#Name":       "must be a name: 1 to 63 of a-z 0-9 . _ - starting with a letter or digit",
	"#Label":      "must be a label: 1 to 63 of A-Z a-z 0-9 . _ : - starting with a letter or digit",
	"#Host":       "must be an IP address or a DNS name",
	"#IP":         "must be an IPv4 or IPv6 address",
	"#Path":       "must be an absolute path of " + pathCharsText,
	"#Command":    "must be a command of words separated by single spaces, without quotes, backslash, $, #, tabs or control characters",
	"#Interface":  "must be an interface name: 1 to 15 of A-Z a-z 0-9 . _ - starting with a letter or digit",
	"#HTTPPath":   "must be an HTTP path starting with /, without spaces, quotes, backslash, $, # or control characters",
	"#Duration":   `must be a duration such as "2s", "500ms" or "1m30s"`,
	"#User":       "must be a user name: 1 to 32 of a-z 0-9 _ - starting with a letter or _",
	"#Cookie":     "must be a cookie name: 1 to 64 of A-Z a-z 0-9 . _ -",
	"#Prefix":     `must be an IP prefix such as "203.0.113.0/24"`,
	"#MatchValue": "must be 1 to 512 printable ASCII characters without spaces, quotes, backslash, $ or #",
	"#MatchRegex": "must be a regular expression of 1 to 256 printable ASCII characters without spaces, quotes, backslash, $ or #",
	"#Token":      "must be a header or cookie name: 1 to 64 of A-Z a-z 0-9 . _ - starting with a letter or digit",
	"#FileType":   "must be a file extension: 1 to 16 of A-Z a-z 0-9, without the dot",
	"#HostName":   "must be a host name in lower case: a-z 0-9 . -",
	"#CertName":   "must be a certificate name: 1 to 64 of A-Z a-z 0-9 _ - starting with a letter or digit (a reference into the certificate source, not PEM text)",
	"#URL":        "must be an http(s) URL or an absolute path, without spaces, quotes, backslash, $, # or %",
}

// enumRE matches the schema's enumerations, written as =~"^(a|b|c)$".
var enumRE = regexp.MustCompile(`^\^\(([A-Za-z0-9|-]+)\)\$$`)

// describeRegex says what a value failing the pattern re must look like.
func (c *compiled) describeRegex(re string) string {
	if d, ok := c.regexes[re]; ok {
		return d
	}
	if m := enumRE.FindStringSubmatch(re); m != nil {
		return "must be one of " + strings.ReplaceAll(m[1], "|", ", ")
	}
	return "must match " + re
}

// shapeFile is the shape (see vnode.shape) as a file of an instance: its
// fields, without a package clause, with every position removed, so that
// the position CUE gives a value of the instance is where the spec files
// write it (cue's Value.Pos takes the last conjunct with a valid
// position), never the shape's.
func (c *compiled) shapeFile() *ast.File {
	x, err := parser.ParseExpr(schemaFile, c.shape)
	s, ok := x.(*ast.StructLit)
	if err != nil || !ok {
		panic(fmt.Sprintf("embedded schema: shape: %v", err)) // generated from the schema: a bug
	}
	f := &ast.File{Filename: schemaFile}
	for _, d := range s.Elts {
		if _, ok := d.(*ast.Ellipsis); !ok { // a file is open
			f.Decls = append(f.Decls, d)
		}
	}
	ast.Walk(f, nil, func(n ast.Node) { ast.SetPos(n, token.NoPos) })
	return f
}
