// Package version holds lbc's version string, stamped into every rendered file.
package version

// Version is lbc's version; release builds set it with -ldflags "-X lbc/internal/version.Version=...".
var Version = "0.1.0-dev"
