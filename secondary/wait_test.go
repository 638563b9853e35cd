package secondary

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A forwarded write's wait for its WAL index ends with ErrPrimaryChanged
// when another primary takes the set over meanwhile: the new primary's WAL
// indexes are another history, and reaching the number proves nothing. (A
// DR failover drill acknowledged a lost write through a secondary this way.)
func TestWaitRemoteWALAcrossAGenerationChange(t *testing.T) {
	s := &Secondary{m: NewMachine(), advanced: make(chan struct{}), revoked: make(chan struct{})}
	s.step(Started{LastRemoteWAL: 10, Generation: 1})
	s.step(HeartbeatOK{Gen: 1, PrimaryLastWAL: 12})
	done := make(chan error, 1)
	gen := s.generation() // as WaitRemoteWAL takes it when called
	go func() { done <- s.waitRemoteWAL(context.Background(), 12, gen) }()
	s.step(HeartbeatOK{Gen: 2, PrimaryLastWAL: 500}) // promoted elsewhere: a new set history
	s.step(SyncDone{WALIndex: 500})                  // the secondary follows it past 12
	select {
	case err := <-done:
		if !errors.Is(err, ErrPrimaryChanged) {
			t.Fatalf("WaitRemoteWAL = %v, want ErrPrimaryChanged", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WaitRemoteWAL still waits after the generation changed")
	}
	// Within one generation it returns once the index is applied.
	go func() { done <- s.WaitRemoteWAL(context.Background(), 400) }()
	if err := <-done; err != nil {
		t.Fatalf("WaitRemoteWAL(400) at 500, same generation: %v", err)
	}
}
