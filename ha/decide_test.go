package ha

import (
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	now := time.Unix(1000, 0)
	later := now.Add(time.Second)
	for _, c := range []struct {
		name string
		v    view
		want action
	}{
		{"fresh storage: contend so that init runs on the active node", view{Now: now}, contend},
		{"initialized and sealed: stay out", view{Initialized: true, Sealed: true, Now: now}, wait},
		{"unsealed standby: contend", view{Initialized: true, Now: now}, contend},
		{"active and unsealed: hold", view{Initialized: true, Holding: true, Now: now}, hold},
		{"active, uninitialized: hold", view{Holding: true, Now: now}, hold},
		{"active and sealed: release", view{Initialized: true, Sealed: true, Holding: true, Now: now}, release},
		{"stepped down: wait out the pause", view{Initialized: true, SteppedDownUntil: later, Now: now}, wait},
		{"pause over: contend", view{Initialized: true, SteppedDownUntil: now, Now: now}, contend},
	} {
		if got := decide(c.v); got != c.want {
			t.Errorf("%s: decide(%+v) = %v, want %v", c.name, c.v, got, c.want)
		}
	}
}
