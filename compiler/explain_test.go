package compiler

import (
	"bytes"
	"errors"
	"go/parser"
	"go/token"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"lbc/schema"
)

func explainSpec() *schema.Spec {
	return scSpec(
		[]*schema.Device{
			scDev("lb-a1", "az-a", scCap(2, 0)), scDev("lb-a2", "az-a", scCap(0, 10000)),
			scDev("lb-b1", "az-b", scNets("198.51.100.0/24")), scDev("lb-c1", "az-c"),
		},
		[]*schema.Balancer{
			scLB("a1", "shop", "203.0.113.1", 1000),
			scLB("a2", "shop", "203.0.113.2", 1000),
			scLB("shop-web", "shop", "203.0.113.10", 500, scHA, scZones("az-a", "az-b", "az-c")),
			scLB("z9", "shop", "203.0.113.11", 500),
		})
}

func TestExplainHA(t *testing.T) {
	s := explainSpec()
	l, _ := scMustSchedule(t, s, nil)
	e, err := Explain(s, nil, "shop-web")
	if err != nil {
		t.Fatal(err)
	}
	if e.Placement != l["shop-web"] || e.Kept || e.Err != nil {
		t.Fatalf("explained %+v, scheduled %+v", e.Placement, l["shop-web"])
	}
	if len(e.Roles) != 2 || e.Roles[0].Role != "primary" || e.Roles[1].Role != "standby" || e.Roles[1].Primary != e.Placement.Primary {
		t.Fatalf("roles %+v", e.Roles)
	}
	// a1 → lb-a1, a2 → lb-a2 (lb-a1 now has one), so for shop-web lb-a1 and
	// lb-a2 both hold one balancer; lb-a2 carries 1000/10000 maxconn.
	p := e.Roles[0]
	if p.Chosen != "lb-a1" || e.PreferredZone != "az-a" {
		t.Errorf("primary %s, preferred %s", p.Chosen, e.PreferredZone)
	}
	byName := map[string]DeviceVerdict{}
	for _, v := range p.Devices {
		byName[v.Device] = v
	}
	if v := byName["lb-b1"]; v.Pass || !strings.Contains(verdictText(v), "vipNetwork: vip 203.0.113.10 outside vipNetworks [198.51.100.0/24]") {
		t.Errorf("lb-b1: %+v", v)
	}
	a2 := byName["lb-a2"]
	if !a2.Pass || !a2.Preferred || len(a2.Costs) != 3 {
		t.Fatalf("lb-a2: %+v", a2)
	}
	if c := a2.Costs[1]; c.Cost != "maxconn" || c.Raw != 0.1 || c.Normalized != 1 || c.Weight != 1 {
		t.Errorf("lb-a2 maxconn cost %+v", c)
	}
	if c := a2.Costs[0]; c.Raw != 1 || c.Normalized != 1 { // lb-c1 holds none
		t.Errorf("lb-a2 balancers cost %+v", c)
	}
	if a2.Total <= byName["lb-a1"].Total {
		t.Errorf("totals: lb-a2 %v <= lb-a1 %v", a2.Total, byName["lb-a1"].Total)
	}
	for _, v := range e.Roles[1].Devices {
		if v.Device == "lb-a1" || v.Device == "lb-a2" {
			if v.Pass || !strings.Contains(verdictText(v), "ha: ") {
				t.Errorf("standby %s in the primary's zone: %+v", v.Device, v)
			}
		}
	}
	var out bytes.Buffer
	if err := e.Write(&out); err != nil {
		t.Fatal(err)
	}
	t.Logf("explain output:\n%s", out.String())
	for _, want := range []string{
		"balancer shop-web (tenant shop): HA pair, primary prefers zone az-a",
		"filters: device zone tags vipNetwork capacity ha",
		"weights: balancers 1, maxconn 1, spread 0.5",
		"lbc.lock: not placed",
		"result: lb-a1 (standby lb-c1)",
		"primary: lb-a1",
		"standby (primary lb-a1): lb-c1",
		"pass, preferred zone, CHOSEN",
		"reject: vipNetwork: vip 203.0.113.10 outside vipNetworks [198.51.100.0/24]",
		"reject: ha: is the primary",
		"reject: ha: same zone az-a as primary lb-a1",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func verdictText(v DeviceVerdict) string {
	var parts []string
	for _, f := range v.Filters {
		if !f.Pass {
			parts = append(parts, f.Filter+": "+f.Reason)
		}
	}
	return strings.Join(parts, "; ")
}

func TestExplainKeptAndNotKept(t *testing.T) {
	s := explainSpec()
	l, _ := scMustSchedule(t, s, nil)
	e, err := Explain(s, l, "z9")
	if err != nil {
		t.Fatal(err)
	}
	if !e.Kept || !e.Roles[0].Kept || e.Previous == nil || *e.Previous != l["z9"] {
		t.Errorf("kept: %+v", e)
	}
	var out bytes.Buffer
	if err := e.Write(&out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "(kept from lbc.lock)") || !strings.Contains(out.String(), "CHOSEN (kept)") {
		t.Errorf("output:\n%s", out.String())
	}

	// The lock's device is now full: say so, and place afresh.
	prev := Lock{"z9": {"z9", "lb-a1", ""}, "a1": {"a1", "lb-a1", ""}, "a2": {"a2", "lb-a1", ""}}
	e, err = Explain(s, prev, "z9")
	if err != nil {
		t.Fatal(err)
	}
	if e.Kept || e.Placement.Primary == "lb-a1" || len(e.Notes) != 1 ||
		e.Notes[0] != "the lock's device lb-a1 no longer passes: capacity: full: 2/2 balancers" {
		t.Errorf("not kept: placement %+v notes %q", e.Placement, e.Notes)
	}
}

func TestExplainUnplaceable(t *testing.T) {
	s := explainSpec()
	s.Balancers["z9"].Placement.Zones = []string{"az-x"}
	e, err := Explain(s, nil, "z9")
	if err != nil {
		t.Fatal(err)
	}
	if e.Err == nil || e.Placement.Primary != "" || e.Err.Reasons["zone"] != 4 {
		t.Fatalf("unplaceable: %+v", e)
	}
	var out bytes.Buffer
	if err := e.Write(&out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "device: none fits") || !strings.Contains(out.String(), "result: unplaceable: ") {
		t.Errorf("output:\n%s", out.String())
	}
	if _, err := Explain(s, nil, "nope"); err == nil || err.Error() != `explain: no balancer "nope"` {
		t.Errorf("unknown balancer: %v", err)
	}
}

// TestExplainAgreesWithSchedule checks, on random trees, that Explain picks
// what Schedule picks, that every device it lists as passing passed every
// filter verdict it shows, and that it chose the lowest total.
func TestExplainAgreesWithSchedule(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	checked := 0
	for iter := 0; iter < 60; iter++ {
		s := scRandomSpec(r)
		var prev Lock
		if r.IntN(2) == 0 {
			prev, _ = scScheduleAll(t, scRandomSpec(r), nil)
		}
		want, _, err := Schedule(s, prev)
		for _, n := range s.BalancerNames() {
			e, xerr := Explain(s, prev, n)
			if xerr != nil {
				t.Fatal(xerr)
			}
			checked++
			if err == nil && e.Placement != want[n] {
				t.Fatalf("iter %d %s: explain %+v, schedule %+v", iter, n, e.Placement, want[n])
			}
			var ue *UnplaceableError
			if err != nil && errors.As(err, &ue) && ue.Balancer == n && e.Err == nil {
				t.Fatalf("iter %d %s: schedule says unplaceable, explain placed %+v", iter, n, e.Placement)
			}
			for _, rc := range e.Roles {
				for _, v := range rc.Devices {
					allPass := true
					for _, f := range v.Filters {
						allPass = allPass && f.Pass
						if f.Pass != (f.Reason == "") {
							t.Fatalf("iter %d %s %s: filter %s pass=%v reason %q", iter, n, v.Device, f.Filter, f.Pass, f.Reason)
						}
					}
					if allPass != v.Pass {
						t.Fatalf("iter %d %s %s %s: verdicts say %v, candidates say %v", iter, n, rc.Role, v.Device, allPass, v.Pass)
					}
					if v.Pass && !rc.Kept && rc.Chosen != "" && v.Total < totalOf(rc, rc.Chosen) && !(v.Preferred == false && preferredExists(rc)) {
						t.Fatalf("iter %d %s: %s has total %v below chosen %s", iter, n, v.Device, v.Total, rc.Chosen)
					}
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("nothing checked")
	}
}

func totalOf(rc *RoleChoice, dev string) float64 {
	for _, v := range rc.Devices {
		if v.Device == dev {
			return v.Total
		}
	}
	return -1
}

func preferredExists(rc *RoleChoice) bool {
	for _, v := range rc.Devices {
		if v.Pass && v.Preferred {
			return true
		}
	}
	return false
}

// TestSchedulerIsPure fails if a scheduler file imports anything that does
// I/O: the compiler is a pure function of the spec and the lock.
func TestSchedulerIsPure(t *testing.T) {
	banned := map[string]bool{"os": true, "os/exec": true, "net": true, "net/http": true,
		"golang.org/x/crypto/ssh": true, "syscall": true, "io/fs": true, "path/filepath": true}
	for _, f := range []string{"schedule.go", "filters.go", "costs.go", "lock.go", "explain.go"} {
		file, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range file.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if banned[p] {
				t.Errorf("%s imports %s", f, p)
			}
		}
	}
}
