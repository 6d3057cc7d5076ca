package compiler

import (
	"strings"
	"testing"
)

func TestLockRoundTrip(t *testing.T) {
	l := Lock{
		"shop-web": {Balancer: "shop-web", Primary: "lb-a1"},
		"shop-api": {Balancer: "shop-api", Primary: "lb-a2", Standby: "lb-b1"},
		"a.b_c-d":  {Balancer: "a.b_c-d", Primary: "0lb"},
	}
	data := l.Marshal()
	want := lockHeader + "a.b_c-d 0lb\nshop-api lb-a2 lb-b1\nshop-web lb-a1\n"
	if string(data) != want {
		t.Errorf("Marshal:\n%s\nwant:\n%s", data, want)
	}
	if strings.Count(lockHeader, "\n") != 1 || !strings.HasPrefix(lockHeader, "# lbc placement lock: ") {
		t.Errorf("header is not one comment line: %q", lockHeader)
	}
	got, err := ParseLock(data)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(l) || len(got) != 3 || got["shop-api"] != l["shop-api"] {
		t.Errorf("round trip: %v", got)
	}
	if string(Lock(nil).Marshal()) != lockHeader {
		t.Errorf("empty lock: %q", Lock(nil).Marshal())
	}
}

func TestParseLockLenient(t *testing.T) {
	l, err := ParseLock([]byte("# comment\n\n  \nb lb-2\r\na\tlb-1   lb-3\n   # indented comment\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Lock{"a": {"a", "lb-1", "lb-3"}, "b": {"b", "lb-2", ""}}
	if !l.Equal(want) || l["a"].Balancer != "a" {
		t.Errorf("got %v", l)
	}
	if l, err := ParseLock(nil); err != nil || len(l) != 0 {
		t.Errorf("empty: %v %v", l, err)
	}
}

func TestParseLockErrors(t *testing.T) {
	for _, c := range []struct{ in, err string }{
		{"a lb-1\nb\n", "line 2: want \"<balancer> <primary> [<standby>]\", got 1 fields"},
		{"a lb-1 lb-2 lb-3\n", "line 1: want \"<balancer> <primary> [<standby>]\", got 4 fields"},
		{"a lb-1\na lb-2\n", "line 2: balancer a already placed on line 1"},
		{"A lb-1\n", `line 1: invalid balancer name "A"`},
		{"a -lb\n", `line 1: invalid primary device name "-lb"`},
		{"a lb-1 lb/2\n", `line 1: invalid standby device name "lb/2"`},
		{"a lb-1 lb-1\n", "line 1: a: standby is the primary lb-1"},
		{"a lb-1\x00\n", `line 1: control character '\x00'`},
		{"a\vlb-1\n", `line 1: control character '\v'`},
		{"a " + strings.Repeat("x", 64) + "\n", "line 1: invalid primary device name"},
	} {
		_, err := ParseLock([]byte(c.in))
		if err == nil || !strings.HasPrefix(err.Error(), c.err) {
			t.Errorf("ParseLock(%q) = %v, want %q", c.in, err, c.err)
		}
	}
}

func TestLockEqual(t *testing.T) {
	a := Lock{"x": {"x", "lb-1", ""}}
	for _, c := range []struct {
		a, b Lock
		eq   bool
	}{
		{nil, Lock{}, true},
		{a, Lock{"x": {"", "lb-1", ""}}, true}, // the Balancer field is the key's copy
		{a, Lock{"x": {"x", "lb-2", ""}}, false},
		{a, Lock{"x": {"x", "lb-1", "lb-2"}}, false},
		{a, Lock{"y": {"y", "lb-1", ""}}, false},
		{a, nil, false},
	} {
		if c.a.Equal(c.b) != c.eq || c.b.Equal(c.a) != c.eq {
			t.Errorf("%v.Equal(%v) != %v", c.a, c.b, c.eq)
		}
	}
}

func TestDiffLocks(t *testing.T) {
	old := Lock{
		"shop-web": {"shop-web", "lb-a1", ""},
		"same":     {"same", "lb-a1", ""},
		"gone":     {"gone", "lb-b1", ""},
		"pair":     {"pair", "lb-a1", "lb-b1"},
	}
	new := Lock{
		"shop-web": {"shop-web", "lb-b2", ""},
		"same":     {"same", "lb-a1", ""},
		"added":    {"added", "lb-c1", ""},
		"pair":     {"pair", "lb-a1", "lb-c1"},
	}
	got := strings.Join(DiffLocks(old, new), "\n")
	want := "added: new on lb-c1\ngone: removed from lb-b1\npair: lb-a1 (standby lb-b1) -> lb-a1 (standby lb-c1)\nshop-web: lb-a1 -> lb-b2"
	if got != want {
		t.Errorf("DiffLocks:\n%s\nwant:\n%s", got, want)
	}
	if d := DiffLocks(old, old); len(d) != 0 {
		t.Errorf("no change: %v", d)
	}
}

func FuzzParseLock(f *testing.F) {
	f.Add([]byte("# c\na lb-1\nb lb-2 lb-3\n"))
	f.Add([]byte("a lb-1 lb-1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := ParseLock(data)
		if err != nil {
			return
		}
		// What parses marshals to a file that parses to the same lock.
		l2, err := ParseLock(l.Marshal())
		if err != nil || !l.Equal(l2) {
			t.Fatalf("round trip of %q: %v %v", data, l2, err)
		}
	})
}
