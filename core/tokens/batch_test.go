package tokens

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/cofferhq/coffer/logical"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/inmem"
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
// that other clusters sharing the key accept.
func (h *harness) orphanBatch(policies string) string {
	h.t.Helper()
	return h.must(h.root, logical.UpdateOperation, "create-orphan", map[string]any{"type": "batch", "policies": policies}).Auth.ClientToken
}

// batchKey reads the stored batch token key.
func (h *harness) batchKey() []byte {
	h.t.Helper()
	raw, err := h.s.opts.BatchKeyStorage.Get(h.ctx, h.s.opts.BatchKeyPath)
	if err != nil || raw == nil {
		h.t.Fatalf("batch token key: %v, %v", raw, err)
	}
	k, err := decodeBatchKey(raw.Value)
	if err != nil {
		h.t.Fatal(err)
	}
	return k
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
	// Nothing in the token store: only the key, outside it.
	if after := h.keys(""); !reflect.DeepEqual(after, before) {
		t.Fatalf("creating a batch token wrote to the token store: %q -> %q", before, after)
	}
	h.batchKey()

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

	o := h.batch(h.root, map[string]any{"policies": []any{"web"}, "ttl": "1h"})
	if o.ClientToken == a.ClientToken {
		t.Fatal("two batch tokens with the same record are the same string: the nonce is not random")
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

// A token opens only under the key it was made with.
func TestBatchWrongKey(t *testing.T) {
	h := newHarness(t, Options{})
	other := newHarness(t, Options{}) // its own storage, so its own key
	id := h.batch(h.root, map[string]any{"policies": "web"}).ClientToken
	other.batch(other.root, map[string]any{"policies": "web"}) // makes its key
	if other.lookup(id) != nil {
		t.Fatal("a batch token opened under another cluster's key")
	}

	// Replication brings a new key (a secondary moved to another primary):
	// once told, the store uses it and refuses the old tokens.
	b, err := json.Marshal(batchKeyRecord{V: batchKeyVersion, Key: other.batchKey()})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.mem.Put(h.ctx, &storage.Entry{Key: testBatchKeyPath, Value: b}); err != nil {
		t.Fatal(err)
	}
	h.s.InvalidateBatchKey()
	if h.lookup(id) != nil {
		t.Fatal("a token of the old key accepted after the key changed")
	}
	if h.lookup(other.orphanBatch("web")) == nil {
		t.Fatal("a token of the new key refused")
	}
}

// Two clusters of a replication set: their own token stores (their own
// salts), one batch key. An orphan batch token works on both; a child works
// only where its parent lives, and stops with it.
func TestBatchTokensAcrossClusters(t *testing.T) {
	shared := inmem.New()
	opts := Options{BatchKeyStorage: shared, BatchKeyPath: "core/token-batch-key"}
	memA, memB := inmem.New(), inmem.New()
	A := newHarnessOn(t, memA, logical.NewView(memA, "sys/token/"), &clock{t: t0}, opts)
	B := newHarnessOn(t, memB, logical.NewView(memB, "sys/token/"), &clock{t: t0}, opts)

	orphan := A.orphanBatch("web")
	if e := B.lookup(orphan); e == nil || !reflect.DeepEqual(e.Policies, []string{"default", "web"}) {
		t.Fatalf("an orphan batch token of cluster A on cluster B: %+v", e)
	}
	parent := A.child(A.root, "web")
	child := A.batch(parent.ID, map[string]any{"policies": "web"}).ClientToken
	if A.lookup(child) == nil {
		t.Fatal("a child batch token refused where its parent lives")
	}
	if B.lookup(child) != nil {
		t.Fatal("a child batch token accepted on a cluster that does not hold its parent")
	}
	if err := A.s.Revoke(A.ctx, parent.ID); err != nil {
		t.Fatal(err)
	}
	if A.lookup(child) != nil {
		t.Fatal("a child batch token still valid after its parent was revoked")
	}
	if A.lookup(orphan) == nil {
		t.Fatal("an orphan batch token stopped with an unrelated revocation")
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

// The key is made once, by the first create, and only where allowed: a
// secondary waits for its primary's.
func TestBatchKeyMadeOnceWhereAllowed(t *testing.T) {
	reason := errors.New("this cluster is a performance secondary")
	h := newHarness(t, Options{CanGenerateBatchKey: func() error { return reason }})
	h.fails(h.root, logical.UpdateOperation, "create", map[string]any{"type": "batch", "policies": "web"}, 400, reason.Error())
	if raw, err := h.mem.Get(h.ctx, testBatchKeyPath); raw != nil || err != nil {
		t.Fatalf("a cluster not allowed to made a key: %v %v", raw, err)
	}
	// Its lookups find no key: every batch token is invalid, nothing is cached.
	primary := newHarness(t, Options{})
	id := primary.orphanBatch("web")
	if h.lookup(id) != nil {
		t.Fatal("a batch token accepted without a key")
	}
	// The primary's key arrives: its tokens open here, and creates work.
	raw, err := primary.mem.Get(h.ctx, testBatchKeyPath)
	if err != nil || raw == nil {
		t.Fatal(err)
	}
	if err := h.mem.Put(h.ctx, raw); err != nil {
		t.Fatal(err)
	}
	if h.lookup(id) == nil {
		t.Fatal("the primary's batch token refused once its key arrived")
	}
	h.batch(h.root, map[string]any{"policies": "web"})

	// Concurrent first creates make one key: every token stays valid.
	c := newHarness(t, Options{})
	var wg sync.WaitGroup
	ids := make([]string, 8)
	for i := range ids {
		wg.Go(func() {
			e := &Entry{Type: TypeBatch, Policies: []string{"web"}}
			if err := c.s.Create(c.ctx, e); err != nil {
				t.Error(err)
			}
			ids[i] = e.ID
		})
	}
	wg.Wait()
	key := c.batchKey()
	for i, id := range ids {
		if c.lookup(id) == nil {
			t.Fatalf("token %d of the concurrent first creates refused: more than one key was made", i)
		}
	}
	c.batch(c.root, map[string]any{"policies": "web"})
	if !reflect.DeepEqual(c.batchKey(), key) {
		t.Fatal("the batch key changed after its first create")
	}
}

func TestBatchKeyRecord(t *testing.T) {
	h := newHarness(t, Options{})
	put := func(v string) {
		t.Helper()
		if err := h.mem.Put(h.ctx, &storage.Entry{Key: testBatchKeyPath, Value: []byte(v)}); err != nil {
			t.Fatal(err)
		}
		h.s.InvalidateBatchKey()
	}
	for v, msg := range map[string]string{
		`{"v":2,"key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`: "upgrade Coffer",
		`{"v":1,"key":"AAAA"}`: "want 32",
		`{"v":0}`:              "invalid version",
		`not json`:             "damaged",
	} {
		put(v)
		if _, err := h.s.Lookup(h.ctx, BatchPrefix+"AAAA"); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("key record %s: Lookup error %v, want %q", v, err, msg)
		}
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

// The format of batch.go's comment, built by hand (a dumb oracle): a token
// spelled from the documentation opens, and a created token decrypts to the
// documented record.
func TestBatchDocumentedFormat(t *testing.T) {
	h := newHarness(t, Options{})
	id := h.batch(h.root, map[string]any{"policies": "web", "ttl": "1h", "meta": map[string]any{"k": "v"}}).ClientToken
	block, err := aes.NewCipher(h.batchKey())
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	ad := append([]byte("coffer batch token"), 1)

	blob, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(id, "hvb."))
	if err != nil || blob[0] != 1 {
		t.Fatalf("blob %x: %v", blob, err)
	}
	pt, err := gcm.Open(nil, blob[1:13], blob[13:], ad)
	if err != nil {
		t.Fatalf("open by hand: %v", err)
	}
	var rec map[string]any
	d := json.NewDecoder(strings.NewReader(string(pt)))
	d.UseNumber()
	if err := d.Decode(&rec); err != nil {
		t.Fatal(err)
	}
	issued, _ := rec["i"].(json.Number).Int64()
	expires, _ := rec["x"].(json.Number).Int64()
	if rec["n"] != "root" || rec["c"] != "auth/token/create" || issued != t0.UnixNano() || expires-issued != int64(time.Hour) ||
		!reflect.DeepEqual(rec["p"], []any{"default", "web"}) || rec["pk"] == nil || rec["o"] != nil {
		t.Fatalf("record %s", pt)
	}

	nonce := make([]byte, 12)
	hand := `{"p":["ops"],"n":"root","d":"token","c":"auth/token/create-orphan","i":` +
		jsonInt(t0.UnixNano()) + `,"x":` + jsonInt(t0.Add(time.Minute).UnixNano()) + `,"o":true}`
	made := "hvb." + base64.RawURLEncoding.EncodeToString(gcm.Seal(append([]byte{1}, nonce...), nonce, []byte(hand), ad))
	e := h.lookup(made)
	if e == nil || !reflect.DeepEqual(e.Policies, []string{"ops"}) || !e.Orphan || e.TTL != time.Minute || e.Type != TypeBatch {
		t.Fatalf("a token made by hand from the documented format: %+v", e)
	}
	// The version is authenticated: the same sealing under another version's
	// associated data does not open.
	other := gcm.Seal(append([]byte{1}, nonce...), nonce, []byte(hand), append([]byte("coffer batch token"), 2))
	if h.lookup("hvb."+base64.RawURLEncoding.EncodeToString(other)) != nil {
		t.Fatal("a blob sealed for version 2 opened as version 1")
	}
	// Records the code would never write (another namespace, an unknown
	// field, the root policy, no lifetime) are refused even under the key:
	// only a holder of the key could make them. (No lifetime: the expiry
	// check refuses it.)
	for _, bad := range []string{
		strings.Replace(hand, `"n":"root"`, `"n":"team"`, 1),
		strings.Replace(hand, `"o":true}`, `"o":true,"z":1}`, 1),
		strings.Replace(hand, `"p":["ops"]`, `"p":["root"]`, 1),
		strings.Replace(hand, `"p":["ops"]`, `"p":["ops","root"]`, 1),
		strings.Replace(hand, `"x":`+jsonInt(t0.Add(time.Minute).UnixNano()), `"x":`+jsonInt(t0.UnixNano()), 1),
	} {
		tok := "hvb." + base64.RawURLEncoding.EncodeToString(gcm.Seal(append([]byte{1}, nonce...), nonce, []byte(bad), ad))
		if h.lookup(tok) != nil {
			t.Errorf("record %s accepted", bad)
		}
	}
}

func jsonInt(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func TestBatchOptionsValidate(t *testing.T) {
	for _, o := range []Options{{BatchKeyPath: "core/x"}, {BatchKeyStorage: inmem.New()}} {
		if err := o.Validate(); err == nil {
			t.Errorf("Validate(%+v) accepted half a batch key configuration", o)
		}
	}
	// Without key storage a batch create says so, and lookups refuse every batch token.
	mem := inmem.New()
	s := New(logical.NewView(mem, "sys/token/"), Options{}, zerolog.Nop())
	if err := s.Create(t.Context(), &Entry{Type: TypeBatch, Policies: []string{"web"}}); !errors.Is(err, ErrNoBatchKey) {
		t.Fatalf("batch create without key storage: %v", err)
	}
	if e, err := s.Lookup(t.Context(), BatchPrefix+"AAAA"); e != nil || err != nil {
		t.Fatalf("batch lookup without key storage: %v %v", e, err)
	}
}

// Whatever follows the prefix, a lookup never panics and accepts nothing but
// a token the store made.
func FuzzBatchLookup(f *testing.F) {
	f.Add("AQ")
	f.Add(strings.Repeat("A", 60))
	f.Add("AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, s string) {
		mem := inmem.New()
		st := New(logical.NewView(mem, "sys/token/"), Options{BatchKeyStorage: mem, BatchKeyPath: testBatchKeyPath}, zerolog.Nop())
		e := &Entry{Type: TypeBatch, Policies: []string{"web"}}
		if err := st.Create(t.Context(), e); err != nil {
			t.Fatal(err)
		}
		if BatchPrefix+s == e.ID {
			return
		}
		if got, err := st.Lookup(t.Context(), BatchPrefix+s); got != nil || err != nil {
			t.Fatalf("Lookup(%q) = %+v, %v", s, got, err)
		}
	})
}
