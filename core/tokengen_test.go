package core

import (
	"context"
	"crypto/rand"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/barrier/seal"
	"github.com/cofferhq/coffer/core/rootgen"
	"github.com/cofferhq/coffer/storage/inmem"
	"github.com/rs/zerolog"
)

// newShamirCore is an unsealed core with 3 unseal key shares, threshold 2.
func newShamirCore(t *testing.T) (*Core, [][]byte, string) {
	t.Helper()
	ctx := context.Background()
	c, err := New(ctx, Config{Physical: inmem.New(), StorageType: "inmem", Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	res, err := c.Initialize(ctx, InitRequest{SecretShares: 3, SecretThreshold: 2})
	if err != nil {
		t.Fatal(err)
	}
	unseal(t, c, res.Keys)
	return c, res.Keys, res.RootToken
}

func unseal(t *testing.T, c *Core, keys [][]byte) {
	t.Helper()
	for _, k := range keys[:2] {
		if _, err := c.Unseal(context.Background(), k); err != nil {
			t.Fatal(err)
		}
	}
	if c.Sealed() {
		t.Fatal("still sealed after two shares")
	}
}

// generate runs a whole generation with shares and returns the new token.
func generate(t *testing.T, g *TokenGeneration, shares [][]byte) string {
	t.Helper()
	ctx := context.Background()
	st, err := g.Start(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.OTP) != RootTokenLength || st.OTPLength != RootTokenLength || !st.Started || st.Nonce == "" {
		t.Fatalf("start: %+v", st)
	}
	for i, s := range shares {
		up, err := g.Update(ctx, s, st.Nonce)
		if err != nil {
			t.Fatalf("update %d: %v", i, err)
		}
		if last := i == len(shares)-1; up.Complete != last || (up.EncodedToken != "") != last {
			t.Fatalf("update %d of %d: %+v", i+1, len(shares), up)
		}
		if i == len(shares)-1 {
			if up.Progress != up.Required || up.EncodedRootToken != up.EncodedToken {
				t.Fatalf("last update: %+v", up)
			}
			tok, err := rootgen.Decode(up.EncodedToken, st.OTP)
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}
		if up.Progress != i+1 {
			t.Fatalf("update %d: progress %d", i+1, up.Progress)
		}
	}
	t.Fatal("no shares")
	return ""
}

func requireRootToken(t *testing.T, c *Core, tok string) {
	t.Helper()
	te, err := c.tokens.Lookup(context.Background(), tok)
	if err != nil || te == nil || !slices.Contains(te.Policies, "root") {
		t.Fatalf("the generated token: %+v %v; want a root token", te, err)
	}
}

func TestGenerateRootWithUnsealKeys(t *testing.T) {
	c, keys, _ := newShamirCore(t)
	tok := generate(t, c.RootGeneration(), [][]byte{keys[2], keys[0]})
	requireRootToken(t, c, tok)
	st, err := c.RootGeneration().Status(context.Background())
	if err != nil || st.Started || st.Progress != 0 || st.Required != 2 || st.OTP != "" || st.EncodedToken != "" {
		t.Fatalf("status after completion: %+v %v; want no attempt", st, err)
	}
}

// newStaticCore is a core under the static seal, initialized (and so
// unsealed) with 3 recovery key shares, threshold 2.
func newStaticCore(t *testing.T) (*Core, [][]byte) {
	t.Helper()
	ctx := context.Background()
	keyFile := filepath.Join(t.TempDir(), "seal.key")
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := seal.NewStatic(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(ctx, Config{Physical: inmem.New(), Seal: s, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	res, err := c.Initialize(ctx, InitRequest{RecoveryShares: 3, RecoveryThreshold: 2})
	if err != nil {
		t.Fatal(err)
	}
	return c, res.RecoveryKeys
}

func TestGenerateRootWithRecoveryKeys(t *testing.T) {
	ctx := context.Background()
	c, recovery := newStaticCore(t)
	g := c.RootGeneration()
	if st, err := g.Status(ctx); err != nil || st.Required != 2 {
		t.Fatalf("status: %+v %v; want the recovery threshold, 2", st, err)
	}
	requireRootToken(t, c, generate(t, g, recovery[1:]))
}

// A wrong set is a 400 that resets the progress, keeps the attempt, hands
// out no token, and reads the same whichever share was wrong.
func TestGenerateRootWrongSharesResetProgress(t *testing.T) {
	ctx := context.Background()
	c, keys, _ := newShamirCore(t)
	g := c.RootGeneration()
	start, err := g.Start(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	wrongs := [][]byte{make([]byte, 33), append([]byte(nil), keys[1][:20]...)}
	_, _ = rand.Read(wrongs[0])
	var msgs []string
	for _, wrong := range wrongs {
		if _, err := g.Update(ctx, keys[0], start.Nonce); err != nil {
			t.Fatal(err)
		}
		st, err := g.Update(ctx, wrong, start.Nonce)
		if st != nil || StatusOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "reset") {
			t.Fatalf("a wrong share at the threshold: %+v %v; want a 400 saying the progress was reset", st, err)
		}
		msgs = append(msgs, strings.ReplaceAll(err.Error(), start.Nonce, "NONCE"))
		st, err = g.Status(ctx)
		if err != nil || !st.Started || st.Nonce != start.Nonce || st.Progress != 0 {
			t.Fatalf("status after a wrong set: %+v %v; want the same attempt at 0", st, err)
		}
	}
	if msgs[0] != msgs[1] {
		t.Fatalf("the refusals differ with the wrong share, so they tell something about it:\n%s\n%s", msgs[0], msgs[1])
	}
	// The attempt goes on with right shares.
	if _, err := g.Update(ctx, keys[0], start.Nonce); err != nil {
		t.Fatal(err)
	}
	up, err := g.Update(ctx, keys[1], start.Nonce)
	if err != nil || !up.Complete {
		t.Fatalf("right shares after a wrong set: %+v %v", up, err)
	}
	tok, err := rootgen.Decode(up.EncodedToken, start.OTP)
	if err != nil {
		t.Fatal(err)
	}
	requireRootToken(t, c, tok)
}

func TestGenerateRootRefusals(t *testing.T) {
	ctx := context.Background()
	c, keys, _ := newShamirCore(t)
	g := c.RootGeneration()
	bad := func(what string, err error, substr string) {
		t.Helper()
		if StatusOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), substr) {
			t.Fatalf("%s: %v; want a 400 mentioning %q", what, err, substr)
		}
	}
	_, err := g.Update(ctx, keys[0], "whatever")
	bad("update without an attempt", err, "-init")
	_, err = g.Start(ctx, "short")
	bad("an OTP of 5 characters", err, "28 characters")

	otp := strings.Repeat("k", RootTokenLength)
	st, err := g.Start(ctx, otp)
	if err != nil || st.OTP != "" {
		t.Fatalf("start with the operator's OTP: %+v %v; want no OTP echoed", st, err)
	}
	_, err = g.Start(ctx, "")
	bad("a second start", err, "-cancel")
	_, err = g.Update(ctx, keys[0], "not-"+st.Nonce)
	bad("another nonce", err, "nonce")
	if _, err := g.Update(ctx, keys[0], st.Nonce); err != nil {
		t.Fatal(err)
	}
	_, err = g.Update(ctx, keys[0], st.Nonce)
	bad("the same share twice", err, "already given")
	_, err = g.Update(ctx, []byte("tiny"), st.Nonce)
	bad("a 4-byte share", err, "sys/init")
	if cur, _ := g.Status(ctx); cur.Progress != 1 {
		t.Fatalf("progress after refused updates: %d, want 1", cur.Progress)
	}
	up, err := g.Update(ctx, keys[1], st.Nonce)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := rootgen.Decode(up.EncodedToken, otp)
	if err != nil {
		t.Fatal(err)
	}
	requireRootToken(t, c, tok)
}

func TestGenerateRootCancel(t *testing.T) {
	ctx := context.Background()
	c, keys, _ := newShamirCore(t)
	g := c.RootGeneration()
	st, err := g.Start(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Update(ctx, keys[0], st.Nonce); err != nil {
		t.Fatal(err)
	}
	if err := g.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	if cur, err := g.Status(ctx); err != nil || cur.Started || cur.Progress != 0 {
		t.Fatalf("status after cancel: %+v %v", cur, err)
	}
	if up, err := g.Update(ctx, keys[1], st.Nonce); err == nil {
		t.Fatalf("a share for a canceled attempt: %+v; want a refusal", up)
	}
	if err := g.Cancel(ctx); err != nil {
		t.Fatalf("cancel without an attempt: %v", err)
	}
}

// Sealing cancels the attempt: shares given before a seal do not count
// after the unseal.
func TestSealCancelsGenerateRoot(t *testing.T) {
	ctx := context.Background()
	c, keys, root := newShamirCore(t)
	g := c.RootGeneration()
	st, err := g.Start(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Update(ctx, keys[0], st.Nonce); err != nil {
		t.Fatal(err)
	}
	if err := c.Seal(ctx, root); err != nil {
		t.Fatal(err)
	}
	for name, call := range map[string]func() error{
		"status": func() error { _, err := g.Status(ctx); return err },
		"start":  func() error { _, err := g.Start(ctx, ""); return err },
		"update": func() error { _, err := g.Update(ctx, keys[1], st.Nonce); return err },
		"cancel": func() error { return g.Cancel(ctx) },
	} {
		if err := call(); !errors.Is(err, ErrSealed) {
			t.Fatalf("%s while sealed: %v; want ErrSealed", name, err)
		}
	}
	unseal(t, c, keys)
	if cur, err := g.Status(ctx); err != nil || cur.Started {
		t.Fatalf("status after seal and unseal: %+v %v; want no attempt", cur, err)
	}
}

func TestGenerateRootBeforeInit(t *testing.T) {
	c, err := New(context.Background(), Config{Physical: inmem.New(), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if _, err := c.RootGeneration().Status(context.Background()); !errors.Is(err, ErrNotInitialized) {
		t.Fatalf("status before init: %v; want ErrNotInitialized", err)
	}
}

// A token the generation cannot encode is never left behind: it is revoked.
// (The kind of generation a DR operation token will reuse: another minter.)
func TestGenerationRevokesATokenItCannotEncode(t *testing.T) {
	ctx := context.Background()
	c, keys, _ := newShamirCore(t)
	var created string
	g := c.newTokenGeneration(generationKind{name: "test generation", path: "sys/test", cli: "coffer test"}, RootTokenLength+1, minter{
		create: func(ctx context.Context) (string, error) {
			e, err := c.tokens.CreateRoot(ctx, "")
			if err != nil {
				return "", err
			}
			created = e.ID
			return e.ID, nil
		},
		revoke: func(ctx context.Context, token string) error { return c.tokens.Revoke(ctx, token) },
	})
	st, err := g.Start(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Update(ctx, keys[0], st.Nonce); err != nil {
		t.Fatal(err)
	}
	up, err := g.Update(ctx, keys[1], st.Nonce)
	if err == nil || created == "" || StatusOf(err) != http.StatusInternalServerError {
		t.Fatalf("completing with a token of the wrong length: %+v %v; want a 500", up, err)
	}
	if te, err := c.tokens.Lookup(ctx, created); err != nil || te != nil {
		t.Fatalf("the token that could not be encoded: %+v %v; want it revoked", te, err)
	}
}
