package core

import (
	"net/http"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/logical"
)

// switchingRepl is a performance secondary between primaries: no forwarding
// client (starting, update-primary running, demoted).
type switchingRepl struct{ noReplication }

func (switchingRepl) Mode() string { return ModeSecondary }

// A write a secondary would forward, while it follows no primary, is a
// retryable 503 that says it was not sent: not a 400 naming the primary it
// followed before (a client takes a 400 as final).
func TestForwardWithoutAPrimaryIsRetryable(t *testing.T) {
	c, root := newTestCoreRoot(t)
	c.SetReplication(switchingRepl{})
	_, err := do(t, c, root, logical.UpdateOperation, "sys/policies/acl/app", map[string]any{"policy": `path "x" { capabilities = ["read"] }`})
	if logical.StatusCode(err) != http.StatusServiceUnavailable || !strings.Contains(err.Error(), "not sent") {
		t.Fatalf("a forwarded write with no primary to forward to: %v, want 503 saying it was not sent", err)
	}
}
