package security

// Finding 7 of issue 11: a secondary forwarded to the primary anything that
// carried an X-Vault-Index it had not reached with X-Vault-Inconsistent:
// forward-active-node, sys/replication/* and local paths included. Now it
// forwards by index only what the primary would accept; anything else gets
// the 412 (and is never sent).

import (
	"errors"
	"net/http"
	"testing"

	"github.com/hashicorp/vault/api"
)

func TestForwardByIndexOnlyWhatThePrimaryAccepts(t *testing.T) {
	ns, _, pri, sec := startExternalPair(t)
	P, S := pri.rootClient(), sec.client(pri.rootID)
	if _, err := S.Logical().Write("sys/mounts/loc", map[string]any{"type": "kv", "local": true}); err != nil {
		t.Fatalf("a local mount on the secondary: %v", err)
	}
	// The secondary cannot catch up while NATS is down: a write on the
	// primary then carries an index the secondary has not reached.
	if err := ns.Close(); err != nil {
		t.Fatal(err)
	}
	var state string
	if _, err := P.WithResponseCallbacks(api.RecordState(&state)).Logical().Write("secret/data/idx", map[string]any{"data": map[string]any{"v": "1"}}); err != nil {
		t.Fatalf("write on the primary: %v", err)
	}
	if state == "" {
		t.Fatal("no X-Vault-Index from the primary's write")
	}
	ahead := S.WithRequestCallbacks(api.RequireState(state), api.ForwardInconsistent())
	for _, tc := range []struct {
		what string
		do   func() error
	}{
		{"a replication endpoint", func() error {
			_, err := ahead.Logical().Write("sys/replication/performance/primary/secondary-token", map[string]any{"id": "evil"})
			return err
		}},
		{"a local mount", func() error {
			_, err := ahead.Logical().Write("loc/x", map[string]any{"v": "1"})
			return err
		}},
		{"a token", func() error {
			_, err := ahead.Logical().Write("auth/token/create", map[string]any{})
			return err
		}},
	} {
		err := tc.do()
		if code := httpStatusOf(err); code != http.StatusPreconditionFailed {
			t.Errorf("%s with an unmet X-Vault-Index and forward-active-node: %v; want 412 (never forwarded)", tc.what, err)
		}
	}
}

// httpStatusOf is the HTTP status of a vault/api error (0 for none).
func httpStatusOf(err error) int {
	var re *api.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}
