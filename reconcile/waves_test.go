package reconcile

import (
	"fmt"
	"math/rand"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"lbc/compiler"
)

func wavesOf(pairs [][2]string, devices ...string) [][]string {
	res := &compiler.Result{Placement: compiler.Lock{}}
	for i, p := range pairs {
		name := fmt.Sprintf("b%d", i)
		res.Placement[name] = compiler.Placement{Balancer: name, Primary: p[0], Standby: p[1]}
	}
	plan := &Plan{}
	for _, d := range devices {
		plan.Devices = append(plan.Devices, DevicePlan{Device: d})
	}
	return HAWaves(res)(plan)
}

func TestHAWaves(t *testing.T) {
	for _, tc := range []struct {
		name    string
		pairs   [][2]string // primary, standby
		devices []string    // in plan order
		want    [][]string
	}{
		{"no HA", nil, []string{"c", "a", "b"}, [][]string{{"a", "b", "c"}}},
		{"one pair", [][2]string{{"p", "s"}}, []string{"p", "s", "x"}, [][]string{{"s", "x"}, {"p"}}},
		{"single balancer beside a pair", [][2]string{{"a", "z"}}, []string{"a", "m", "z"}, [][]string{{"m", "z"}, {"a"}}},
		{"shared standby", [][2]string{{"p1", "s"}, {"p2", "s"}}, []string{"p1", "p2", "s"}, [][]string{{"s"}, {"p1", "p2"}}},
		{"chain", [][2]string{{"a", "b"}, {"b", "c"}}, []string{"a", "b", "c"}, [][]string{{"c"}, {"b"}, {"a"}}},
		{"two-cycle", [][2]string{{"a", "b"}, {"b", "a"}}, []string{"b", "a"}, [][]string{{"a"}, {"b"}}},
		{"three-cycle and a tail", [][2]string{{"a", "b"}, {"b", "c"}, {"c", "a"}, {"d", "c"}}, []string{"a", "b", "c", "d", "e"},
			// a goes first (all have one pending standby, a is first by
			// name); then c (its standby a is placed), then b and d.
			[][]string{{"a", "e"}, {"c"}, {"b", "d"}}},
		{"standby not in plan", [][2]string{{"p", "gone"}}, []string{"p"}, [][]string{{"p"}}},
		{"empty plan", [][2]string{{"p", "s"}}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := wavesOf(tc.pairs, tc.devices...)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("waves (-want +got):\n%s", diff)
			}
		})
	}
}

// TestHAWavesProperties checks random pair sets: every device exactly once,
// the two devices of a pair never in one wave, a standby before its primary
// whenever the pairs have no cycle, and the same waves for the same input.
func TestHAWavesProperties(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for iter := 0; iter < 300; iter++ {
		n := 2 + rng.Intn(12)
		devs := make([]string, n)
		for i := range devs {
			devs[i] = fmt.Sprintf("d%02d", i)
		}
		acyclic := rng.Intn(2) == 0
		var pairs [][2]string
		for k := rng.Intn(2 * n); k > 0; k-- {
			i, j := rng.Intn(n), rng.Intn(n)
			if i == j {
				continue
			}
			if acyclic && i < j { // primaries have higher indexes: no cycle
				i, j = j, i
			}
			pairs = append(pairs, [2]string{devs[i], devs[j]})
		}
		shuffled := slices.Clone(devs)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		got := wavesOf(pairs, shuffled...)
		if again := wavesOf(pairs, devs...); !cmp.Equal(got, again) {
			t.Fatalf("pairs %v: not deterministic: %v then %v", pairs, got, again)
		}
		wave := map[string]int{}
		for w, ds := range got {
			if len(ds) == 0 {
				t.Fatalf("pairs %v: empty wave %d in %v", pairs, w, got)
			}
			if !slices.IsSorted(ds) {
				t.Fatalf("pairs %v: wave %d not sorted: %v", pairs, w, ds)
			}
			for _, d := range ds {
				if _, dup := wave[d]; dup {
					t.Fatalf("pairs %v: %s twice in %v", pairs, d, got)
				}
				wave[d] = w
			}
		}
		if len(wave) != n {
			t.Fatalf("pairs %v: %d devices in %v, want %d", pairs, len(wave), got, n)
		}
		for _, p := range pairs {
			if wave[p[0]] == wave[p[1]] {
				t.Fatalf("pairs %v: pair %v in one wave: %v", pairs, p, got)
			}
			if acyclic && wave[p[1]] > wave[p[0]] {
				t.Fatalf("pairs %v: standby %s after primary %s: %v", pairs, p[1], p[0], got)
			}
		}
		inPair := map[string]bool{}
		for _, p := range pairs {
			inPair[p[0]], inPair[p[1]] = true, true
		}
		for _, d := range devs {
			if !inPair[d] && wave[d] != 0 {
				t.Fatalf("pairs %v: %s has no pair but is in wave %d", pairs, d, wave[d])
			}
		}
	}
}

func TestPairWavesFromThePlan(t *testing.T) {
	p := &Plan{Devices: []DevicePlan{{Device: "a"}, {Device: "b"}, {Device: "c"}},
		HAPairs: []compiler.Placement{{Balancer: "web", Primary: "a", Standby: "b"}}}
	got := fmt.Sprint(PairWaves(p))
	if want := "[[b c] [a]]"; got != want {
		t.Errorf("waves %s, want %s (standby b before primary a)", got, want)
	}
	p.HAPairs = nil
	if got := fmt.Sprint(PairWaves(p)); got != "[[a b c]]" {
		t.Errorf("no pairs: waves %s, want one", got)
	}
}

// TestHAWavesNewPairs: a pair whose balancer both devices list in NewVRRP
// (a nopreempt instance neither runs yet) goes primary first, and wins
// over the not-new pairs of the same two devices; a pair only one device
// lists (the other runs the instance already) goes standby first.
func TestHAWavesNewPairs(t *testing.T) {
	type pair struct{ bal, primary, standby string }
	for _, tc := range []struct {
		name  string
		pairs []pair
		news  map[string][]string // device → NewVRRP
		want  [][]string
	}{
		{"new pair", []pair{{"web", "p", "s"}}, map[string][]string{"p": {"web"}, "s": {"web"}}, [][]string{{"p"}, {"s"}}},
		{"standby runs it already", []pair{{"web", "p", "s"}}, map[string][]string{"p": {"web"}}, [][]string{{"s"}, {"p"}}},
		{"primary runs it already", []pair{{"web", "p", "s"}}, map[string][]string{"s": {"web"}}, [][]string{{"s"}, {"p"}}},
		{"another balancer is new", []pair{{"web", "p", "s"}}, map[string][]string{"p": {"api"}, "s": {"api"}}, [][]string{{"s"}, {"p"}}},
		{"new beside an existing pair of the same devices", []pair{{"web", "p", "s"}, {"api", "p", "s"}},
			map[string][]string{"p": {"api"}, "s": {"api"}}, [][]string{{"p"}, {"s"}}},
		{"new pair and an existing pair of other devices", []pair{{"api", "p", "s"}, {"web", "q", "p"}},
			map[string][]string{"p": {"api"}, "s": {"api"}}, [][]string{{"p"}, {"q", "s"}}},
		{"new pair reversed to an existing one", []pair{{"web", "p", "s"}, {"api", "s", "p"}},
			map[string][]string{"p": {"api"}, "s": {"api"}}, [][]string{{"s"}, {"p"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &Plan{}
			for _, d := range []string{"p", "q", "s"} {
				p.Devices = append(p.Devices, DevicePlan{Device: d, NewVRRP: tc.news[d]})
			}
			for _, pr := range tc.pairs {
				p.HAPairs = append(p.HAPairs, compiler.Placement{Balancer: pr.bal, Primary: pr.primary, Standby: pr.standby})
			}
			var want [][]string
			used := map[string]bool{}
			for _, w := range tc.want {
				want = append(want, w)
				for _, d := range w {
					used[d] = true
				}
			}
			if !used["q"] { // q has no pair: first wave
				want[0] = append([]string{}, want[0]...)
				want[0] = append(want[0], "q")
				slices.Sort(want[0])
			}
			if diff := cmp.Diff(want, PairWaves(p)); diff != "" {
				t.Errorf("waves (-want +got):\n%s", diff)
			}
		})
	}
}

// layerByScan is layer as it was written first: each step scans every
// device for the first unplaced one by name with no pending predecessor
// (quadratic in the fleet's size). layer must give the same waves.
func layerByScan(names []string, before, after map[string]map[string]bool) [][]string {
	names = slices.Sorted(slices.Values(names))
	in := map[string]bool{}
	for _, n := range names {
		in[n] = true
	}
	pending := map[string]int{}
	for _, n := range names {
		for s := range before[n] {
			if in[s] && s != n {
				pending[n]++
			}
		}
	}
	wave, placed := map[string]int{}, map[string]bool{}
	for left := len(names); left > 0; left-- {
		next, best := "", -1
		for _, n := range names {
			if !placed[n] && (best < 0 || pending[n] < best) {
				next, best = n, pending[n]
				if best == 0 {
					break
				}
			}
		}
		w := 0
		for _, m := range []map[string]bool{before[next], after[next]} {
			for u := range m {
				if placed[u] && wave[u]+1 > w {
					w = wave[u] + 1
				}
			}
		}
		wave[next], placed[next] = w, true
		for pr := range after[next] {
			if in[pr] && !placed[pr] {
				pending[pr]--
			}
		}
	}
	var out [][]string
	for _, n := range names {
		for len(out) <= wave[n] {
			out = append(out, nil)
		}
		out[wave[n]] = append(out[wave[n]], n)
	}
	waves := out[:0]
	for _, w := range out {
		if len(w) > 0 {
			waves = append(waves, w)
		}
	}
	return waves
}

// TestLayerMatchesScan: on random pair sets (chains, shared standbys,
// cycles, new pairs, devices missing from the plan) layer gives the waves
// the scan gives.
func TestLayerMatchesScan(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	for round := 0; round < 300; round++ {
		nd := 2 + rng.Intn(40)
		var devices []string
		for i := 0; i < nd; i++ {
			devices = append(devices, fmt.Sprintf("d%02d", i))
		}
		var pairs []compiler.Placement
		newOn := map[string]map[string]bool{}
		for i := rng.Intn(2 * nd); i > 0; i-- {
			p, s := devices[rng.Intn(nd)], fmt.Sprintf("d%02d", rng.Intn(nd+3)) // some standbys not in the plan
			if p == s {
				continue
			}
			b := fmt.Sprintf("b%d", i)
			pairs = append(pairs, compiler.Placement{Balancer: b, Primary: p, Standby: s})
			if rng.Intn(4) == 0 {
				for _, d := range []string{p, s} {
					if newOn[d] == nil {
						newOn[d] = map[string]bool{}
					}
					newOn[d][b] = true
				}
			}
		}
		before, after := pairOrder(pairs, newOn)
		names := slices.Clone(devices)
		rng.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
		want := layerByScan(names, before, after)
		if got := layer(names, before, after); !cmp.Equal(want, got) {
			t.Fatalf("round %d: pairs %v new %v:\n%s", round, pairs, newOn, cmp.Diff(want, got))
		}
	}
}
