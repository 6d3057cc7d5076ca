package cli

import (
	"encoding/json"
	"errors"
	"fmt"

	"lbc/compiler"
	"lbc/internal/exitcode"
	"lbc/schema"
)

// validate checks the specs and prints every problem.
func (e *env) validate() int {
	_, spec, err := e.loadSpecs()
	if err != nil {
		return e.printLoadError(err)
	}
	// The certificates the specs name, when a source is given.
	if _, err := e.checkCerts(spec, false); err != nil {
		return e.printLoadError(err)
	}
	if e.args.JSON {
		return exitcode.OK
	}
	fmt.Fprintf(e.stdout, "ok: %d devices, %d balancers\n", len(spec.Devices), len(spec.Balancers))
	return exitcode.OK
}

// printLoadError prints spec errors one a line (or as JSON diagnostics with
// --json) and returns exit code 1.
func (e *env) printLoadError(err error) int {
	var (
		diags  schema.Diagnostics
		unfit  *compiler.UnplaceableError
		shared *compiler.SharedAddressError
	)
	if errors.As(err, &unfit) || errors.As(err, &shared) {
		// Scheduling errors: one a line, each starting with its position.
		fmt.Fprintln(e.stderr, err)
		fmt.Fprintf(e.stderr, "lbc %s: cannot place every balancer; nothing written\n", e.args.Command)
		return exitcode.Error
	}
	if !errors.As(err, &diags) {
		return e.fail(err)
	}
	if e.args.JSON {
		enc := json.NewEncoder(e.stdout)
		for _, d := range diags {
			enc.Encode(d)
		}
		return exitcode.Error
	}
	for _, d := range diags {
		fmt.Fprintln(e.stderr, d.String())
	}
	fmt.Fprintf(e.stderr, "lbc %s: %d error(s); nothing written\n", e.args.Command, len(diags))
	return exitcode.Error
}
