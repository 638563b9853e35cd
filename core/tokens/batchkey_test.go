package tokens

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/cofferhq/coffer/logical"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/inmem"
)

// What core answers on secondaries (canGenerateBatchKey, canPublishBatchKey).
var (
	errPerfSecondary = errors.New("this cluster is a performance secondary")
	errDRSecondary   = errors.New("this cluster is a DR secondary")
)

// perfSecondary is the options of a performance secondary: it signs with a
// key of its own, and never publishes it.
func perfSecondary() Options {
	return Options{CanPublishBatchKey: func() error { return errPerfSecondary }}
}

// drSecondary is the options of a DR secondary: no key of its own.
func drSecondary() Options {
	refuse := func() error { return errDRSecondary }
	return Options{CanGenerateBatchKey: refuse, CanPublishBatchKey: refuse}
}

// receive copies from's entries at paths into h's storage (deleting those
// from lacks) and tells h, as an applied replication batch does.
func (h *harness) receive(from *harness, paths ...string) {
	h.t.Helper()
	for _, p := range paths {
		e, err := from.mem.Get(from.ctx, p)
		if err != nil {
			h.t.Fatal(err)
		}
		if e == nil {
			err = h.mem.Delete(h.ctx, p)
		} else {
			err = h.mem.Put(h.ctx, &storage.Entry{Key: p, Value: e.Value})
		}
		if err != nil {
			h.t.Fatal(err)
		}
	}
	h.s.InvalidateBatchKeys()
}

// signedToken is a version 2 token of record under priv, built by hand from
// batch.go's format, with the signature options given (nil: plain Ed25519).
func signedToken(t *testing.T, priv ed25519.PrivateKey, version byte, record string, opts *ed25519.Options) string {
	t.Helper()
	msg := append([]byte{version}, record...)
	if opts == nil {
		opts = &ed25519.Options{}
	}
	sig, err := priv.Sign(nil, msg, opts)
	if err != nil {
		t.Fatal(err)
	}
	return "hvb." + base64.RawURLEncoding.EncodeToString(append(msg, sig...))
}

// handRecord is a valid orphan record of one minute from t0.
func handRecord(policies string) string {
	return `{"p":[` + policies + `],"n":"root","d":"token","c":"auth/token/create-orphan","i":` +
		jsonInt(t0.UnixNano()) + `,"x":` + jsonInt(t0.Add(time.Minute).UnixNano()) + `,"o":true}`
}

// A token verifies only under the key it was signed with, when that key is
// this cluster's own or the published one.
func TestBatchOtherKeys(t *testing.T) {
	h := newHarness(t, Options{})
	other := newHarness(t, Options{}) // its own storage, so its own keys
	id := h.orphanBatch("web")
	if other.lookup(id) != nil {
		t.Fatal("a batch token accepted by a cluster without its signer's key")
	}
	if h.lookup(other.orphanBatch("web")) != nil {
		t.Fatal("a batch token of another cluster accepted")
	}
	// A well-formed record signed by a key nobody stores.
	_, stranger, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if h.lookup(signedToken(t, stranger, batchVersion, handRecord(`"web"`), batchSigOpts)) != nil {
		t.Fatal("a record signed by a stranger's key accepted")
	}
	// The same record signed by this cluster's key is accepted: the refusal
	// above is the key's.
	if h.lookup(signedToken(t, h.signingKey(), batchVersion, handRecord(`"web"`), batchSigOpts)) == nil {
		t.Fatal("a hand-signed record under this cluster's key refused")
	}

	// A secondary follows the published key: its primary's tokens stop when
	// replication brings another primary's key; its own keep working.
	s := newHarness(t, perfSecondary())
	own := s.orphanBatch("web")
	s.receive(h, testBatchPublicKeyPath)
	if s.lookup(id) == nil || s.lookup(own) == nil {
		t.Fatal("the primary's token or the secondary's own refused on the secondary")
	}
	s.receive(other, testBatchPublicKeyPath)
	if s.lookup(id) != nil {
		t.Fatal("a token of the former primary accepted after the published key changed")
	}
	if s.lookup(other.orphanBatch("web")) == nil || s.lookup(own) == nil {
		t.Fatal("the new primary's token or the secondary's own refused after the published key changed")
	}
}

// A primary and its performance secondaries: their own token stores (their
// own salts), their own signing keys, the primary's public key replicated.
// An orphan batch token of the primary works on every one; a child only where
// its parent lives, and stops with it; a secondary's token only on it.
func TestBatchTokensAcrossClusters(t *testing.T) {
	P := newHarness(t, Options{})
	A := newHarness(t, perfSecondary())
	B := newHarness(t, perfSecondary())

	orphan := P.orphanBatch("web")
	A.receive(P, testBatchPublicKeyPath)
	B.receive(P, testBatchPublicKeyPath)
	for name, h := range map[string]*harness{"primary": P, "secondary A": A, "secondary B": B} {
		if e := h.lookup(orphan); e == nil || !reflect.DeepEqual(e.Policies, []string{"default", "web"}) {
			t.Fatalf("an orphan batch token of the primary on %s: %+v", name, e)
		}
	}

	// A secondary signs with its own key, publishes nothing: what it makes
	// works on it alone.
	made := A.orphanBatch("web")
	if A.lookup(made) == nil {
		t.Fatal("a secondary's batch token refused on that secondary")
	}
	if P.lookup(made) != nil {
		t.Fatal("a performance secondary minted a batch token its primary accepts")
	}
	if B.lookup(made) != nil {
		t.Fatal("a batch token of one secondary accepted on another")
	}
	if !A.publishedKey().Equal(P.signingKey().Public()) || A.signingKey().Equal(P.signingKey()) {
		t.Fatal("the secondary published its key, or signs with the primary's")
	}
	// Not even a hand-made token with its own key, of a record the primary
	// would accept (the forgery this design stops).
	if P.lookup(signedToken(t, A.signingKey(), batchVersion, handRecord(`"web"`), batchSigOpts)) != nil {
		t.Fatal("a record signed with a secondary's key accepted by the primary")
	}

	parent := P.child(P.root, "web")
	child := P.batch(parent.ID, map[string]any{"policies": "web"}).ClientToken
	if P.lookup(child) == nil {
		t.Fatal("a child batch token refused where its parent lives")
	}
	if A.lookup(child) != nil {
		t.Fatal("a child batch token accepted on a cluster that does not hold its parent")
	}
	if err := P.s.Revoke(P.ctx, parent.ID); err != nil {
		t.Fatal(err)
	}
	if P.lookup(child) != nil {
		t.Fatal("a child batch token still valid after its parent was revoked")
	}
	if P.lookup(orphan) == nil {
		t.Fatal("an orphan batch token stopped with an unrelated revocation")
	}
}

// A DR secondary holds its primary's keys (both classes ship to it): it
// makes no key of its own, verifies the primary's tokens, and once promoted
// signs tokens every cluster trusting the primary accepts.
func TestBatchKeysOnADRSecondary(t *testing.T) {
	P := newHarness(t, Options{})
	D := newHarness(t, drSecondary())
	D.fails(D.root, logical.UpdateOperation, "create", map[string]any{"type": "batch", "policies": "web"}, 400, errDRSecondary.Error())
	for _, p := range []string{testBatchSigningKeyPath, testBatchPublicKeyPath} {
		if raw, err := D.mem.Get(D.ctx, p); raw != nil || err != nil {
			t.Fatalf("a DR secondary wrote %s: %v %v", p, raw, err)
		}
	}
	id := P.orphanBatch("web")
	if D.lookup(id) != nil {
		t.Fatal("a batch token accepted without any key")
	}
	D.receive(P, testBatchSigningKeyPath, testBatchPublicKeyPath)
	if D.lookup(id) == nil {
		t.Fatal("the primary's batch token refused once its keys arrived")
	}

	// Promoted: it may make and publish keys, and needs to do neither.
	promoted := newHarnessOn(t, D.mem, D.view, D.clock, Options{})
	made := promoted.orphanBatch("web")
	S := newHarness(t, perfSecondary())
	S.receive(P, testBatchPublicKeyPath)
	for name, h := range map[string]*harness{"old primary": P, "promoted": promoted, "performance secondary": S} {
		if h.lookup(made) == nil || h.lookup(id) == nil {
			t.Fatalf("a token of the promoted DR secondary or of its primary refused on the %s", name)
		}
	}
	if !promoted.publishedKey().Equal(P.signingKey().Public()) {
		t.Fatal("the promoted DR secondary replaced the published key")
	}
}

// The key pair is made once, by the first create; concurrent first creates
// make one.
func TestBatchKeyMadeOnce(t *testing.T) {
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
	key := c.signingKey()
	for i, id := range ids {
		if c.lookup(id) == nil {
			t.Fatalf("token %d of the concurrent first creates refused: more than one key was made", i)
		}
	}
	c.batch(c.root, map[string]any{"policies": "web"})
	if !c.signingKey().Equal(key) || !c.publishedKey().Equal(key.Public()) {
		t.Fatal("the batch keys changed after the first create")
	}
}

// A cluster that may publish publishes its own key at its next create when
// the published one is missing or another's (a former primary's, after a
// promotion); until then the former primary's tokens are accepted.
func TestBatchKeyPublication(t *testing.T) {
	old := newHarness(t, Options{})
	oldTok := old.orphanBatch("web")

	// A performance secondary with a key of its own and its primary's
	// published key is promoted.
	s := newHarness(t, perfSecondary())
	ownTok := s.orphanBatch("web")
	s.receive(old, testBatchPublicKeyPath)
	p := newHarnessOn(t, s.mem, s.view, s.clock, Options{})
	if p.lookup(oldTok) == nil || p.lookup(ownTok) == nil {
		t.Fatal("before its first create as a primary, the former primary's token or its own refused")
	}
	made := p.orphanBatch("web")
	if !p.publishedKey().Equal(p.signingKey().Public()) {
		t.Fatal("a promoted cluster did not publish its key at its first create")
	}
	if p.lookup(oldTok) != nil {
		t.Fatal("the former primary's token accepted after the promoted cluster published its key")
	}
	// Its followers get the new key: its tokens, older ones included, work there.
	f := newHarness(t, perfSecondary())
	f.receive(p, testBatchPublicKeyPath)
	if f.lookup(made) == nil || f.lookup(ownTok) == nil || f.lookup(oldTok) != nil {
		t.Fatal("a follower of the promoted cluster: want its tokens accepted, the former primary's refused")
	}

	// A key stored without its publication (a crash between, or a key made
	// while a secondary): published at the next create.
	if err := p.mem.Delete(p.ctx, testBatchPublicKeyPath); err != nil {
		t.Fatal(err)
	}
	p.s.InvalidateBatchKeys()
	p.orphanBatch("web")
	if !p.publishedKey().Equal(p.signingKey().Public()) {
		t.Fatal("a missing published key was not published again")
	}
}

func TestBatchKeyRecords(t *testing.T) {
	h := newHarness(t, Options{})
	h.orphanBatch("web") // both keys exist
	good := map[string][]byte{}
	for _, p := range []string{testBatchSigningKeyPath, testBatchPublicKeyPath} {
		e, err := h.mem.Get(h.ctx, p)
		if err != nil || e == nil {
			t.Fatal(err)
		}
		good[p] = e.Value
	}
	put := func(path, v string) {
		t.Helper()
		if err := h.mem.Put(h.ctx, &storage.Entry{Key: path, Value: []byte(v)}); err != nil {
			t.Fatal(err)
		}
		h.s.InvalidateBatchKeys()
	}
	for _, c := range []struct{ path, v, msg string }{
		{testBatchSigningKeyPath, `{"v":2,"seed":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`, "upgrade Coffer"},
		{testBatchSigningKeyPath, `{"v":1,"seed":"AAAA"}`, "want 32"},
		{testBatchSigningKeyPath, `{"v":0}`, "invalid version"},
		{testBatchSigningKeyPath, `not json`, "damaged"},
		{testBatchPublicKeyPath, `{"v":2,"key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`, "upgrade Coffer"},
		{testBatchPublicKeyPath, `{"v":1,"key":"AAAA"}`, "want 32"},
		{testBatchPublicKeyPath, `{"v":0}`, "invalid version"},
		{testBatchPublicKeyPath, `not json`, "damaged"},
	} {
		put(c.path, c.v)
		if _, err := h.s.Lookup(h.ctx, BatchPrefix+"AAAA"); err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s %s: Lookup error %v, want %q", c.path, c.v, err, c.msg)
		}
		if err := h.s.Create(h.ctx, &Entry{Type: TypeBatch, Policies: []string{"web"}}); err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s %s: Create error %v, want %q", c.path, c.v, err, c.msg)
		}
		put(c.path, string(good[c.path]))
	}
}

// The format of batch.go's comment, checked by hand (a dumb oracle): a
// created token is the documented record in clear, signed as documented, and
// a token spelled from the documentation is accepted.
func TestBatchDocumentedFormat(t *testing.T) {
	h := newHarness(t, Options{})
	id := h.batch(h.root, map[string]any{"policies": "web", "ttl": "1h", "meta": map[string]any{"k": "v"}}).ClientToken
	pub := h.signingKey().Public().(ed25519.PublicKey)
	blob, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(id, "hvb."))
	if err != nil || blob[0] != 2 || len(blob) < 65 {
		t.Fatalf("blob %x: %v", blob, err)
	}
	msg, sig := blob[:len(blob)-64], blob[len(blob)-64:]
	if err := ed25519.VerifyWithOptions(pub, msg, sig, &ed25519.Options{Context: "coffer-batch-token-v2"}); err != nil {
		t.Fatalf("the signature does not verify as documented: %v", err)
	}
	if ed25519.Verify(pub, msg, sig) {
		t.Fatal("the signature verifies as plain Ed25519: no domain separation")
	}
	var rec map[string]any
	d := json.NewDecoder(strings.NewReader(string(msg[1:])))
	d.UseNumber()
	if err := d.Decode(&rec); err != nil {
		t.Fatalf("the record is not JSON in clear: %v", err)
	}
	issued, _ := rec["i"].(json.Number).Int64()
	expires, _ := rec["x"].(json.Number).Int64()
	if rec["n"] != "root" || rec["c"] != "auth/token/create" || issued != t0.UnixNano() || expires-issued != int64(time.Hour) ||
		!reflect.DeepEqual(rec["p"], []any{"default", "web"}) || rec["pk"] == nil || rec["o"] != nil ||
		!reflect.DeepEqual(rec["m"], map[string]any{"k": "v"}) {
		t.Fatalf("record %s", msg[1:])
	}

	priv := h.signingKey()
	hand := handRecord(`"ops"`)
	e := h.lookup(signedToken(t, priv, 2, hand, &ed25519.Options{Context: "coffer-batch-token-v2"}))
	if e == nil || !reflect.DeepEqual(e.Policies, []string{"ops"}) || !e.Orphan || e.TTL != time.Minute || e.Type != TypeBatch {
		t.Fatalf("a token made by hand from the documented format: %+v", e)
	}
	// Signed by the right key, but not as documented: another version byte,
	// another context, plain Ed25519, the context of another Coffer format.
	for name, tok := range map[string]string{
		"version 1":         signedToken(t, priv, 1, hand, batchSigOpts),
		"version 3":         signedToken(t, priv, 3, hand, batchSigOpts),
		"plain Ed25519":     signedToken(t, priv, 2, hand, nil),
		"another context":   signedToken(t, priv, 2, hand, &ed25519.Options{Context: "coffer-batch-token-v1"}),
		"generation claims": signedToken(t, priv, 2, hand, &ed25519.Options{Context: "coffer-generation-v1"}),
	} {
		if h.lookup(tok) != nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// Records the code would never write (another namespace, an unknown
	// field, the root policy, no lifetime, data after the record) are
	// refused even signed by the key: only its holder could make them.
	for _, bad := range []string{
		strings.Replace(hand, `"n":"root"`, `"n":"team"`, 1),
		strings.Replace(hand, `"o":true}`, `"o":true,"z":1}`, 1),
		strings.Replace(hand, `"p":["ops"]`, `"p":["root"]`, 1),
		strings.Replace(hand, `"p":["ops"]`, `"p":["ops","root"]`, 1),
		strings.Replace(hand, `"x":`+jsonInt(t0.Add(time.Minute).UnixNano()), `"x":`+jsonInt(t0.UnixNano()), 1),
		hand + `{}`,
		hand + `x`,
		`[` + hand + `]`,
	} {
		if h.lookup(signedToken(t, priv, 2, bad, batchSigOpts)) != nil {
			t.Errorf("record %s accepted", bad)
		}
	}
	// Ed25519 is deterministic: the same record is the same token.
	if a, b := signedToken(t, priv, 2, hand, batchSigOpts), signedToken(t, priv, 2, hand, batchSigOpts); a != b {
		t.Fatal("two signatures of one record differ")
	}
}

func jsonInt(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func TestBatchOptionsValidate(t *testing.T) {
	mem := inmem.New()
	for _, o := range []Options{
		{BatchSigningKeyPath: "core/local-x", BatchPublicKeyPath: "core/x"},
		{BatchKeyStorage: mem},
		{BatchKeyStorage: mem, BatchSigningKeyPath: "core/local-x"},
		{BatchKeyStorage: mem, BatchPublicKeyPath: "core/x"},
		{BatchKeyStorage: mem, BatchSigningKeyPath: "core/x", BatchPublicKeyPath: "core/x"},
	} {
		if err := o.Validate(); err == nil {
			t.Errorf("Validate(%+v) accepted an incomplete batch key configuration", o)
		}
	}
	if err := (Options{BatchKeyStorage: mem, BatchSigningKeyPath: "core/local-x", BatchPublicKeyPath: "core/x"}).Validate(); err != nil {
		t.Fatal(err)
	}
	// Without key storage a batch create says so, and lookups refuse every batch token.
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
	f.Add("Ag")
	f.Add(strings.Repeat("A", 120))
	f.Add("AnsicCI6WyJ3ZWIiXSwibiI6InJvb3QifQ" + strings.Repeat("A", 86))
	f.Fuzz(func(t *testing.T, s string) {
		mem := inmem.New()
		st := New(logical.NewView(mem, "sys/token/"), Options{
			BatchKeyStorage: mem, BatchSigningKeyPath: testBatchSigningKeyPath, BatchPublicKeyPath: testBatchPublicKeyPath,
		}, zerolog.Nop())
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
