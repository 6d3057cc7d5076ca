package reconcile

// RevisionGuard is the GitOps rule of an apply: a host that runs a newer
// revision than the one being applied (or one whose order cannot be
// told) is refused, so that an out-of-order job cannot roll it back.
// internal/gitsrc.Guard is the one lbc uses; every command that applies
// passes it to Apply (ApplyOptions.Guard).
type RevisionGuard interface {
	// CheckRevision returns nil when a host that runs hostRev ("" when
	// lbc never applied there) may be given newRev, and why not otherwise.
	CheckRevision(hostRev, newRev string) error
}

// checkRevision asks the guard, if any, about the revision the host runs
// as its lock holder read it (after the stale check: the one the plan saw).
func (x *tx) checkRevision() error {
	if x.o.Guard == nil {
		return nil
	}
	host := ""
	if x.live != nil && x.live.State != nil {
		host = x.live.State.Revision
	}
	return x.o.Guard.CheckRevision(host, x.rev)
}
