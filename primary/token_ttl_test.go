package primary

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// An activation token is a standing invitation into the replication set: its
// ttl is capped (24h unless configured), and a longer one is refused with a
// message that says the maximum and how to raise it.
func TestSecondaryTokenTTLIsCapped(t *testing.T) {
	ctx := context.Background()
	r := newShipRig(t)
	_, _, err := r.p.SecondaryToken(ctx, "dc2", 24*time.Hour+time.Second)
	if !errors.Is(err, ErrTokenTTL) || !strings.Contains(err.Error(), "maximum of 24h0m0s") ||
		!strings.Contains(err.Error(), "max_activation_token_ttl") {
		t.Fatalf("ttl above 24h: %v", err)
	}
	if secs := r.p.Status().Secondaries; len(secs) != 0 {
		t.Fatalf("a refused token was recorded: %+v", secs)
	}
	now := time.Now()
	if _, exp, err := r.p.SecondaryToken(ctx, "dc2", 24*time.Hour); err != nil || exp.Before(now.Add(24*time.Hour-time.Minute)) {
		t.Fatalf("ttl of exactly the maximum: %v, expires %s", err, exp)
	}

	r.p.Stop()
	short := r.cfg
	short.MaxTokenTTL = 10 * time.Minute
	p, err := Open(ctx, short)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	if _, _, err := p.SecondaryToken(ctx, "dc3", time.Hour); !errors.Is(err, ErrTokenTTL) || !strings.Contains(err.Error(), "maximum of 10m0s") {
		t.Fatalf("ttl above a configured 10m: %v", err)
	}
	if _, exp, err := p.SecondaryToken(ctx, "dc3", 0); err != nil || exp.After(time.Now().Add(10*time.Minute+time.Second)) {
		t.Fatalf("no ttl under a 10m maximum: %v, expires %s; want the maximum, not 30m", err, exp)
	}

	bad := r.cfg
	bad.MaxTokenTTL = -time.Second
	if err := bad.Validate(); err == nil {
		t.Fatal("a negative maximum validated")
	}
}
