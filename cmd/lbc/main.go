// Command lbc compiles CUE specs of HAProxy devices and balancers and
// reconciles a fleet of hosts with them.
package main

import (
	"os"

	"lbc/internal/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr)) }
