package cli

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"lbc/internal/exitcode"
	"lbc/internal/shard"
)

// shardLine is one line of lbc shards --json.
type shardLine struct {
	Type    string     `json:"type"` // "shard"
	Shard   string     `json:"shard"`
	Index   int        `json:"index"`
	Count   int        `json:"count"`
	Devices []string   `json:"devices"`
	Units   [][]string `json:"units"` // each unit's devices; one device, or devices that go together
}

// shardsSummary is the last line of lbc shards --json.
type shardsSummary struct {
	Type    string `json:"type"` // "summary"
	Count   int    `json:"count"`
	Devices int    `json:"devices"`
	Units   int    `json:"units"`
	Bound   int    `json:"bound"` // the most devices a shard may hold
}

// shards prints which devices each of --count shards holds, as --shard i/n
// on plan, apply, status and watch selects them.
func (e *env) shards() int {
	c, err := e.compileSpecs()
	if err != nil {
		return e.printLoadError(err)
	}
	n := e.args.Count
	units := shard.Units(c.res)
	assign := shard.Assign(units, n)
	lines := make([]shardLine, n)
	for i := range lines {
		lines[i] = shardLine{Type: "shard", Shard: shard.Shard{Index: i, Count: n}.String(), Index: i, Count: n, Devices: []string{}, Units: [][]string{}}
	}
	for i, u := range units { // units sorted by key, devices sorted in each
		l := &lines[assign[i]]
		l.Units = append(l.Units, u.Devices)
		l.Devices = append(l.Devices, u.Devices...)
	}
	for i := range lines {
		slices.Sort(lines[i].Devices)
	}
	sum := shardsSummary{Type: "summary", Count: n, Devices: len(c.res.Devices), Units: len(units), Bound: shard.Bound(units, n)}
	if e.args.JSON {
		enc := json.NewEncoder(e.stdout)
		for _, l := range lines {
			enc.Encode(l)
		}
		enc.Encode(sum)
		return exitcode.OK
	}
	fmt.Fprintf(e.stdout, "%d devices in %d units over %d shards, at most %d devices a shard\n", sum.Devices, sum.Units, n, sum.Bound)
	for _, l := range lines {
		fmt.Fprintf(e.stdout, "shard %s: %d devices, %d units\n", l.Shard, len(l.Devices), len(l.Units))
		for _, u := range l.Units {
			fmt.Fprintf(e.stdout, "  %s\n", strings.Join(u, " "))
		}
	}
	return exitcode.OK
}
