package cli

import (
	"fmt"

	"lbc/compiler"
	"lbc/internal/exitcode"
)

// explain prints the scheduler's reasoning for one balancer.
func (e *env) explain() int {
	src, spec, err := e.loadSpecs()
	if err != nil {
		return e.printLoadError(err)
	}
	prev, err := readLock(src)
	if err != nil {
		return e.fail(err)
	}
	ex, err := compiler.Explain(spec, prev, e.args.Balancer)
	if err != nil {
		fmt.Fprintln(e.stderr, "lbc "+err.Error())
		return exitcode.Error
	}
	// Names come from the specs and lbc.lock, files in the tree: escaped.
	if err := ex.Write(termWriter{e.stdout}); err != nil {
		return e.fail(err)
	}
	return exitcode.OK
}
