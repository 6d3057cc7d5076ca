package compiler

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"lbc/schema"
)

// scShare adds a VIP on address a (port 443) to a balancer.
func scShare(a string) func(*schema.Balancer) {
	return func(b *schema.Balancer) {
		b.VIPs = append(b.VIPs, schema.VIP{Address: netip.MustParseAddr(a), Port: 443})
	}
}

func TestGroupPlacedTogether(t *testing.T) {
	// a-web and a-tls share .10; a-tls and a-api share .20 (a chain): one
	// group of three. lb-1 and lb-2 hold two balancers, lb-3 three.
	s := scSpec(
		[]*schema.Device{scDev("lb-1", "z", scCap(2, 0)), scDev("lb-2", "z", scCap(2, 0)), scDev("lb-3", "z", scCap(3, 0))},
		[]*schema.Balancer{
			scLB("a-web", "t", "203.0.113.10", 0),
			scLB("a-tls", "t", "203.0.113.20", 0, scShare("203.0.113.10")),
			scLB("a-api", "u", "203.0.113.21", 0, scShare("203.0.113.20")),
			scLB("b-other", "t", "203.0.113.30", 0),
		})
	l, st := scMustSchedule(t, s, nil)
	for _, n := range []string{"a-web", "a-tls", "a-api"} {
		if l[n].Primary != "lb-3" {
			t.Errorf("%s on %s, want lb-3 (the only device with room for the group of 3)", n, l[n].Primary)
		}
	}
	if l["b-other"].Primary != "lb-1" {
		t.Errorf("b-other on %s, want lb-1", l["b-other"].Primary)
	}
	if st.New != 4 {
		t.Errorf("stats %+v", st)
	}
	// No room for the whole group anywhere: one error for the group.
	s.Devices["lb-3"].Capacity.Balancers = 2
	_, _, err := Schedule(s, nil)
	scAssertUnplaceable(t, err, "a-api", map[string]int{"capacity": 3})
	want := "balancers/u/b.cue:3:12: balancers.\"a-api\": 0/3 devices fit a-api, a-tls and a-web (together: they share 203.0.113.10, 203.0.113.20): 3 capacity"
	if err.Error() != want {
		t.Errorf("error:\n%s\nwant:\n%s", err, want)
	}
}

func TestGroupFiltersEveryMember(t *testing.T) {
	s := scSpec(
		[]*schema.Device{
			scDev("lb-a1", "az-a", scTags("public")),
			scDev("lb-b1", "az-b", scTags("public"), scNets("198.51.100.0/24")),
			scDev("lb-b2", "az-b", scTags("public")),
			scDev("lb-c1", "az-c"),
		},
		[]*schema.Balancer{
			scLB("x1", "t", "203.0.113.10", 0, scZones("az-a", "az-b")),
			scLB("x2", "t", "203.0.113.11", 0, scZones("az-b", "az-c"), scShare("203.0.113.10")),
			scLB("x3", "t", "203.0.113.12", 0, scWant("public"), scShare("203.0.113.10")),
		})
	l, _ := scMustSchedule(t, s, nil)
	// Zones: az-b only; tags: public; vipNetwork: lb-b1 lacks 203.0.113.0/24.
	for _, n := range []string{"x1", "x2", "x3"} {
		if l[n].Primary != "lb-b2" {
			t.Errorf("%s on %s, want lb-b2", n, l[n].Primary)
		}
	}
	// Pins: one member pinned pulls the group; two different pins fail.
	s.Balancers["x1"].Placement.Zones = nil
	s.Balancers["x2"].Placement.Zones = nil
	s.Balancers["x3"].Placement.Device = "lb-a1"
	if l, _ := scMustSchedule(t, s, nil); l["x1"].Primary != "lb-a1" || l["x2"].Primary != "lb-a1" {
		t.Errorf("pinned member: %v", l)
	}
	s.Balancers["x1"].Placement.Device = "lb-b2"
	_, _, err := Schedule(s, nil)
	scAssertUnplaceable(t, err, "x1", map[string]int{"device": 4})
	if !strings.Contains(err.Error(), "placement.device pins x1 on lb-b2 and x3 on lb-a1") {
		t.Errorf("error %q does not name the pins", err)
	}
}

func TestGroupHA(t *testing.T) {
	s := scSpec(
		[]*schema.Device{scDev("lb-a1", "az-a"), scDev("lb-a2", "az-a"), scDev("lb-b1", "az-b"), scDev("lb-b2", "az-b")},
		[]*schema.Balancer{
			scLB("h1", "t", "203.0.113.10", 0, scHA, scZones("az-b", "az-a")),
			scLB("h2", "t", "203.0.113.11", 0, scHA, scShare("203.0.113.10")),
			scLB("a0", "t", "203.0.113.1", 0, scPin("lb-b1")),
		})
	l, _ := scMustSchedule(t, s, nil)
	if l["h1"] != (Placement{"h1", "lb-b2", "lb-a1"}) || l["h2"] != (Placement{"h2", "lb-b2", "lb-a1"}) {
		t.Errorf("HA group: %v", l)
	}
	// Disagreement on HA: one positioned error per shared address.
	s.Balancers["h2"].Placement.HA = false
	s.Balancers["h1"].FieldPos = map[string]schema.Pos{"placement.ha": {File: "balancers/t/h1.cue", Line: 9, Col: 22}}
	_, _, err := Schedule(s, nil)
	var se *SharedAddressError
	if !errors.As(err, &se) {
		t.Fatalf("error %v, want *SharedAddressError", err)
	}
	want := "balancers/t/h1.cue:9:22: balancers.h1.placement.ha: h1 and h2 share 203.0.113.10, but only h1 is HA: " +
		"balancers sharing an address run on one device or one HA pair, so all of them or none must set placement.ha"
	if err.Error() != want {
		t.Errorf("error:\n%s\nwant:\n%s", err, want)
	}
	if _, err := Compile(s, nil, Options{}); err == nil || err.Error() != want {
		t.Errorf("Compile error:\n%v\nwant:\n%s", err, want)
	}
}

func TestGroupStability(t *testing.T) {
	s := scSpec(
		[]*schema.Device{scDev("lb-1", "z", scCap(3, 0)), scDev("lb-2", "z", scCap(3, 0)), scDev("lb-3", "z", scCap(3, 0))},
		[]*schema.Balancer{
			scLB("g1", "t", "203.0.113.10", 0),
			scLB("g2", "t", "203.0.113.11", 0, scShare("203.0.113.10")),
			scLB("o1", "t", "203.0.113.20", 0),
		})
	// The lock has the group on the busiest device: it stays.
	prev := Lock{"g1": {"g1", "lb-3", ""}, "g2": {"g2", "lb-3", ""}, "o1": {"o1", "lb-3", ""}}
	l, st := scMustSchedule(t, s, prev)
	if !l.Equal(prev) || st.Kept != 3 {
		t.Fatalf("kept group moved: %v", DiffLocks(prev, l))
	}
	// A new member joins the group where it is, when it fits (lb-3: 3/3
	// balancers after o1 is gone).
	delete(s.Balancers, "o1")
	delete(prev, "o1")
	s.Balancers["g3"] = scLB("g3", "t", "203.0.113.12", 0, scShare("203.0.113.11"))
	l, st = scMustSchedule(t, s, prev)
	if l["g3"].Primary != "lb-3" || l["g1"].Primary != "lb-3" || st != (Stats{New: 1, Kept: 2}) {
		t.Errorf("join: %v %+v", l, st)
	}
	// ... and is refused, naming why, when it does not: the group stays.
	s.Balancers["g4"] = scLB("g4", "t", "203.0.113.13", 0, scShare("203.0.113.10"))
	_, _, err := Schedule(s, prev)
	scAssertUnplaceable(t, err, "g4", map[string]int{"capacity": 1, "group": 2})
	want := "balancers/t/b.cue:3:12: balancers.g4: g4 shares 203.0.113.10 with g1, g2 and g3, kept on lb-3, but does not fit lb-3: capacity: full: 3/3 balancers"
	if err == nil || err.Error() != want {
		t.Errorf("error:\n%v\nwant:\n%s", err, want)
	}
	delete(s.Balancers, "g4")
	// A lock that split the group (the balancers did not share an address
	// then): the group stays where most of its members were.
	prev = Lock{"g1": {"g1", "lb-1", ""}, "g2": {"g2", "lb-2", ""}, "g3": {"g3", "lb-2", ""}}
	l, st = scMustSchedule(t, s, prev)
	if l["g1"].Primary != "lb-2" || l["g2"].Primary != "lb-2" || l["g3"].Primary != "lb-2" || st != (Stats{Kept: 2, Moved: 1}) {
		t.Errorf("split lock: %v %+v", l, st)
	}
	// The lock's device is too small now: the whole group moves.
	s.Devices["lb-2"].Capacity.Balancers = 2
	l, _ = scMustSchedule(t, s, prev)
	if p := l["g1"].Primary; p == "lb-2" || l["g2"].Primary != p || l["g3"].Primary != p {
		t.Errorf("group on a shrunk device: %v", l)
	}
}

func TestExplainGroup(t *testing.T) {
	s := scSpec(
		[]*schema.Device{scDev("lb-1", "z"), scDev("lb-2", "z")},
		[]*schema.Balancer{
			scLB("shop-web", "shop", "203.0.113.10", 0),
			scLB("shop-web-https", "shop", "203.0.113.11", 0, scShare("203.0.113.10")),
			scLB("shop-admin", "shop", "203.0.113.12", 0, scShare("203.0.113.11")),
			scLB("a-first", "x", "203.0.113.1", 0),
		})
	e, err := Explain(s, nil, "shop-web")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := e.Write(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, w := range []string{
		"placed with shop-admin: shares 203.0.113.11 with shop-web-https\n",
		"placed with shop-web-https: shares 203.0.113.10\n",
		"result: lb-2\n",
		"device: lb-2 (decided together with shop-admin and shop-web-https)\n",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("explanation lacks %q:\n%s", w, out)
		}
	}
	l, _ := scMustSchedule(t, s, nil)
	if l["shop-web"].Primary != e.Placement.Primary {
		t.Errorf("explain says %s, schedule %s", e.Placement.Primary, l["shop-web"].Primary)
	}
	// A member joining a kept group is explained as such.
	s.Balancers["shop-api"] = scLB("shop-api", "shop", "203.0.113.13", 0, scShare("203.0.113.10"))
	e, err = Explain(s, l, "shop-api")
	if err != nil {
		t.Fatal(err)
	}
	b.Reset()
	e.Write(&b)
	if !strings.Contains(b.String(), "device: lb-2, with its group\n") || e.Placement.Primary != "lb-2" ||
		!strings.Contains(b.String(), "reject: group: its group stays on lb-2") {
		t.Errorf("join explanation:\n%s", b.String())
	}
}
