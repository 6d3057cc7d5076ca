package schema

import (
	"regexp"
	"regexp/syntax"
)

// matcher is a regular expression of the schema. Most of them are a run
// of ASCII character classes anchored at both ends (#Name, #Path,
// #MatchValue...), which it matches byte by byte without regexp's machine:
// the validator checks every string of a spec, and ten L7 rules per
// balancer double them. Any other expression goes to regexp, through a
// memo of its answers (durations and redirect locations repeat across
// balancers).
type matcher struct {
	*regexp.Regexp
	seq  []classRun // nil: not of that shape
	memo func(string) bool
}

// maxMemoBytes is the longest string whose match is remembered.
const maxMemoBytes = 256

// classRun is min to max bytes of one ASCII set.
type classRun struct {
	set      *[256]bool
	min, max int // max -1: no limit
}

func newMatcher(re *regexp.Regexp) matcher {
	m := matcher{Regexp: re, seq: classRuns(re.String())}
	if m.seq == nil {
		m.memo = memoAllows(re.MatchString)
	}
	return m
}

// MatchString reports whether s matches, as regexp does.
func (m matcher) MatchString(s string) bool {
	if m.seq == nil {
		if len(s) > maxMemoBytes {
			return m.Regexp.MatchString(s)
		}
		return m.memo(s)
	}
	i := 0
	for _, r := range m.seq {
		n := 0
		for i < len(s) && (r.max < 0 || n < r.max) && r.set[s[i]] {
			i++
			n++
		}
		if n < r.min {
			return false
		}
	}
	return i == len(s)
}

// classRuns returns the runs of expr when it is ^run run ... run$ with
// ASCII sets, none of whose open-ended runs can give a byte back to the
// runs after it (its set and theirs up to the next required run are
// disjoint), so that taking each run greedily decides the match; else nil.
func classRuns(expr string) []classRun {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil || re.Op != syntax.OpConcat || len(re.Sub) < 2 ||
		re.Sub[0].Op != syntax.OpBeginText || re.Sub[len(re.Sub)-1].Op != syntax.OpEndText {
		return nil
	}
	var seq []classRun
	for _, x := range re.Sub[1 : len(re.Sub)-1] {
		r := classRun{min: 1, max: 1}
		switch x.Op {
		case syntax.OpRepeat:
			r.min, r.max = x.Min, x.Max
			x = x.Sub[0]
		case syntax.OpStar:
			r.min, r.max = 0, -1
			x = x.Sub[0]
		case syntax.OpPlus:
			r.min, r.max = 1, -1
			x = x.Sub[0]
		case syntax.OpQuest:
			r.min, r.max = 0, 1
			x = x.Sub[0]
		}
		if x.Flags&syntax.FoldCase != 0 {
			return nil
		}
		set := &[256]bool{}
		switch x.Op {
		case syntax.OpLiteral:
			for _, c := range x.Rune {
				if c >= 0x80 {
					return nil
				}
			}
			if len(x.Rune) > 1 {
				// A literal string: one run per byte.
				if r.min != 1 || r.max != 1 {
					return nil
				}
				for _, c := range x.Rune {
					one := &[256]bool{}
					one[c] = true
					seq = append(seq, classRun{set: one, min: 1, max: 1})
				}
				continue
			}
			set[x.Rune[0]] = true
		case syntax.OpCharClass:
			for i := 0; i+1 < len(x.Rune); i += 2 {
				lo, hi := x.Rune[i], x.Rune[i+1]
				if hi >= 0x80 {
					return nil
				}
				for c := lo; c <= hi; c++ {
					set[c] = true
				}
			}
		default:
			return nil
		}
		r.set = set
		seq = append(seq, r)
	}
	for i, r := range seq {
		if r.min == r.max {
			continue
		}
		for _, next := range seq[i+1:] {
			for c := range 256 {
				if r.set[c] && next.set[c] {
					return nil
				}
			}
			if next.min > 0 {
				break
			}
		}
	}
	return seq
}
