package core

import (
	"bytes"
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

// The batch token keys live under the barrier outside the local token store:
// the signing key at a path of the local class (performance replication never
// ships it), its public key at a path of the replicated class.
func TestBatchTokenKeys(t *testing.T) {
	c, root := newTestCoreRoot(t)
	ctx := context.Background()
	before, err := c.barrier.List(ctx, tokenStoragePrefix+"id/")
	if err != nil {
		t.Fatal(err)
	}
	batchToken(t, c, root, "default")
	for path, class := range map[string]wal.Class{batchTokenSigningKeyPath: wal.Local, batchTokenPublicKeyPath: wal.Replicated} {
		if e, err := c.barrier.Get(ctx, path); err != nil || e == nil {
			t.Fatalf("nothing at %s after a batch create: %v", path, err)
		}
		if got := c.classify(path); got != class {
			t.Fatalf("classify(%s) = %s, want %s", path, got, class)
		}
	}
	after, err := c.barrier.List(ctx, tokenStoragePrefix+"id/")
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Fatalf("a batch create stored a token: %d -> %d records", len(before), len(after))
	}
}

// entry reads path from c's barrier; nil when absent.
func entry(t *testing.T, c *Core, path string) *storage.Entry {
	t.Helper()
	e, err := c.barrier.Get(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// A performance secondary verifies its primary's batch tokens with the
// published key, signs its own with a key of its own, publishes nothing, and
// can make no token its primary accepts. It follows the published key when
// replication changes it.
func TestBatchTokensOnAPerformanceSecondary(t *testing.T) {
	primary, proot := newTestCoreRoot(t)
	primaryTok := batchToken(t, primary, proot, "default")
	pub := entry(t, primary, batchTokenPublicKeyPath)

	c, root := newTestCoreRoot(t)
	c.SetReplication(&perfRepl{})
	if _, err := do(t, c, primaryTok, logical.ReadOperation, "auth/token/lookup-self", nil); !errors.Is(err, ErrPermissionDenied) {
		t.Fatalf("the primary's batch token before its public key arrived: %v, want 403", err)
	}
	// Its own tokens need no key of the primary's.
	own := batchToken(t, c, root, "default")
	if entry(t, c, batchTokenPublicKeyPath) != nil {
		t.Fatal("a performance secondary published its batch token key")
	}

	// Replication brings what the primary publishes: its tokens work here,
	// the secondary's own still do, and the primary refuses the secondary's.
	replicate(t, c, pub)
	for name, tok := range map[string]string{"the primary's": primaryTok, "its own": own, "a later one of its own": batchToken(t, c, root, "default")} {
		if _, err := do(t, c, tok, logical.ReadOperation, "auth/token/lookup-self", nil); err != nil {
			t.Fatalf("%s batch token on the secondary: %v", name, err)
		}
	}
	if !bytes.Equal(entry(t, c, batchTokenPublicKeyPath).Value, pub.Value) {
		t.Fatal("the secondary replaced its primary's published key")
	}
	for _, tok := range []string{own, batchToken(t, c, root, "default")} {
		if _, err := do(t, primary, tok, logical.ReadOperation, "auth/token/lookup-self", nil); !errors.Is(err, ErrPermissionDenied) || StatusOf(err) != http.StatusForbidden {
			t.Fatalf("a batch token minted on a performance secondary, on its primary: %v, want 403", err)
		}
	}

	// A resync to another primary brings another public key: the former
	// primary's tokens stop here, the secondary's own go on.
	other, oroot := newTestCoreRoot(t)
	otherTok := batchToken(t, other, oroot, "default")
	replicate(t, c, entry(t, other, batchTokenPublicKeyPath))
	if _, err := do(t, c, primaryTok, logical.ReadOperation, "auth/token/lookup-self", nil); !errors.Is(err, ErrPermissionDenied) {
		t.Fatalf("a batch token of the former primary: %v, want 403", err)
	}
	for _, tok := range []string{otherTok, own} {
		if _, err := do(t, c, tok, logical.ReadOperation, "auth/token/lookup-self", nil); err != nil {
			t.Fatalf("a batch token of the new primary, or the secondary's own: %v", err)
		}
	}
}

// A DR secondary makes and publishes no key: it holds its primary's (both
// classes ship to it), verifies the primary's batch tokens, and once promoted
// signs tokens the former primary and its performance secondaries accept.
func TestBatchKeysThroughADRPromotion(t *testing.T) {
	ctx := context.Background()
	primary, proot := newTestCoreRoot(t)
	dr, droot := newTestCoreRoot(t)
	r := attachDR(dr, ModeSecondary)
	if err := dr.canGenerateBatchKey(); err == nil || !strings.Contains(err.Error(), "DR secondary") {
		t.Fatalf("canGenerateBatchKey on a DR secondary: %v", err)
	}
	if err := dr.canPublishBatchKey(); err == nil || !strings.Contains(err.Error(), "DR secondary") {
		t.Fatalf("canPublishBatchKey on a DR secondary: %v", err)
	}
	policy := map[string]any{"policy": `path "sys/replication/dr/secondary/*" { capabilities = ["update"] }`}
	if _, err := do(t, primary, proot, logical.UpdateOperation, "sys/policies/acl/dr-ops", policy); err != nil {
		t.Fatal(err)
	}
	tok := batchToken(t, primary, proot, "dr-ops")
	requireDenied(t, "the primary's batch token before its keys arrived", dr.CheckDROperationToken(ctx, tok, promotePath))
	// What DR replication brings: the policy, the published key and, local,
	// the signing key.
	for _, path := range []string{policyPrefix + "dr-ops", batchTokenPublicKeyPath, batchTokenSigningKeyPath} {
		replicate(t, dr, entry(t, primary, path))
	}
	if err := dr.CheckDROperationToken(ctx, tok, promotePath); err != nil {
		t.Fatalf("the primary's batch token on its DR secondary: %v", err)
	}

	r.mode.Store(ModePrimary) // promoted
	made := batchToken(t, dr, droot, "dr-ops")
	if !bytes.Equal(entry(t, dr, batchTokenPublicKeyPath).Value, entry(t, primary, batchTokenPublicKeyPath).Value) {
		t.Fatal("the promoted DR secondary published another key")
	}
	perf, _ := newTestCoreRoot(t)
	perf.SetReplication(&perfRepl{})
	replicate(t, perf, entry(t, dr, batchTokenPublicKeyPath))
	for name, c := range map[string]*Core{"promoted": dr, "former primary": primary, "performance secondary": perf} {
		for _, tk := range []string{tok, made} {
			if _, err := do(t, c, tk, logical.ReadOperation, "auth/token/lookup-self", nil); err != nil {
				t.Fatalf("a batch token of the primary or of its promoted DR secondary, on the %s: %v", name, err)
			}
		}
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
