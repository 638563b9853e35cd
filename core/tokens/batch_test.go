package tokens

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/logical"
)

// batch creates a batch token through the backend as the holder of parent.
func (h *harness) batch(parent string, data map[string]any) *logical.Auth {
	h.t.Helper()
	if data == nil {
		data = map[string]any{}
	}
	data["type"] = "batch"
	resp := h.must(parent, logical.UpdateOperation, "create", data)
	if resp.Auth == nil {
		h.t.Fatal("create type=batch: no auth")
	}
	return resp.Auth
}

// orphanBatch creates an orphan batch token with policies as the root: one
// that other clusters trusting this one's key accept.
func (h *harness) orphanBatch(policies string) string {
	h.t.Helper()
	return h.must(h.root, logical.UpdateOperation, "create-orphan", map[string]any{"type": "batch", "policies": policies}).Auth.ClientToken
}

// signingKey reads this cluster's stored batch token signing key.
func (h *harness) signingKey() ed25519.PrivateKey {
	h.t.Helper()
	raw, err := h.mem.Get(h.ctx, testBatchSigningKeyPath)
	if err != nil || raw == nil {
		h.t.Fatalf("batch token signing key: %v, %v", raw, err)
	}
	var r batchSigningKeyRecord
	if err := json.Unmarshal(raw.Value, &r); err != nil || len(r.Seed) != ed25519.SeedSize {
		h.t.Fatalf("batch token signing key %s: %v", raw.Value, err)
	}
	return ed25519.NewKeyFromSeed(r.Seed)
}

// publishedKey reads the published batch token public key, nil when none.
func (h *harness) publishedKey() ed25519.PublicKey {
	h.t.Helper()
	raw, err := h.mem.Get(h.ctx, testBatchPublicKeyPath)
	if err != nil {
		h.t.Fatal(err)
	}
	if raw == nil {
		return nil
	}
	var r batchPublicKeyRecord
	if err := json.Unmarshal(raw.Value, &r); err != nil {
		h.t.Fatal(err)
	}
	return r.Key
}

func TestBatchCreateAndLookupSelf(t *testing.T) {
	h := newHarness(t, Options{})
	before := h.keys("")
	a := h.batch(h.root, map[string]any{
		"policies": []any{"web"}, "ttl": "1h", "meta": map[string]any{"app": "billing"},
		"display_name": "ci", "renewable": true,
	})
	if !strings.HasPrefix(a.ClientToken, BatchPrefix) || a.Accessor != "" || a.Renewable || a.TokenType != "batch" ||
		a.LeaseDuration != 3600 || a.Orphan || a.NumUses != 0 || a.Metadata["app"] != "billing" {
		t.Fatalf("auth = %+v; want hvb., no accessor, not renewable, type batch, 1h, not orphan", a)
	}
	if want := []string{"default", "web"}; !reflect.DeepEqual(a.Policies, want) {
		t.Fatalf("policies %q, want %q", a.Policies, want)
	}
	// Nothing in the token store: only the keys, outside it, the public one
	// published (the harness may publish).
	if after := h.keys(""); !reflect.DeepEqual(after, before) {
		t.Fatalf("creating a batch token wrote to the token store: %q -> %q", before, after)
	}
	if !h.publishedKey().Equal(h.signingKey().Public()) {
		t.Fatal("the published key is not the signing key's public key")
	}

	h.clock.Advance(10 * time.Minute)
	d := h.must(a.ClientToken, logical.ReadOperation, "lookup-self", nil).Data
	if d["id"] != a.ClientToken || d["type"] != "batch" || d["orphan"] != false || d["ttl"] != int64(3000) ||
		d["creation_ttl"] != int64(3600) || d["accessor"] != "" || d["renewable"] != false || d["num_uses"] != 0 ||
		d["display_name"] != "token-ci" || d["path"] != "auth/token/create" || d["creation_time"] != t0.Unix() {
		t.Fatalf("lookup-self = %v", d)
	}
	if !reflect.DeepEqual(d["policies"], []string{"default", "web"}) || !reflect.DeepEqual(d["meta"], map[string]string{"app": "billing"}) {
		t.Fatalf("lookup-self policies %v meta %v", d["policies"], d["meta"])
	}
	if exp, _ := d["expire_time"].(time.Time); !exp.Equal(t0.Add(time.Hour)) {
		t.Fatalf("expire_time %v, want %v", d["expire_time"], t0.Add(time.Hour))
	}
	// lookup (by the root) answers the same.
	if d := h.must(h.root, logical.UpdateOperation, "lookup", map[string]any{"token": a.ClientToken}).Data; d["type"] != "batch" {
		t.Fatalf("lookup = %v", d)
	}

	orphan := h.must(h.root, logical.UpdateOperation, "create-orphan", map[string]any{"type": "batch", "policies": []any{"web"}}).Auth
	if !orphan.Orphan || orphan.LeaseDuration != int(DefaultTTL/time.Second) {
		t.Fatalf("create-orphan type=batch: %+v; want an orphan with the default TTL", orphan)
	}
	if e := h.lookup(orphan.ClientToken); e == nil || !e.Orphan || e.Type != TypeBatch {
		t.Fatalf("Lookup(orphan batch) = %+v", e)
	}
}

// No accessor: the token cannot be named without being given.
func TestBatchHasNoAccessor(t *testing.T) {
	h := newHarness(t, Options{})
	a := h.batch(h.root, map[string]any{"policies": "web"})
	e := h.lookup(a.ClientToken)
	if e == nil || e.Accessor != "" || a.Accessor != "" {
		t.Fatalf("batch token accessor: auth %q, entry %+v", a.Accessor, e)
	}
	for _, p := range []string{"lookup-accessor", "renew-accessor", "revoke-accessor"} {
		h.fails(h.root, logical.UpdateOperation, p, map[string]any{"accessor": ""}, 400, "missing accessor")
	}
}

func TestBatchExpiry(t *testing.T) {
	h := newHarness(t, Options{MaxTTL: 2 * time.Hour, DefaultTTL: 30 * time.Minute})
	a := h.batch(h.root, map[string]any{"policies": "web", "ttl": "1h"})
	h.clock.Advance(time.Hour - time.Nanosecond)
	if h.lookup(a.ClientToken) == nil {
		t.Fatal("a batch token refused before its expiry")
	}
	h.clock.Advance(time.Nanosecond)
	if h.lookup(a.ClientToken) != nil {
		t.Fatal("a batch token accepted at its expiry")
	}
	h.fails(h.root, logical.UpdateOperation, "lookup", map[string]any{"token": a.ClientToken}, 403, "bad token")

	// No ttl: the default. Over the max: capped, with a warning.
	if d := h.batch(h.root, map[string]any{"policies": "web"}); d.LeaseDuration != 1800 {
		t.Fatalf("default ttl: %d s, want 1800", d.LeaseDuration)
	}
	resp := h.must(h.root, logical.UpdateOperation, "create", map[string]any{"type": "batch", "policies": "web", "ttl": "5h"})
	if resp.Auth.LeaseDuration != 7200 || len(resp.Warnings) == 0 {
		t.Fatalf("ttl 5h with max 2h: %d s, warnings %q; want 7200 and a warning", resp.Auth.LeaseDuration, resp.Warnings)
	}
}

// Every single change to a token is an invalid token: each byte of the blob
// flipped, each character replaced, truncations, extensions, other spellings.
func TestBatchTamperingIsRefused(t *testing.T) {
	h := newHarness(t, Options{})
	id := h.batch(h.root, map[string]any{"policies": "web", "meta": map[string]any{"k": "v"}}).ClientToken
	if h.lookup(id) == nil {
		t.Fatal("the untouched token is refused")
	}
	blob, err := batchEncoding.DecodeString(strings.TrimPrefix(id, BatchPrefix))
	if err != nil {
		t.Fatal(err)
	}
	for i := range blob {
		for _, mask := range []byte{0x01, 0x80, 0xff} {
			b := slices.Clone(blob)
			b[i] ^= mask
			if h.lookup(BatchPrefix+batchEncoding.EncodeToString(b)) != nil {
				t.Fatalf("byte %d of %d xor %#x: accepted", i, len(blob), mask)
			}
		}
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := len(BatchPrefix); i < len(id); i++ {
		for _, c := range alphabet {
			if byte(c) == id[i] {
				continue
			}
			if h.lookup(id[:i]+string(c)+id[i+1:]) != nil {
				t.Fatalf("character %d replaced by %q: accepted", i, c)
			}
		}
	}
	for name, v := range map[string]string{
		"truncated by one":  id[:len(id)-1],
		"truncated to half": id[:len(id)/2],
		"extended":          id + "A",
		"padded":            id + "==",
		"newline inside":    id[:20] + "\n" + id[20:],
		"service prefix":    "hvs." + strings.TrimPrefix(id, BatchPrefix),
		"std base64":        BatchPrefix + base64.RawStdEncoding.EncodeToString(blob),
		"prefix only":       BatchPrefix,
		"version only":      BatchPrefix + batchEncoding.EncodeToString([]byte{batchVersion}),
		"over the length":   id + strings.Repeat("A", MaxBatchTokenLen),
	} {
		if v == id {
			continue // the std alphabet can spell the same string
		}
		if h.lookup(v) != nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestBatchCannotBeRenewedOrRevoked(t *testing.T) {
	h := newHarness(t, Options{})
	id := h.batch(h.root, map[string]any{"policies": "web", "ttl": "1h"}).ClientToken
	h.fails(h.root, logical.UpdateOperation, "renew", map[string]any{"token": id}, 400, "batch tokens cannot be renewed")
	h.fails(id, logical.UpdateOperation, "renew-self", nil, 400, "batch tokens cannot be renewed")
	h.fails(h.root, logical.UpdateOperation, "revoke", map[string]any{"token": id}, 400, "batch tokens cannot be revoked")
	h.fails(id, logical.UpdateOperation, "revoke-self", nil, 400, "batch tokens cannot be revoked")
	h.fails(h.root, logical.UpdateOperation, "revoke-orphan", map[string]any{"token": id}, 400, "batch tokens cannot be revoked")
	e := h.lookup(id)
	if e == nil || !e.ExpireTime.Equal(t0.Add(time.Hour)) {
		t.Fatalf("after the refusals: %+v; want the token unchanged", e)
	}
	if _, err := h.s.Renew(h.ctx, id, time.Hour); !errors.Is(err, ErrBatchNotRenewable) {
		t.Fatalf("Renew: %v", err)
	}
	if err := h.s.Revoke(h.ctx, id); !errors.Is(err, ErrBatchNotRevocable) {
		t.Fatalf("Revoke: %v", err)
	}
	// An invalid batch token is no token: revoking it is a no-op, as for any unknown token.
	bad := id[:len(id)-2] + "AA"
	if err := h.s.Revoke(h.ctx, bad); err != nil {
		t.Fatalf("Revoke(invalid batch token): %v", err)
	}
	if err := h.s.RevokeOrphan(h.ctx, bad); !errors.Is(err, ErrTokenNotFound) {
		t.Fatalf("RevokeOrphan(invalid batch token): %v", err)
	}
	if _, err := h.s.Renew(h.ctx, bad, 0); !errors.Is(err, ErrTokenNotFound) {
		t.Fatalf("Renew(invalid batch token): %v", err)
	}
}

func TestBatchCannotCreateTokens(t *testing.T) {
	h := newHarness(t, Options{})
	id := h.batch(h.root, map[string]any{"policies": "web"}).ClientToken
	for _, p := range []string{"create", "create-orphan"} {
		for _, typ := range []string{"service", "batch"} {
			h.fails(id, logical.UpdateOperation, p, map[string]any{"type": typ, "policies": "web"}, 400, "batch tokens cannot create more tokens")
		}
	}
	// The store refuses it too: a batch token is no stored parent.
	for _, typ := range []string{TypeService, TypeBatch} {
		if err := h.s.Create(h.ctx, &Entry{Type: typ, Parent: id, Policies: []string{"web"}}); !errors.Is(err, ErrParentNotFound) {
			t.Errorf("Create(%s) under a batch parent: %v, want ErrParentNotFound", typ, err)
		}
	}
}

// What a batch token cannot be, refused with Vault's words.
func TestBatchRefusedParameters(t *testing.T) {
	h := newHarness(t, Options{})
	for _, c := range []struct {
		data map[string]any
		msg  string
	}{
		{map[string]any{"num_uses": 1}, `batch tokens cannot have "num_uses" set`},
		{map[string]any{"num_uses": -1}, `batch tokens cannot have "num_uses" set`},
		{map[string]any{"period": "1h"}, `batch tokens cannot have "period" set`},
		{map[string]any{"explicit_max_ttl": "1h"}, `batch tokens cannot have "explicit_max_ttl" set`},
		{map[string]any{"id": "mine"}, `batch tokens cannot have "id" set`},
		{map[string]any{}, "batch tokens cannot be root tokens"}, // inherits the root parent's policies
		{map[string]any{"policies": "root"}, "batch tokens cannot be root tokens"},
		{map[string]any{"ttl": "-1h"}, "ttl must be positive"},
	} {
		c.data["type"] = "batch"
		if _, ok := c.data["policies"]; !ok && len(c.data) > 1 {
			c.data["policies"] = "web"
		}
		h.fails(h.root, logical.UpdateOperation, "create", c.data, 400, c.msg)
	}
	// The store's own checks, for callers that skip the backend.
	for name, e := range map[string]*Entry{
		"uses":   {NumUses: 2},
		"period": {Period: time.Hour},
		"max":    {ExplicitMaxTTL: time.Hour},
		"id":     {ID: "hvb.mine"},
		"root":   {Policies: []string{"root"}},
	} {
		e.Type = TypeBatch
		if e.Policies == nil {
			e.Policies = []string{"web"}
		}
		if err := h.s.Create(h.ctx, e); !errors.Is(err, ErrInvalidEntry) {
			t.Errorf("%s: Create = %v, want ErrInvalidEntry", name, err)
		}
	}
	// Asked renewable, made not renewable (as Vault does, silently).
	e := &Entry{Type: TypeBatch, Policies: []string{"web"}, Renewable: true}
	if err := h.s.Create(h.ctx, e); err != nil || e.Renewable || h.lookup(e.ID).Renewable {
		t.Fatalf("renewable batch token: %v, %+v", err, e)
	}
}

func TestBatchTokenLength(t *testing.T) {
	h := newHarness(t, Options{})
	h.fails(h.root, logical.UpdateOperation, "create", map[string]any{
		"type": "batch", "policies": "web", "meta": map[string]any{"blob": strings.Repeat("x", MaxBatchTokenLen)},
	}, 400, "give fewer or shorter metadata")
	id := h.batch(h.root, map[string]any{"policies": "web", "meta": map[string]any{"blob": strings.Repeat("x", 1000)}}).ClientToken
	if len(id) > MaxBatchTokenLen || h.lookup(id) == nil {
		t.Fatalf("a %d-character batch token refused", len(id))
	}
}
