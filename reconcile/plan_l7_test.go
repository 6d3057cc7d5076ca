package reconcile

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"lbc/compiler"
	"lbc/schema"
)

// A device whose haproxy.cfg loads a host table is refused before any
// connection until apply ships map files: its check would fail on the
// host for want of the file.
func TestPlanRefusesHostTables(t *testing.T) {
	dev := &schema.Device{Name: "lb-a1", Address: "192.0.2.11", HAProxy: schema.HAProxy{Config: "/etc/haproxy/haproxy.cfg"}, StateDir: "/var/lib/lbc"}
	art := &compiler.DeviceArtifacts{Device: "lb-a1", HAProxyCfg: []byte("x"), Maps: []compiler.MapFile{{Path: "/etc/haproxy/lbc-hosts-web.map", Data: []byte("y")}}}
	dialed := false
	dial := func(context.Context, Endpoint) (Transport, error) {
		dialed = true
		return nil, errors.New("no")
	}
	dp := planDevice(context.Background(), dev, art, dial, "ip", nil, slog.New(slog.DiscardHandler), Limits{})
	if dialed || dp.Status != StatusError || !strings.Contains(dp.Error, "host tables (hosts:)") || !strings.Contains(dp.Error, "lbc-hosts-web.map") {
		t.Fatalf("dialed %v, status %s, error %q", dialed, dp.Status, dp.Error)
	}
}
