package compiler

import (
	"encoding/json"
	"fmt"
	"sort"

	"lbc/schema"
)

// vipPlan lists the VIP addresses dev must carry for the balancers placed
// on it: one entry per address and balancer (a balancer listening on two
// ports of one address gives one entry), sorted by address then balancer.
func vipPlan(dev *schema.Device, placed []*schema.Balancer, roles map[string]string) ([]VIP, error) {
	type key struct {
		addr string
		bal  string
	}
	seen := map[key]bool{}
	vips := []VIP{}
	if err := checkWord(dev.VIPInterface, true); err != nil {
		return nil, fmt.Errorf("vipInterface: %w", err)
	}
	for _, b := range placed {
		role := roles[b.Name]
		if role == "" {
			role = VIPRoleSingle
		}
		for _, v := range b.VIPs {
			if !v.Address.IsValid() || v.Address.Zone() != "" {
				return nil, fmt.Errorf("balancer %s: invalid VIP %s", b.Name, v.Address)
			}
			k := key{v.Address.String(), b.Name}
			if seen[k] {
				continue
			}
			seen[k] = true
			vips = append(vips, VIP{
				Address:   v.Address,
				Prefix:    vipPrefix(dev, v),
				Interface: dev.VIPInterface,
				Balancer:  b.Name,
				Role:      role,
			})
		}
	}
	sort.Slice(vips, func(i, j int) bool {
		if c := vips[i].Address.Compare(vips[j].Address); c != 0 {
			return c < 0
		}
		return vips[i].Balancer < vips[j].Balancer
	})
	return vips, nil
}

// vipPrefix is the length of the longest of dev's vipNetworks holding v,
// else the address's full length (32 or 128).
func vipPrefix(dev *schema.Device, v schema.VIP) int {
	best := -1
	for _, n := range dev.VIPNetworks {
		if n.Contains(v.Address) && n.Bits() > best {
			best = n.Bits()
		}
	}
	if best < 0 {
		return v.Address.BitLen()
	}
	return best
}

// marshalVIPs renders vips.json: a JSON array, one VIP a line, "[]" when
// empty, ending in a newline.
func marshalVIPs(vips []VIP) ([]byte, error) {
	if len(vips) == 0 {
		return []byte("[]\n"), nil
	}
	out := []byte("[\n")
	for i, v := range vips {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("render vips.json: %w", err)
		}
		out = append(out, "  "...)
		out = append(out, b...)
		if i < len(vips)-1 {
			out = append(out, ',')
		}
		out = append(out, '\n')
	}
	return append(out, "]\n"...), nil
}
