package tokens

import (
	"testing"
	"time"

	"github.com/cofferhq/coffer/logical"
)

// The expiration manager revokes an expired token and its children without
// any lookup: storage is read directly, never through the store.
func TestExpirationManagerRevokesInBackground(t *testing.T) {
	h := newHarness(t, Options{ExpirationInterval: 5 * time.Millisecond})
	short := h.create(&Entry{Parent: h.root, Policies: []string{"p"}, TTL: time.Hour})
	kid := h.create(&Entry{Parent: short.ID, Policies: []string{"p"}, TTL: 10 * time.Hour})
	long := h.create(&Entry{Parent: h.root, Policies: []string{"p"}, TTL: 3 * time.Hour})
	h.s.Start()

	h.clock.Advance(2 * time.Hour)
	waitFor(t, "the expired token and its child to leave storage", func() bool {
		return !h.stored(short.ID) && !h.stored(kid.ID)
	})
	if !h.stored(long.ID) || !h.stored(h.root) {
		t.Fatal("the manager revoked tokens that have not expired")
	}
	if n := len(h.keys("accessor/")); n != 2 {
		t.Fatalf("%d accessors left, want 2", n)
	}

	// A renewal moves the deadline: the old one must not revoke it. renewable
	// and long first expire together at t0+3h; once long is gone, the
	// manager has been past that deadline.
	renewable := h.create(&Entry{Parent: h.root, Policies: []string{"p"}, TTL: time.Hour, Renewable: true})
	h.clock.Advance(50 * time.Minute)
	if _, err := h.s.Renew(h.ctx, renewable.ID, 2*time.Hour); err != nil { // now expires t0+4h50m
		t.Fatal(err)
	}
	h.clock.Advance(80 * time.Minute) // t0+4h10m
	waitFor(t, "the long token to expire", func() bool { return !h.stored(long.ID) })
	if !h.stored(renewable.ID) {
		t.Fatal("the manager revoked a renewed token at its old deadline")
	}

	h.s.Stop()
	h.s.Stop() // idempotent
}

// A store started on storage written by another (a restart) schedules the
// tokens it finds there.
func TestExpirationManagerAfterRestart(t *testing.T) {
	h := newHarness(t, Options{})
	e := h.create(&Entry{Parent: h.root, Policies: []string{"p"}, TTL: time.Hour})

	s2 := New(h.view, Options{Now: h.clock.Now, ExpirationInterval: 5 * time.Millisecond}, h.s.log)
	t.Cleanup(s2.Stop)
	s2.Start()
	h.clock.Advance(time.Hour)
	waitFor(t, "the token created before the restart to expire", func() bool { return !h.stored(e.ID) })
	if !h.stored(h.root) {
		t.Fatal("root token revoked")
	}
}

// A token whose last use was consumed is revoked by the manager when the
// router does not do it.
func TestExpirationManagerRevokesSpentTokens(t *testing.T) {
	h := newHarness(t, Options{ExpirationInterval: 5 * time.Millisecond, PendingRevocationDelay: time.Minute})
	e := h.create(&Entry{Parent: h.root, Policies: []string{"p"}, NumUses: 1})
	h.s.Start()
	if u, err := h.s.UseToken(h.ctx, e); err != nil || !u.RevocationPending() {
		t.Fatalf("UseToken = %+v, %v", u, err)
	}
	// Still there during the request that used it.
	if !h.stored(e.ID) {
		t.Fatal("spent token revoked before its request ended")
	}
	h.clock.Advance(2 * time.Minute)
	waitFor(t, "the spent token to be revoked", func() bool { return !h.stored(e.ID) })
}

func TestStartStopRestart(t *testing.T) {
	h := newHarness(t, Options{ExpirationInterval: 5 * time.Millisecond})
	h.s.Stop() // never started
	h.s.Start()
	h.s.Start() // already running
	h.s.Stop()
	h.s.Start()
	e := h.create(&Entry{Parent: h.root, Policies: []string{"p"}, TTL: time.Minute})
	h.clock.Advance(time.Minute)
	waitFor(t, "expiry after a restart of the manager", func() bool { return !h.stored(e.ID) })
	h.s.runMu.Lock()
	done := h.s.done
	h.s.runMu.Unlock()
	h.s.Stop()
	select {
	case <-done:
	default:
		t.Fatal("Stop returned before the manager's goroutine did")
	}
}

// An expired token looked up through the backend is a bad token.
func TestExpiredTokenIsBadToken(t *testing.T) {
	h := newHarness(t, Options{})
	e := h.create(&Entry{Parent: h.root, Policies: []string{"p"}, TTL: time.Minute})
	h.clock.Advance(time.Minute)
	h.fails(h.root, logical.UpdateOperation, "lookup", map[string]any{"token": e.ID}, 403, "bad token")
	h.fails(e.ID, logical.ReadOperation, "lookup-self", nil, 403, "bad token")
}
