// Package cli implements the lbc command line: argument parsing, the
// subcommands, the one apply policy every command that applies uses
// (applyOptions), the views of plans, applies and status (view_*.go),
// escaping of host-originated text (term.go), and the exit codes results
// map to. Lower layers return data and errors only. main calls Main.
package cli

import (
	"lbc/internal/certsrc"

	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"lbc/internal/exitcode"
	"lbc/internal/version"
	"lbc/schema"
)

const usage = `lbc compiles CUE specs of HAProxy devices and balancers into per-device
configs and applies them to the hosts over SSH, one atomic transaction per host.

Usage:
  lbc validate [DIR] [--json]             check the specs (schema + semantic rules)
  lbc compile  [DIR] [-o OUT] [--locked]  place balancers, render OUT/<device>/...
  lbc explain  BALANCER [DIR]             show how the scheduler placed a balancer
  lbc plan     [DIR] [--detailed-exitcode] [--json|--markdown] [-out FILE]
  lbc apply    [DIR | PLANFILE] [--parallelism N] [--max-failures N] [--allow-downgrade] [--force]
  lbc status   [DIR] [--json]             what each host runs, and whether in sync
  lbc watch    DIR [--plan|--apply [--allow-downgrade] [--force]] [--interval D]
  lbc shards   [DIR] --count N [--json]   which devices each of N shards holds
  lbc schema                              print the embedded CUE schema
  lbc version                             print lbc's version

Specs: --git-rev REF [--repo PATH] reads them from a Git revision.
Hosts: --known-hosts FILE (default ~/.ssh/known_hosts), --ssh-key FILE (default: ssh-agent).
Shards: --shard i/n on plan, apply, status and watch works on shard i (from 0) of n only.
Run 'lbc help COMMAND' for a command's flags.

Exit codes: 0 ok, 1 error (nothing changed), 2 plan has changes (--detailed-exitcode),
3 apply rolled back, 4 apply partial.
`

// Main runs lbc with args (without the program name) and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	tuneGC()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, args, stdout, stderr)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	// Errors carry host-originated text and file names: escaped (term.go).
	stderr = termWriter{stderr}
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitcode.Usage
	}
	cmd := args[0]
	switch cmd {
	case "-h", "--help", "-help":
		cmd = "help"
	case "--version", "-version":
		cmd = "version"
	}
	a, err := parseArgs(cmd, args[1:], stderr)
	if err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintf(stderr, "lbc: %v\n\n%s", err, usage)
		}
		return exitcode.Usage
	}
	e := &env{ctx: ctx, args: a, stdout: stdout, stderr: stderr, log: traceLog(stderr)}
	switch cmd {
	case "help":
		return e.help()
	case "version":
		fmt.Fprintf(stdout, "lbc %s\n", version.Version)
		return exitcode.OK
	case "schema":
		fmt.Fprint(stdout, schema.Source())
		return exitcode.OK
	case "validate":
		return e.validate()
	case "compile":
		return e.compile()
	case "explain":
		return e.explain()
	case "plan":
		return e.plan()
	case "apply":
		return e.apply()
	case "status":
		return e.status()
	case "watch":
		return e.watch()
	case "shards":
		return e.shards()
	}
	return exitcode.Usage
}

// env is one invocation: its context, arguments and output streams.
type env struct {
	ctx    context.Context
	args   *Args
	stdout io.Writer
	stderr io.Writer
	// log traces each step of plan and apply per device (LBC_TRACE set);
	// nil otherwise.
	log *slog.Logger
	// certs is the certificate source (--cert-dir), opened once.
	certs   *certsrc.Resolver
	certDir *certsrc.Dir
}

// traceLog is a logger to stderr when LBC_TRACE is set (to see where the
// time of a plan or apply goes), nil otherwise.
func traceLog(stderr io.Writer) *slog.Logger {
	if os.Getenv("LBC_TRACE") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (e *env) help() int {
	topic := e.args.Balancer
	if topic == "" {
		fmt.Fprint(e.stdout, usage)
		return exitcode.OK
	}
	if _, err := parseArgs(topic, []string{"-h"}, e.stdout); err != nil && !errors.Is(err, errUsage) {
		fmt.Fprintf(e.stderr, "lbc help: %v\n", err)
		return exitcode.Usage
	}
	return exitcode.OK
}

// fail prints err once, prefixed with the command, and returns exit code 1.
func (e *env) fail(err error) int {
	fmt.Fprintf(e.stderr, "lbc %s: %v\n", e.args.Command, err)
	return exitcode.Error
}
