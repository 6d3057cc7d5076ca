// Command simctl runs a simulated fleet (internal/testkit/fleetsim) for
// make bench: it starts N hosts, writes DIR/specs (one balancer a host,
// weight 1), prints "ready" and serves until stdin closes or SIGTERM.
// SIGUSR1 writes DIR/stats.json (connections open now, the most open at
// once since the last SIGUSR1, sessions, commands) and resets the peak.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"lbc/internal/testkit/fleetsim"
)

func main() {
	n := flag.Int("n", 100, "hosts")
	dir := flag.String("dir", "", "work directory (required; made if missing)")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "simctl: -dir is required")
		os.Exit(64)
	}
	f, err := fleetsim.Start(*dir, *n)
	if err != nil {
		fmt.Fprintln(os.Stderr, "simctl:", err)
		os.Exit(1)
	}
	defer f.Close()
	if err := f.WriteSpecs(filepath.Join(*dir, "specs"), 1); err != nil {
		fmt.Fprintln(os.Stderr, "simctl:", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1)
	eof := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(eof) }()
	for {
		select {
		case <-eof:
			return
		case s := <-sigs:
			if s != syscall.SIGUSR1 {
				return
			}
			b, _ := json.Marshal(f.ResetPeak())
			os.WriteFile(filepath.Join(*dir, "stats.json.new"), append(b, '\n'), 0o644)
			os.Rename(filepath.Join(*dir, "stats.json.new"), filepath.Join(*dir, "stats.json"))
		}
	}
}
