package core

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cofferhq/coffer/forwarder"
	"github.com/cofferhq/coffer/logical"
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

// The primary applies a forwarded request only on a replicated target: a
// mount that is local here, a login and the token store are refused, whatever
// a secondary sends (finding 7 of issue 11).
func TestApplyForwardedRefusesLocalTargets(t *testing.T) {
	ctx := context.Background()
	c := newTestCore(t)
	if err := c.EnableMount(ctx, &MountEntry{Table: SecretTable, Path: "loc/", Type: "kv", Local: true, Options: map[string]string{"version": "1"}}); err != nil {
		t.Fatal(err)
	}
	if err := c.EnableMount(ctx, &MountEntry{Table: SecretTable, Path: "kv/", Type: "kv", Options: map[string]string{"version": "1"}}); err != nil {
		t.Fatal(err)
	}
	if err := c.EnableMount(ctx, &MountEntry{Table: AuthTable, Path: "userpass/", Type: "userpass"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"loc/x", "auth/token/create", "auth/userpass/login/bob"} {
		_, _, err := c.ApplyForwarded(ctx, &forwarder.Call{SecondaryID: "dc2", Operation: logical.UpdateOperation, Path: p, Data: map[string]any{"v": "1", "password": "x"}})
		if StatusOf(err) != 403 {
			t.Errorf("forwarded write to %s: %v, want 403", p, err)
		}
	}
	if _, _, err := c.ApplyForwarded(ctx, &forwarder.Call{SecondaryID: "dc2", Operation: logical.UpdateOperation, Path: "kv/x", Data: map[string]any{"v": "1"}}); err != nil {
		t.Fatalf("forwarded write to a replicated mount: %v", err)
	}
	if e, err := c.barrier.Get(ctx, "sys/token/"); err != nil || e != nil {
		t.Fatalf("a token was stored: %v", err)
	}
}
