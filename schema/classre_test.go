package schema

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

// schemaMatchers returns the regular expressions of the validator.
func schemaMatchers(t *testing.T) []matcher {
	c, err := loadSchema()
	if err != nil {
		t.Fatal(err)
	}
	var out []matcher
	seen := map[*vnode]bool{}
	var walk func(n *vnode)
	walk = func(n *vnode) {
		if n == nil || seen[n] {
			return
		}
		seen[n] = true
		out = append(out, n.regexes...)
		out = append(out, n.notRegex...)
		for _, f := range n.fields {
			walk(f.node)
		}
		walk(n.pattern)
		walk(n.elem)
	}
	walk(c.validator)
	return out
}

// TestMatcherAgreesWithRegexp: every regular expression of the schema,
// and some that must not take the byte path, match exactly the strings
// regexp matches, over strings built of the bytes at the edges of their
// sets and random ones.
func TestMatcherAgreesWithRegexp(t *testing.T) {
	ms := schemaMatchers(t)
	fast := 0
	for _, m := range ms {
		if m.seq != nil {
			fast++
		}
	}
	if fast == 0 {
		t.Fatal("no regular expression of the schema takes the byte path")
	}
	t.Logf("%d of %d regular expressions of the schema take the byte path", fast, len(ms))
	for _, expr := range []string{
		`^[a-z]*[a-z]$`, `^a{2,3}a$`, `^[a-z]+-?[a-z]*$`, `^[0-9]{1,3}(\.[0-9]{1,3}){3}$`,
		`^ab+c?$`, `^(?i)[a-z]+$`, `^[^a-z]{0,3}$`, `^é+$`, `^abc[x-z]{2,}$`, `^[a-c]*d[a-c]*$`,
		`^[a-c]?[b-d]$`, `^x*$`, `[a-z]+`, `^[a-z]+`, `^$`,
	} {
		ms = append(ms, newMatcher(regexp.MustCompile(expr)))
	}
	for _, m := range []string{`^[a-z]*[a-z]$`, `^a{2,3}a$`, `^(?i)[a-z]+$`, `^[^a-z]{0,3}$`, `^é+$`, `[a-z]+`, `^[a-c]?[b-d]$`} {
		if newMatcher(regexp.MustCompile(m)).seq != nil {
			t.Errorf("%s takes the byte path", m)
		}
	}
	r := rand.New(rand.NewPCG(3, 4))
	for _, m := range ms {
		// The bytes the expression names, their neighbours, and others.
		var alpha []byte
		for _, c := range []byte(m.String()) {
			alpha = append(alpha, c, c-1, c+1)
		}
		alpha = append(alpha, 0, ' ', '\n', 0x7f, 0x80, 0xc3, 0xa9, 0xff, 'a', 'Z', '0', '9', '/', '.', '-', '_')
		for k := 0; k < 3000; k++ {
			var b strings.Builder
			n := r.IntN(12)
			if r.IntN(10) == 0 {
				n = r.IntN(1100)
			}
			for i := 0; i < n; i++ {
				b.WriteByte(alpha[r.IntN(len(alpha))])
			}
			s := b.String()
			if m.seq != nil && k%2 == 0 {
				s = nearMatch(r, m.seq, alpha)
			}
			if got, want := m.MatchString(s), m.Regexp.MatchString(s); got != want {
				t.Fatalf("%s on %q: %v, regexp says %v", m, s, got, want)
			}
		}
	}
}

// nearMatch builds a string run by run, of lengths around each run's
// bounds, of bytes of its set but now and then one of alpha.
func nearMatch(r *rand.Rand, seq []classRun, alpha []byte) string {
	var b strings.Builder
	for _, run := range seq {
		var in []byte
		for c := range 256 {
			if run.set[c] {
				in = append(in, byte(c))
			}
		}
		hi := run.max
		if hi < 0 || hi > run.min+20 {
			hi = run.min + 20
		}
		n := run.min - 1 + r.IntN(hi-run.min+3)
		for i := 0; i < n; i++ {
			if len(in) == 0 || r.IntN(50) == 0 {
				b.WriteByte(alpha[r.IntN(len(alpha))])
				continue
			}
			b.WriteByte(in[r.IntN(len(in))])
		}
	}
	return b.String()
}
