package tests

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"
)

// A secret larger than one replication message can carry (the dev bus's
// max_payload is 8 MiB, max_request_size 32 MiB) is refused with 413 and a
// reason, on the primary and forwarded through a secondary, and nothing of
// it is applied; replication goes on (before, it committed and its batch was
// retried for ever: every secondary stalled behind it).
func TestOversizedWriteIsRefusedAndReplicationGoesOn(t *testing.T) {
	rp := fwdPairT(t)
	big := strings.Repeat("x", 9<<20)
	for _, c := range []struct {
		name string
		cl   *api.Client
	}{{"on the primary", rp.p.root}, {"forwarded by the secondary", rp.s.root}} {
		_, err := kvWrite(c.cl, "big", big)
		var re *api.ResponseError
		if !errors.As(err, &re) || re.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(err.Error(), "max_payload") {
			t.Fatalf("a 9 MiB secret %s: %v (%#v); want 413 naming max_payload", c.name, err, re)
		}
	}
	if s, err := rp.p.root.Logical().Read("secret/data/big"); err != nil || s != nil {
		t.Fatalf("the refused secret on the primary: %v, %v", s, err)
	}
	if _, err := kvWrite(rp.p.root, "after", "small"); err != nil {
		t.Fatal(err)
	}
	waitKV(t, rp.s.root, "secret", "after", "small", replTimeout)
	// Above a batch's 1 MiB but within the bus's 8 MiB: one batch of its
	// own, shipped.
	mid := strings.Repeat("m", 2<<20)
	if _, err := kvWrite(rp.p.root, "mid", mid); err != nil {
		t.Fatalf("a 2 MiB secret: %v", err)
	}
	waitKV(t, rp.s.root, "secret", "mid", mid, replTimeout)
}
