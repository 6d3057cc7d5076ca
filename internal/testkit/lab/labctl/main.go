// Command labctl starts and stops a lab of real HAProxy hosts in network
// namespaces for lbc's demo and benchmarks (see package lab).
//
//	labctl up -name demo -index 7 -devices 3 -nodes 4 -dir /tmp/lbc-demo [-json]
//	labctl down -name demo -dir /tmp/lbc-demo
//
// up prints shell assignments (eval "$(labctl up ...)") or, with -json, one
// JSON object; the lab keeps running after labctl exits.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"lbc/internal/shquote"
	"lbc/internal/testkit/lab"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

const usage = `usage:
  labctl up -name NAME [-index N] [-devices N] [-nodes N] [-dir DIR] [-spec FILE] [-vips N] [-keepalived] [-json]
  labctl down -name NAME [-dir DIR]
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch args[0] {
	case "up":
		err = up(ctx, args[1:], stdout, stderr)
	case "down":
		err = down(args[1:], stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "labctl: unknown command %q\n%s", args[0], usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "labctl: %v\n", err)
		return 1
	}
	return 0
}

// Summary is what up prints.
type Summary struct {
	Name        string   `json:"name"`
	Index       int      `json:"index"`
	Dir         string   `json:"dir"`
	Spec        string   `json:"spec"`
	KnownHosts  string   `json:"knownHosts"`
	Key         string   `json:"key"`
	Subnet      string   `json:"subnet"`
	VIPNetwork  string   `json:"vipNetwork"`
	DeviceNames []string `json:"deviceNames"`
	Devices     []string `json:"devices"`
	Nodes       []string `json:"nodes"` // address:port
	VIPs        []string `json:"vips"`
	StartupMS   int64    `json:"startupMs"`
}

func up(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o lab.Options
	fs.StringVar(&o.Name, "name", "demo", "lab name: 1-5 characters [a-z0-9]")
	fs.IntVar(&o.Index, "index", 7, "subnet index 1..255 (198.18.0.0/15's index-th /23)")
	fs.IntVar(&o.Devices, "devices", 3, "devices (HAProxy hosts)")
	fs.IntVar(&o.Nodes, "nodes", 4, "backend nodes")
	fs.StringVar(&o.Dir, "dir", "", "work directory (default: a new temporary directory)")
	fs.BoolVar(&o.Keepalived, "keepalived", false, "allow keepalived on the devices")
	zones := fs.String("zones", "az-a,az-b,az-c", "zones, assigned to devices round-robin")
	spec := fs.String("spec", "", "devices CUE file to write (default DIR/devices.cue)")
	vips := fs.Int("vips", 8, "how many VIP addresses to list")
	asJSON := fs.Bool("json", false, "print one JSON object instead of shell assignments")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("up: unexpected argument %q", fs.Arg(0))
	}
	if *vips < 0 || *vips > 254 {
		return fmt.Errorf("up: -vips %d: want 0..254", *vips)
	}
	o.Zones = strings.Split(*zones, ",")
	if err := lab.EnsureTools(ctx); err != nil {
		return err
	}
	start := time.Now()
	l, err := lab.Start(ctx, o)
	if err != nil {
		return err
	}
	s := Summary{
		Name: l.Name, Index: l.Index, Dir: l.Dir, KnownHosts: l.KnownHosts, Key: l.KeyFile,
		Subnet: l.Prefix.String(), VIPNetwork: l.VIPNetwork.String(),
		StartupMS: time.Since(start).Milliseconds(),
	}
	s.Spec = *spec
	if s.Spec == "" {
		s.Spec = filepath.Join(l.Dir, "devices.cue")
	}
	if err := l.WriteDevices(s.Spec); err != nil {
		l.Close()
		return err
	}
	for _, d := range l.Devices {
		s.DeviceNames = append(s.DeviceNames, d.Name)
		s.Devices = append(s.Devices, d.Address.String())
	}
	for _, n := range l.Nodes {
		s.Nodes = append(s.Nodes, fmt.Sprintf("%s:%d", n.Address, n.Port))
	}
	for i := 1; i <= *vips; i++ {
		s.VIPs = append(s.VIPs, l.VIP(i).String())
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(s)
	}
	w := func(k, v string) { fmt.Fprintf(stdout, "LAB_%s=%s\n", k, shquote.Quote(v)) }
	w("NAME", s.Name)
	w("INDEX", fmt.Sprint(s.Index))
	w("DIR", s.Dir)
	w("SPEC", s.Spec)
	w("KNOWN_HOSTS", s.KnownHosts)
	w("KEY", s.Key)
	w("SUBNET", s.Subnet)
	w("VIP_NETWORK", s.VIPNetwork)
	w("DEVICE_NAMES", strings.Join(s.DeviceNames, " "))
	w("DEVICES", strings.Join(s.Devices, " "))
	w("NODES", strings.Join(s.Nodes, " "))
	w("VIPS", strings.Join(s.VIPs, " "))
	w("STARTUP_MS", fmt.Sprint(s.StartupMS))
	return nil
}

func down(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("down", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "demo", "lab name")
	dir := fs.String("dir", "", "the lab's work directory, removed (only if it is a lab's)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("down: unexpected argument %q", fs.Arg(0))
	}
	return lab.Down(*name, *dir)
}
