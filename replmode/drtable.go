package replmode

import (
	"github.com/cofferhq/coffer/logical"
)

// DR replication's operations (docs/replication.md, "DR replication").
const (
	OpDREnablePrimary    Op = "dr-enable-primary"
	OpDRDisablePrimary   Op = "dr-disable-primary"
	OpDRSecondaryToken   Op = "dr-secondary-token"
	OpDRRevokeSecondary  Op = "dr-revoke-secondary"
	OpDRDemote           Op = "dr-demote"
	OpDREnableSecondary  Op = "dr-enable-secondary"
	OpDRPromote          Op = "dr-promote"
	OpDRUpdatePrimary    Op = "dr-update-primary"
	OpDRDisableSecondary Op = "dr-disable-secondary"
)

// DRStep is the outcome of an allowed DR operation: the DR mode it moves
// to, the performance mode (a promotion makes the cluster a performance
// primary too), and what it wipes.
type DRStep struct {
	To, PerfTo Mode
	Wipe       Wipe
}

// NextDR decides a DR operation from the performance and DR modes: the step,
// or an invalid request error that says why not. It does no I/O. A DR
// secondary is nothing else: it refuses every performance operation too
// (decidePerf).
func NextDR(perf, dr Mode, op Op) (DRStep, error) {
	if perf == "" {
		perf = Disabled
	}
	if dr == "" {
		dr = Disabled
	}
	stay := DRStep{To: dr, PerfTo: perf, Wipe: WipeNothing}
	refuse := func(msg string) (DRStep, error) { return DRStep{}, logical.InvalidRequest("%s", msg) }
	switch op {
	case OpDREnablePrimary:
		switch {
		case dr == Primary:
			return refuse("this cluster is already a DR primary")
		case dr == Secondary:
			return refuse("this cluster is a DR secondary: promote it, or disable DR replication on it first")
		case perf == Secondary:
			return refuse("this cluster is a performance secondary: only a primary ships to DR secondaries")
		}
		stay.To = Primary
		return stay, nil
	case OpDRDisablePrimary, OpDRSecondaryToken, OpDRRevokeSecondary:
		if dr != Primary {
			return refuse("this cluster is not a DR primary: enable it with sys/replication/dr/primary/enable")
		}
		if op == OpDRDisablePrimary {
			stay.To = Disabled
		}
		return stay, nil
	case OpDRDemote:
		switch {
		case dr != Primary:
			return refuse("this cluster is not a DR primary")
		case perf == Primary:
			return refuse("this cluster is also a performance primary: demote it (sys/replication/performance/primary/demote) or disable performance replication first")
		}
		stay.To = Secondary
		return stay, nil
	case OpDREnableSecondary:
		switch {
		case dr == Secondary:
			return refuse("this cluster is already a DR secondary: disable it first to follow another primary")
		case dr == Primary || perf != Disabled:
			return refuse("a DR secondary is nothing else: disable performance and DR replication on this cluster first")
		}
		return DRStep{To: Secondary, PerfTo: Disabled, Wipe: WipeAllButWAL}, nil
	case OpDRPromote, OpDRUpdatePrimary, OpDRDisableSecondary:
		if dr != Secondary {
			return refuse("this cluster is not a DR secondary")
		}
		switch op {
		case OpDRPromote:
			return DRStep{To: Primary, PerfTo: Primary, Wipe: WipeNothing}, nil
		case OpDRDisableSecondary:
			stay.To = Disabled
		}
		return stay, nil
	}
	return refuse("unknown DR operation " + string(op))
}
