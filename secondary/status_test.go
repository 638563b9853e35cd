package secondary

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// The connection state turns two heartbeat intervals after the primary's
// last answer, whatever the RPC timeout.
func TestConnectedAt(t *testing.T) {
	t0 := time.Unix(1000, 0)
	iv := 2 * time.Second
	for _, tc := range []struct {
		now      time.Time
		answered bool
		last     time.Time
		want     bool
	}{
		{t0.Add(time.Second), true, t0, true},
		{t0.Add(2 * iv), true, t0, true},
		{t0.Add(2*iv + time.Millisecond), true, t0, false},
		{t0.Add(time.Second), false, t0, false}, // the last heartbeat failed
		{t0, true, time.Time{}, false},          // never answered
		{t0.Add(-time.Second), true, t0, true},  // a clock step back
	} {
		if got := connectedAt(tc.now, tc.answered, tc.last, iv); got != tc.want {
			t.Errorf("connectedAt(last+%s, answered %v) = %v, want %v", tc.now.Sub(tc.last), tc.answered, got, tc.want)
		}
	}
}

// Once revoked, the revocation stays the reported error: a key fetch in
// flight, cancelled as replication stops, does not replace it (it did, and
// a restarted revoked secondary then reported "context canceled").
func TestRevocationStaysTheLastError(t *testing.T) {
	s := &Secondary{revoked: make(chan struct{})}
	s.setErr(errors.New("rpc key: revoked: this secondary was revoked"))
	close(s.revoked)
	s.setErr(fmt.Errorf("request coffer.dc1.rpc.key: %w", context.Canceled))
	if !strings.Contains(s.lastErr, "revoked") {
		t.Fatalf("last error after revocation = %q, want the revocation", s.lastErr)
	}
}
