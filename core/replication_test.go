package core

import (
	"context"
	"errors"
	"testing"
	"time"
)

// While an activation replaces the data, core holds no lock across the sync:
// status answers at once, and init, unseal and seal are refused with
// ErrReplacing instead of waiting for minutes or opening the old barrier.
func TestReplaceDataRefusesStateChangesWithoutBlocking(t *testing.T) {
	ctx := context.Background()
	c := newTestCore(t)
	root, err := c.barrier.RootKey()
	if err != nil {
		t.Fatal(err)
	}
	inFill, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- c.ReplaceData(ctx, root, Replacement{
			Wipe: func(context.Context) error { return nil },
			Fill: func(context.Context) error {
				close(inFill)
				<-release
				return nil
			},
		})
	}()
	select {
	case <-inFill:
	case err := <-done:
		t.Fatalf("ReplaceData ended before its fill: %v", err)
	}
	status := make(chan error, 1)
	go func() {
		_, err := c.SealStatus(ctx)
		status <- err
	}()
	select {
	case err := <-status:
		if err != nil {
			t.Fatalf("seal status during the fill: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("seal status waited for the fill: stateMu is held across the sync")
	}
	if _, err := c.Unseal(ctx, []byte("share")); !errors.Is(err, ErrReplacing) {
		t.Fatalf("unseal during the fill: %v, want ErrReplacing", err)
	}
	if _, err := c.Initialize(ctx, InitRequest{SecretShares: 1, SecretThreshold: 1}); !errors.Is(err, ErrReplacing) {
		t.Fatalf("init during the fill: %v, want ErrReplacing", err)
	}
	if err := c.ReplaceData(ctx, root, Replacement{}); !errors.Is(err, ErrReplacing) {
		t.Fatalf("a second replacement during the fill: %v, want ErrReplacing", err)
	}
	if StatusOf(ErrReplacing) != 503 {
		t.Fatalf("ErrReplacing maps to %d, want 503", StatusOf(ErrReplacing))
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("ReplaceData: %v", err)
	}
	if c.Sealed() {
		t.Fatal("the core is sealed after the replacement")
	}
}
