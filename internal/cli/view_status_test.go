package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"lbc/reconcile"
)

const rev1 = "0123456789abcdef0123456789abcdef01234567"

// TestStatusViews pins the text and JSON views of a fixed status.
func TestStatusViews(t *testing.T) {
	st := []reconcile.DeviceStatus{
		{Device: "lb-a1", Address: "192.0.2.11", Reachable: true, Revision: rev1, AppliedAt: "2025-01-02T03:04:05Z",
			LBCVersion: "v1.0.0", LastResult: "applied", Sync: reconcile.SyncInSync,
			HAVIPs: []reconcile.HAVIP{{VIP: "203.0.113.20", Balancer: "shop-api", Role: "primary", Held: true}}, Balancers: []string{"shop-api"}},
		{Device: "lb-b1", Address: "192.0.2.12", Reachable: true, Revision: rev1, AppliedAt: "2025-01-02T03:04:05Z",
			LBCVersion: "v1.0.0", LastResult: "applied", Sync: reconcile.SyncDrifted, Notes: []string{"/etc/haproxy/haproxy.cfg differs from the one lbc applied"},
			HAVIPs: []reconcile.HAVIP{{VIP: "203.0.113.20", Balancer: "shop-api", Role: "standby", Held: true}}, Balancers: []string{"shop-api"}},
		{Device: "lb-c1", Address: "192.0.2.13", Reachable: true, Sync: reconcile.SyncNeverApplied},
		{Device: "lb-d1", Address: "192.0.2.14", Sync: reconcile.SyncUnreachable, Error: "status lb-d1: connect: connection refused"},
	}
	var out bytes.Buffer
	if err := writeStatusText(&out, st, false); err != nil {
		t.Fatal(err)
	}
	want := `DEVICE  REVISION      APPLIED AT            LBC VERSION  STATE
lb-a1   0123456789ab  2025-01-02T03:04:05Z  v1.0.0       in-sync
lb-b1   0123456789ab  2025-01-02T03:04:05Z  v1.0.0       drifted
lb-c1   -             -                     -            never-applied
lb-d1   -             -                     -            unreachable

! lb-b1: /etc/haproxy/haproxy.cfg differs from the one lbc applied
! lb-d1: status lb-d1: connect: connection refused

HA VIPs:
  203.0.113.20 (shop-api): held by BOTH (split brain): lb-a1 (primary), lb-b1 (standby)

4 devices: 1 in-sync, 1 drifted, 1 never-applied, 1 unreachable.
`
	if out.String() != want {
		t.Errorf("text:\n%s\nwant:\n%s", out.String(), want)
	}
	out.Reset()
	if err := writeStatusText(&out, st, true); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), ansiGreen+"in-sync"+ansiReset) || !strings.Contains(out.String(), "  "+ansiRed+"203.0.113.20 (shop-api): held by BOTH") {
		t.Errorf("colour text:\n%q", out.String())
	}

	out.Reset()
	if err := writeStatusJSON(&out, st); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 6 {
		t.Fatalf("%d JSON lines, want 4 devices + 1 HA VIP + summary:\n%s", len(lines), out.String())
	}
	var dev statusDeviceRecord
	if err := json.Unmarshal([]byte(lines[1]), &dev); err != nil || dev.Type != "device" || dev.Sync != reconcile.SyncDrifted ||
		dev.Revision != rev1 || len(dev.HAVIPs) != 1 || !dev.HAVIPs[0].Held {
		t.Errorf("device line %s: %+v %v", lines[1], dev, err)
	}
	var ha statusHAVIPRecord
	if err := json.Unmarshal([]byte(lines[4]), &ha); err != nil || ha.Type != "ha-vip" || ha.State != reconcile.HASplitBrain || len(ha.Holders) != 2 {
		t.Errorf("ha line %s: %+v %v", lines[4], ha, err)
	}
	if want := `{"type":"summary","devices":4,"sync":{"drifted":1,"in-sync":1,"never-applied":1,"unreachable":1}}`; lines[5] != want {
		t.Errorf("summary line %s, want %s", lines[5], want)
	}
}

func TestHAVIPLine(t *testing.T) {
	const vip = "203.0.113.20"
	ha := func(role string, held bool) []reconcile.HAVIP {
		return []reconcile.HAVIP{{VIP: vip, Balancer: "shop-api", Role: role, Held: held}}
	}
	dev := func(name, role string, held, reachable bool) reconcile.DeviceStatus {
		return reconcile.DeviceStatus{Device: name, Reachable: reachable, HAVIPs: ha(role, held)}
	}
	for _, c := range []struct {
		st   []reconcile.DeviceStatus
		want string
	}{
		{[]reconcile.DeviceStatus{dev("lb-a1", "primary", true, true), dev("lb-b1", "standby", false, true)}, "held by lb-a1 (primary)"},
		{[]reconcile.DeviceStatus{dev("lb-a1", "primary", false, true), dev("lb-b1", "standby", true, true)}, "held by lb-b1 (standby)"},
		{[]reconcile.DeviceStatus{dev("lb-a1", "primary", true, true), dev("lb-b1", "standby", true, true)},
			"held by BOTH (split brain): lb-a1 (primary), lb-b1 (standby)"},
		{[]reconcile.DeviceStatus{dev("lb-a1", "primary", false, true), dev("lb-b1", "standby", false, true)}, "held by NONE"},
		{[]reconcile.DeviceStatus{dev("lb-a1", "primary", false, true), dev("lb-b1", "standby", false, false)},
			"held by NONE of the reachable devices; lb-b1 unreachable"},
		{[]reconcile.DeviceStatus{dev("lb-a1", "primary", false, true), dev("lb-c1", reconcile.RoleNone, true, true)},
			"held by lb-c1 (not in its pair)"},
	} {
		sum := reconcile.SummarizeHAVIPs(c.st)
		if len(sum) != 1 {
			t.Fatalf("%d HA VIPs, want 1", len(sum))
		}
		if got, want := haVIPLine(sum[0]), vip+" (shop-api): "+c.want; got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

func TestShortRevision(t *testing.T) {
	for in, want := range map[string]string{
		rev1:                 "0123456789ab",
		rev1 + "-dirty":      "0123456789ab-dirty",
		"":                   "-",
		"dirty":              "dirty",
		"e2e":                "e2e",
		"not-a-hash-at-all!": "not-a-hash-at-all!",
	} {
		if got := shortRevision(in); got != want {
			t.Errorf("shortRevision(%q) = %q, want %q", in, got, want)
		}
	}
}
