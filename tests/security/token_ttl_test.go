package security

// Finding 11 of issue 11, its token half: an activation token's ttl had no
// upper bound, so a primary could hand out a standing invitation into the
// replication set. Now a ttl above replication.max_activation_token_ttl (24h
// unless configured) is refused with a 400 that names the maximum, and a
// token without a ttl gets the default or the maximum, whichever is lower.

import (
	"net/http"
	"strings"
	"testing"
)

func TestActivationTokenTTLIsCapped(t *testing.T) {
	def := startDevServer(t, serverOpts{Name: "dc1"})
	enablePrimary(t, def)
	R := def.rootClient()
	_, err := R.Logical().Write(pathSecondaryToken, map[string]any{"id": "dc2", "ttl": "8760h"})
	if !isStatus(err, http.StatusBadRequest) || !strings.Contains(err.Error(), "24h") {
		t.Fatalf("a token of a year under the default maximum: %v, want 400 naming 24h", err)
	}
	if s, err := R.Logical().Write(pathSecondaryToken, map[string]any{"id": "dc2", "ttl": "24h"}); err != nil || s.WrapInfo.TTL > 24*3600 {
		t.Fatalf("a token of exactly the maximum: %v (%+v)", err, s)
	}

	short := startDevServer(t, serverOpts{Name: "dc3", Replication: `max_activation_token_ttl = "10m"`})
	enablePrimary(t, short)
	S := short.rootClient()
	if _, err := S.Logical().Write(pathSecondaryToken, map[string]any{"id": "dc4", "ttl": "1h"}); !isStatus(err, http.StatusBadRequest) {
		t.Fatalf("1h under a configured 10m maximum: %v, want 400", err)
	}
	s, err := S.Logical().Write(pathSecondaryToken, map[string]any{"id": "dc4"})
	if err != nil || s.WrapInfo.TTL > 600 {
		t.Fatalf("no ttl under a 10m maximum: %v (%+v), want at most 600 s, not the 30 min default", err, s)
	}
}
