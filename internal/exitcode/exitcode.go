// Package exitcode declares every exit code the lbc command returns, in one place.
package exitcode

const (
	OK         = 0 // success; for plan --detailed-exitcode: no changes
	Error      = 1 // invalid input or an error before any change was made
	Changes    = 2 // plan --detailed-exitcode: changes pending
	RolledBack = 3 // apply: a device failed and was rolled back, none applied
	Partial    = 4 // apply: some devices applied, some failed
	Usage      = 64
)
