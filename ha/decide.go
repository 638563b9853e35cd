package ha

import "time"

// view is what the driver knows when it decides.
type view struct {
	Initialized bool
	Sealed      bool
	Holding     bool
	// SteppedDownUntil: after sys/step-down the node leaves the lock to the
	// others until then.
	SteppedDownUntil time.Time
	Now              time.Time
}

// action is what the driver does next.
type action int

const (
	wait    action = iota // neither contend nor hold: stay (or become) a standby
	contend               // try to take the lock
	hold                  // keep the lock
	release               // give the lock up and become a standby
)

func (a action) String() string {
	return [...]string{"wait", "contend", "hold", "release"}[a]
}

// decide is the driver's rule. A node wants the lock while it can serve as
// the active node: unsealed, or not yet initialized (so that sys/init, sent to
// any node, runs on the one that holds it). A sealed node, as in Vault, does
// not take part in the election and gives the lock up when it seals; a node
// that stepped down waits out its pause before contending again.
func decide(v view) action {
	want := !v.Initialized || !v.Sealed
	switch {
	case v.Holding && want:
		return hold
	case v.Holding:
		return release
	case !want, v.Now.Before(v.SteppedDownUntil):
		return wait
	}
	return contend
}
