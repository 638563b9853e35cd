package core

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/logical"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/wal"
)

// batchToken creates an orphan batch token with policies as root.
func batchToken(t *testing.T, c *Core, root string, policies ...string) string {
	t.Helper()
	resp, err := do(t, c, root, logical.UpdateOperation, "auth/token/create-orphan", map[string]any{"type": "batch", "policies": policies, "ttl": "1h"})
	if err != nil {
		t.Fatalf("create a batch token: %v", err)
	}
	if !strings.HasPrefix(resp.Auth.ClientToken, "hvb.") || resp.Auth.TokenType != "batch" {
		t.Fatalf("create type=batch answered %+v", resp.Auth)
	}
	return resp.Auth.ClientToken
}

// tamper changes one character in the middle of tok.
func tamper(tok string) string {
	i, sub := len(tok)/2, "A"
	if tok[i] == 'A' {
		sub = "B"
	}
	return tok[:i] + sub + tok[i+1:]
}

// A request with a batch token goes through the ACL of its policies, as one
// with a service token does; the audit log names its type.
func TestBatchTokenAuthorizesPerItsPolicies(t *testing.T) {
	c, root := newTestCoreRoot(t)
	auditLog := filepath.Join(t.TempDir(), "audit.log")
	for _, r := range []struct {
		path string
		data map[string]any
	}{
		{"sys/mounts/kv", map[string]any{"type": "kv"}},
		{"kv/app", map[string]any{"v": "app"}},
		{"kv/other", map[string]any{"v": "other"}},
		{"sys/policies/acl/app-read", map[string]any{"policy": `path "kv/app" { capabilities = ["read"] }`}},
		{"sys/audit/file", map[string]any{"type": "file", "options": map[string]any{"file_path": auditLog}}},
	} {
		if _, err := do(t, c, root, logical.UpdateOperation, r.path, r.data); err != nil {
			t.Fatalf("write %s: %v", r.path, err)
		}
	}
	tok := batchToken(t, c, root, "app-read")

	resp, err := do(t, c, tok, logical.ReadOperation, "kv/app", nil)
	if err != nil || resp.Data["v"] != "app" {
		t.Fatalf("read kv/app with the batch token: %v, %v", resp, err)
	}
	for _, r := range []struct {
		op   logical.Operation
		path string
	}{{logical.ReadOperation, "kv/other"}, {logical.UpdateOperation, "kv/app"}, {logical.ReadOperation, "sys/policies/acl/app-read"}} {
		if _, err := do(t, c, tok, r.op, r.path, map[string]any{"v": "x"}); !errors.Is(err, ErrPermissionDenied) {
			t.Errorf("%s %s with a read-only batch token: %v, want permission denied", r.op, r.path, err)
		}
	}
	if _, err := do(t, c, tamper(tok), logical.ReadOperation, "kv/app", nil); !errors.Is(err, ErrPermissionDenied) || StatusOf(err) != http.StatusForbidden {
		t.Fatalf("a tampered batch token: %v, want 403", err)
	}
	look, err := do(t, c, tok, logical.ReadOperation, "auth/token/lookup-self", nil)
	if err != nil || look.Data["type"] != "batch" || look.Data["orphan"] != true {
		t.Fatalf("lookup-self with the batch token: %v, %v", look, err)
	}
	if _, err := do(t, c, tok, logical.UpdateOperation, "auth/token/revoke-self", nil); StatusOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "batch tokens cannot be revoked") {
		t.Fatalf("revoke-self with a batch token: %v, want 400", err)
	}
	// The lever that remains: the policies are read at each request.
	if _, err := do(t, c, root, logical.UpdateOperation, "sys/policies/acl/app-read", map[string]any{"policy": `path "kv/app" { capabilities = ["deny"] }`}); err != nil {
		t.Fatal(err)
	}
	if _, err := do(t, c, tok, logical.ReadOperation, "kv/app", nil); !errors.Is(err, ErrPermissionDenied) {
		t.Fatalf("read kv/app after its policy was changed to deny: %v", err)
	}

	b, err := os.ReadFile(auditLog)
	if err != nil {
		t.Fatal(err)
	}
	var batchLines int
	for line := range strings.Lines(string(b)) {
		var ent struct {
			Auth struct {
				TokenType string `json:"token_type"`
			} `json:"auth"`
			Request struct {
				Path string `json:"path"`
			} `json:"request"`
		}
		if err := json.Unmarshal([]byte(line), &ent); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		if ent.Request.Path == "kv/app" && ent.Auth.TokenType == "batch" {
			batchLines++
		}
	}
	if batchLines == 0 {
		t.Fatalf("no audit line of kv/app says token_type batch:\n%s", b)
	}
}

// The batch token key lives under the barrier at a path of the replicated
// class, outside the local token store: secondaries get it, and with it the
// primary's batch tokens.
func TestBatchTokenKeyIsReplicated(t *testing.T) {
	c, root := newTestCoreRoot(t)
	ctx := context.Background()
	before, err := c.barrier.List(ctx, tokenStoragePrefix+"id/")
	if err != nil {
		t.Fatal(err)
	}
	batchToken(t, c, root, "default")
	if e, err := c.barrier.Get(ctx, batchTokenKeyPath); err != nil || e == nil {
		t.Fatalf("no batch token key at %s after a batch create: %v", batchTokenKeyPath, err)
	}
	if got := c.classify(batchTokenKeyPath); got != wal.Replicated {
		t.Fatalf("classify(%s) = %s, want replicated", batchTokenKeyPath, got)
	}
	after, err := c.barrier.List(ctx, tokenStoragePrefix+"id/")
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Fatalf("a batch create stored a token: %d -> %d records", len(before), len(after))
	}
}

// A performance secondary never makes a key of its own: it waits for its
// primary's, and follows the entry when replication changes it.
func TestBatchKeyOnASecondary(t *testing.T) {
	ctx := context.Background()
	primary, proot := newTestCoreRoot(t)
	primaryTok := batchToken(t, primary, proot, "default")
	key, err := primary.barrier.Get(ctx, batchTokenKeyPath)
	if err != nil || key == nil {
		t.Fatal(err)
	}

	c, root := newTestCoreRoot(t)
	c.SetReplication(&perfRepl{})
	_, err = do(t, c, root, logical.UpdateOperation, "auth/token/create-orphan", map[string]any{"type": "batch", "policies": "default"})
	if StatusOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "performance secondary") || !strings.Contains(err.Error(), "primary") {
		t.Fatalf("a batch create on a secondary without the key: %v; want a 400 saying the key comes from the primary", err)
	}
	if e, err := c.barrier.Get(ctx, batchTokenKeyPath); e != nil || err != nil {
		t.Fatalf("a secondary made a batch token key of its own: %v %v", e, err)
	}
	if _, err := do(t, c, primaryTok, logical.ReadOperation, "auth/token/lookup-self", nil); !errors.Is(err, ErrPermissionDenied) {
		t.Fatalf("the primary's batch token before its key arrived: %v, want 403", err)
	}

	// Replication brings the primary's key: the primary's tokens work here,
	// and so do batch creates.
	replicate(t, c, key)
	if _, err := do(t, c, primaryTok, logical.ReadOperation, "auth/token/lookup-self", nil); err != nil {
		t.Fatalf("the primary's batch token once its key arrived: %v", err)
	}
	own := batchToken(t, c, root, "default")

	// A resync to another primary brings another key: the old tokens stop.
	other, oroot := newTestCoreRoot(t)
	batchToken(t, other, oroot, "default")
	okey, err := other.barrier.Get(ctx, batchTokenKeyPath)
	if err != nil || okey == nil {
		t.Fatal(err)
	}
	replicate(t, c, okey)
	for _, tok := range []string{primaryTok, own} {
		if _, err := do(t, c, tok, logical.ReadOperation, "auth/token/lookup-self", nil); !errors.Is(err, ErrPermissionDenied) {
			t.Fatalf("a batch token of the replaced key: %v, want 403", err)
		}
	}

	// A DR secondary does not make one either.
	c.SetReplication(&perfRepl{mode: ModeDisabled, dr: ModeSecondary})
	if err := c.canGenerateBatchKey(); err == nil || !strings.Contains(err.Error(), "DR secondary") {
		t.Fatalf("canGenerateBatchKey on a DR secondary: %v", err)
	}
}

// perfRepl is the replication layer of a performance secondary, or of the
// modes its fields name; they never change once it is attached.
type perfRepl struct {
	noReplication
	mode, dr string
}

func (r *perfRepl) Mode() string {
	if r.mode == "" {
		return ModeSecondary
	}
	return r.mode
}

func (r *perfRepl) DRMode() string {
	if r.dr == "" {
		return ModeDisabled
	}
	return r.dr
}

// replicate writes e into c's barrier and tells c, as an applied batch does.
func replicate(t *testing.T, c *Core, e *storage.Entry) {
	t.Helper()
	if err := c.barrier.Put(context.Background(), &storage.Entry{Key: e.Key, Value: e.Value}); err != nil {
		t.Fatal(err)
	}
	c.Invalidate([]string{e.Key})
}

// A batch token made on the primary authorises a DR operation on its DR
// secondary when its policies grant it, as a service token does.
func TestBatchTokenAsDROperationToken(t *testing.T) {
	ctx := context.Background()
	c, root := newTestCoreRoot(t)
	r := attachDR(c, ModeDisabled) // made before this cluster becomes a DR secondary
	if _, err := do(t, c, root, logical.UpdateOperation, "sys/policies/acl/dr-ops", map[string]any{"policy": `path "sys/replication/dr/secondary/*" { capabilities = ["update"] }`}); err != nil {
		t.Fatal(err)
	}
	granted, other := batchToken(t, c, root, "dr-ops"), batchToken(t, c, root, "default")
	r.mode.Store(ModeSecondary)
	if err := c.CheckDROperationToken(ctx, granted, promotePath); err != nil {
		t.Fatalf("a batch token granting update on %s: %v", promotePath, err)
	}
	requireDenied(t, "a batch token without the policy", c.CheckDROperationToken(ctx, other, promotePath))
	requireDenied(t, "a tampered batch token", c.CheckDROperationToken(ctx, tamper(granted), promotePath))
}
