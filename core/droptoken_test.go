package core

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cofferhq/coffer/core/drtoken"
	"github.com/cofferhq/coffer/core/rootgen"
	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/cofferhq/coffer/logical"
)

const promotePath = "sys/replication/dr/secondary/promote"

// drRepl is the replication layer of a test: it reports the DR mode the test
// sets (a DR secondary unless told otherwise) and does what noReplication
// does for everything else.
type drRepl struct {
	noReplication
	mode atomic.Value // string
}

func (r *drRepl) DRMode() string { return r.mode.Load().(string) }

// attachDR attaches a drRepl in mode to c.
func attachDR(c *Core, mode string) *drRepl {
	r := &drRepl{}
	r.mode.Store(mode)
	c.SetReplication(r)
	return r
}

func requireDenied(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, ErrPermissionDenied) || StatusOf(err) != http.StatusForbidden || !strings.Contains(err.Error(), "generate-root -dr-token") {
		t.Fatalf("%s: %v; want a 403 saying how to get a DR operation token", what, err)
	}
}

// A DR secondary generates a DR operation token from its unseal key shares;
// CheckDROperationToken accepts it, and it is not a client token.
func TestDROperationTokenFlow(t *testing.T) {
	ctx := context.Background()
	c, keys, _ := newShamirCore(t)
	attachDR(c, ModeSecondary)
	tok := generate(t, c.DROperationTokenGeneration(), [][]byte{keys[1], keys[2]})
	if !strings.HasPrefix(tok, drtoken.Prefix) || len(tok) != drtoken.Length {
		t.Fatalf("the DR operation token %q", tok)
	}
	if err := c.CheckDROperationToken(ctx, tok, promotePath); err != nil {
		t.Fatalf("the generated token: %v", err)
	}
	if err := c.CheckDROperationToken(ctx, tok, "sys/replication/dr/secondary/update-primary"); err != nil {
		t.Fatalf("the generated token on update-primary: %v", err)
	}
	if te, err := c.tokens.Lookup(ctx, tok); err != nil || te != nil {
		t.Fatalf("the DR operation token is in the token store: %+v %v", te, err)
	}
	if st, err := c.DROperationTokenGeneration().Status(ctx); err != nil || st.Started || st.Required != 2 || st.OTPLength != drtoken.Length {
		t.Fatalf("status after completion: %+v %v", st, err)
	}
	requireDenied(t, "a random string", c.CheckDROperationToken(ctx, drtoken.Prefix+strings.Repeat("x", 24), promotePath))
	requireDenied(t, "no token", c.CheckDROperationToken(ctx, "", promotePath))

	if err := c.RevokeDROperationToken(ctx, tok); err != nil {
		t.Fatalf("delete: %v", err)
	}
	requireDenied(t, "a deleted token", c.CheckDROperationToken(ctx, tok, promotePath))
	if err := c.RevokeDROperationToken(ctx, tok); !errors.Is(err, ErrPermissionDenied) {
		t.Fatalf("deleting it again: %v; want a 403", err)
	}
	if err := c.RevokeDROperationToken(ctx, ""); StatusOf(err) != http.StatusBadRequest {
		t.Fatalf("delete without a token: %v; want a 400", err)
	}
}

// Under the static seal the shares are recovery key shares.
func TestDROperationTokenWithRecoveryKeys(t *testing.T) {
	ctx := context.Background()
	c, recovery := newStaticCore(t)
	attachDR(c, ModeSecondary)
	tok := generate(t, c.DROperationTokenGeneration(), recovery[:2])
	if err := c.CheckDROperationToken(ctx, tok, promotePath); err != nil {
		t.Fatalf("the generated token: %v", err)
	}
}

// A wrong set of shares at the threshold is a 400 that resets the progress
// and mints nothing.
func TestDROperationTokenWrongSharesResetProgress(t *testing.T) {
	ctx := context.Background()
	c, keys, _ := newShamirCore(t)
	attachDR(c, ModeSecondary)
	g := c.DROperationTokenGeneration()
	st, err := g.Start(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Update(ctx, keys[0], st.Nonce); err != nil {
		t.Fatal(err)
	}
	wrong := append([]byte(nil), keys[1]...)
	wrong[5] ^= 0xff
	up, err := g.Update(ctx, wrong, st.Nonce)
	if up != nil || StatusOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "reset") || !strings.Contains(err.Error(), "-dr-token -cancel") {
		t.Fatalf("a wrong share at the threshold: %+v %v; want a 400 saying the progress was reset", up, err)
	}
	if n := c.drTokens.Len(); n != 0 {
		t.Fatalf("%d DR operation tokens after a wrong set; want none", n)
	}
	if cur, err := g.Status(ctx); err != nil || !cur.Started || cur.Progress != 0 || cur.Nonce != st.Nonce {
		t.Fatalf("status after a wrong set: %+v %v; want the same attempt at 0", cur, err)
	}
}

// Outside a DR secondary every endpoint is a 400 that says so, and an
// attempt started on a DR secondary cannot finish once it is promoted.
func TestDROperationTokenOnlyOnADRSecondary(t *testing.T) {
	ctx := context.Background()
	c, keys, _ := newShamirCore(t)
	g := c.DROperationTokenGeneration()
	refused := func(mode string) {
		t.Helper()
		for name, call := range map[string]func() error{
			"status": func() error { _, err := g.Status(ctx); return err },
			"start":  func() error { _, err := g.Start(ctx, ""); return err },
			"update": func() error { _, err := g.Update(ctx, keys[0], "n"); return err },
			"cancel": func() error { return g.Cancel(ctx) },
			"delete": func() error { return c.RevokeDROperationToken(ctx, "dro.x") },
		} {
			err := call()
			if StatusOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "this cluster is not a DR secondary") || !strings.Contains(err.Error(), mode) {
				t.Fatalf("%s in DR mode %s: %v; want a 400 saying this cluster is not a DR secondary", name, mode, err)
			}
		}
	}
	refused(ModeDisabled) // no replication layer attached
	r := attachDR(c, ModePrimary)
	refused(ModePrimary)

	r.mode.Store(ModeSecondary)
	st, err := g.Start(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Update(ctx, keys[0], st.Nonce); err != nil {
		t.Fatal(err)
	}
	r.mode.Store(ModePrimary)
	if _, err := g.Update(ctx, keys[1], st.Nonce); StatusOf(err) != http.StatusBadRequest || c.drTokens.Len() != 0 {
		t.Fatalf("the last share after a promotion: %v, %d tokens; want a 400 and no token", err, c.drTokens.Len())
	}
	// The root token generation does not depend on the DR mode.
	if _, err := c.RootGeneration().Status(ctx); err != nil {
		t.Fatalf("generate-root status on a DR primary: %v", err)
	}
}

// A token of the token store passes when its policies grant update on the
// path (as the request path's ACL and sudo check would), never otherwise.
func TestCheckDROperationTokenStoreTokens(t *testing.T) {
	ctx := context.Background()
	c, root := newTestCoreRoot(t)
	r := attachDR(c, ModeDisabled) // the tokens are made before this cluster becomes a DR secondary
	granted := tokenWithPolicy(t, c, root, "dr-ops", `path "sys/replication/dr/secondary/*" { capabilities = ["update"] }`)
	readOnly := tokenWithPolicy(t, c, root, "dr-read", `path "sys/replication/dr/secondary/*" { capabilities = ["read", "create"] }`)
	denied := tokenWithPolicy(t, c, root, "dr-deny", `
path "sys/replication/dr/secondary/*" { capabilities = ["update"] }
path "sys/replication/dr/secondary/promote" { capabilities = ["deny"] }
`)
	resp, err := do(t, c, root, logical.UpdateOperation, "auth/token/create", map[string]any{"policies": []any{"dr-ops"}, "num_uses": 5})
	if err != nil {
		t.Fatal(err)
	}
	limited := resp.Auth.ClientToken
	noSudo := tokenWithPolicy(t, c, root, "dr-nosudo", `path "sys/replication/dr/*" { capabilities = ["update"] }`)
	withSudo := tokenWithPolicy(t, c, root, "dr-sudo", `path "sys/replication/dr/*" { capabilities = ["update", "sudo"] }`)
	r.mode.Store(ModeSecondary)

	for _, p := range []string{promotePath, "/sys/replication/dr/secondary/promote/"} {
		if err := c.CheckDROperationToken(ctx, granted, p); err != nil {
			t.Fatalf("a token granting update on %s: %v", p, err)
		}
	}
	if err := c.CheckDROperationToken(ctx, root, promotePath); err != nil {
		t.Fatalf("a root token: %v", err)
	}
	requireDenied(t, "read and create only", c.CheckDROperationToken(ctx, readOnly, promotePath))
	requireDenied(t, "update denied on the path", c.CheckDROperationToken(ctx, denied, promotePath))
	requireDenied(t, "update granted elsewhere", c.CheckDROperationToken(ctx, granted, "sys/replication/dr/primary/demote"))
	// A path that needs sudo in a request needs it here too.
	requireDenied(t, "update without sudo on a sudo path", c.CheckDROperationToken(ctx, noSudo, "sys/replication/dr/reindex"))
	if err := c.CheckDROperationToken(ctx, withSudo, "sys/replication/dr/reindex"); err != nil {
		t.Fatalf("update and sudo on a sudo path: %v", err)
	}
	requireDenied(t, "a use-limited token", c.CheckDROperationToken(ctx, limited, promotePath))
	// Revoked where it can be (a DR secondary serves no request): as on the
	// primary, whose revocation then replicates.
	r.mode.Store(ModeDisabled)
	if _, err := do(t, c, root, logical.UpdateOperation, "auth/token/revoke", map[string]any{"token": granted}); err != nil {
		t.Fatal(err)
	}
	r.mode.Store(ModeSecondary)
	requireDenied(t, "a revoked store token", c.CheckDROperationToken(ctx, granted, promotePath))
	// A store token cannot be deleted through the DR endpoint: it is the primary's.
	if err := c.RevokeDROperationToken(ctx, root); !errors.Is(err, ErrPermissionDenied) {
		t.Fatalf("deleting a store token as a DR operation token: %v; want a 403", err)
	}
}

// A DR operation token lives DROperationTokenTTL, and a seal ends it; a
// resync (ReplaceData) does not.
func TestDROperationTokenLifetime(t *testing.T) {
	ctx := context.Background()
	c, keys, root := newShamirCore(t)
	attachDR(c, ModeSecondary)
	clock := testutil.NewClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	c.drTokens.Now = clock.Now
	tok := generate(t, c.DROperationTokenGeneration(), keys[:2])
	clock.Advance(DROperationTokenTTL - time.Second)
	if err := c.CheckDROperationToken(ctx, tok, promotePath); err != nil {
		t.Fatalf("a second before its expiry: %v", err)
	}
	clock.Advance(time.Second)
	requireDenied(t, "at its expiry", c.CheckDROperationToken(ctx, tok, promotePath))

	tok = generate(t, c.DROperationTokenGeneration(), keys[:2])
	rootKey, err := c.barrier.RootKey()
	if err != nil {
		t.Fatal(err)
	}
	noop := func(context.Context) error { return nil }
	if err := c.ReplaceData(ctx, rootKey, Replacement{Wipe: noop, Fill: noop}); err != nil {
		t.Fatal(err)
	}
	if err := c.CheckDROperationToken(ctx, tok, promotePath); err != nil {
		t.Fatalf("after a resync: %v; want the token kept", err)
	}
	if err := c.Seal(ctx, root); err != nil {
		t.Fatal(err)
	}
	unseal(t, c, keys)
	requireDenied(t, "after a seal", c.CheckDROperationToken(ctx, tok, promotePath))
}

// The encoded token decodes with the OTP of the start, as generate-root's.
func TestDROperationTokenWithOperatorOTP(t *testing.T) {
	ctx := context.Background()
	c, keys, _ := newShamirCore(t)
	attachDR(c, ModeSecondary)
	g := c.DROperationTokenGeneration()
	otp := strings.Repeat("Q", drtoken.Length)
	st, err := g.Start(ctx, otp)
	if err != nil || st.OTP != "" {
		t.Fatalf("start with an OTP: %+v %v", st, err)
	}
	if _, err := g.Update(ctx, keys[0], st.Nonce); err != nil {
		t.Fatal(err)
	}
	up, err := g.Update(ctx, keys[2], st.Nonce)
	if err != nil || up.EncodedToken == "" || up.EncodedRootToken != up.EncodedToken {
		t.Fatalf("last update: %+v %v", up, err)
	}
	tok, err := rootgen.Decode(up.EncodedToken, otp)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CheckDROperationToken(ctx, tok, promotePath); err != nil {
		t.Fatalf("the decoded token: %v", err)
	}
}

// A DR secondary serves no client request but sys/replication/*: 400.
func TestDRSecondaryRefusesClientRequests(t *testing.T) {
	ctx := context.Background()
	c, root := newTestCoreRoot(t)
	r := attachDR(c, ModeSecondary)
	_, err := do(t, c, root, logical.ReadOperation, "sys/policies/acl/default", nil)
	if logical.StatusCode(err) != 400 || !strings.Contains(err.Error(), "DR secondary") {
		t.Fatalf("a read on a DR secondary: %v, want 400", err)
	}
	r.mode.Store(ModeDisabled)
	if _, err := do(t, c, root, logical.ReadOperation, "sys/policies/acl/default", nil); err != nil {
		t.Fatalf("the same read once the cluster is no DR secondary: %v", err)
	}
	_ = ctx
}
