package tokens

import (
	"context"
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/cofferhq/coffer/logical"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/bolt"
	"github.com/cofferhq/coffer/storage/inmem"
)

func TestCreateFillsEntryAndLookupReadsItBack(t *testing.T) {
	h := newHarness(t, Options{})
	e := h.create(&Entry{Parent: h.root, Policies: []string{" Web ", "db", "web"}, Meta: map[string]string{"app": "x"}, Renewable: true, NumUses: 3})

	if !strings.HasPrefix(e.ID, "hvs.") || len(e.ID) != 28 {
		t.Fatalf("ID = %q, want hvs. + 24 characters", e.ID)
	}
	if len(e.Accessor) != 24 || e.Accessor == e.ID {
		t.Fatalf("Accessor = %q", e.Accessor)
	}
	if want := []string{"db", "web"}; !reflect.DeepEqual(e.Policies, want) {
		t.Fatalf("Policies = %q, want %q", e.Policies, want)
	}
	if e.TTL != DefaultTTL || !e.ExpireTime.Equal(t0.Add(DefaultTTL)) || !e.CreationTime.Equal(t0) {
		t.Fatalf("TTL %s, expire %s, created %s; want the system default from t0", e.TTL, e.ExpireTime, e.CreationTime)
	}
	if e.Orphan || e.Type != TypeService {
		t.Fatalf("Orphan %v Type %q", e.Orphan, e.Type)
	}

	got := h.lookup(e.ID)
	if got == nil {
		t.Fatal("Lookup: token not found")
	}
	if !got.CreationTime.Equal(e.CreationTime) || !got.ExpireTime.Equal(e.ExpireTime) {
		t.Fatalf("times differ: %+v vs %+v", got, e)
	}
	got.CreationTime, got.ExpireTime = e.CreationTime, e.ExpireTime
	if !reflect.DeepEqual(got, e) {
		t.Fatalf("Lookup = %+v\nwant %+v", got, e)
	}
	if h.lookup("hvs.doesnotexist") != nil || h.lookup("") != nil {
		t.Fatal("Lookup of an unknown token found something")
	}
	if acc, err := h.s.LookupAccessor(h.ctx, e.Accessor); err != nil || acc == nil || acc.ID != e.ID {
		t.Fatalf("LookupAccessor = %+v, %v", acc, err)
	}
}

func TestStorageKeysHideTokensAndRecordsAreVersioned(t *testing.T) {
	h := newHarness(t, Options{})
	e := h.child(h.root, "web")
	for _, k := range h.keys("") {
		if strings.Contains(k, e.ID) || strings.Contains(k, e.Accessor) || strings.Contains(k, h.root) {
			t.Fatalf("storage key %q holds a token or accessor in clear", k)
		}
		raw, err := h.mem.Get(h.ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		var v struct {
			V int `json:"v"`
		}
		if err := json.Unmarshal(raw.Value, &v); err != nil || v.V != recordVersion {
			t.Fatalf("record %q is not versioned JSON: %s", k, raw.Value)
		}
	}
	// id/ holds both tokens, accessor/ both accessors, parent/ one link.
	if n := len(h.keys("id/")); n != 2 {
		t.Fatalf("%d id/ keys, want 2", n)
	}
	if n := len(h.keys("accessor/")); n != 2 {
		t.Fatalf("%d accessor/ keys, want 2", n)
	}
	if n := len(h.keys("parent/")); n != 1 {
		t.Fatalf("%d parent/ keys, want 1", n)
	}
}

func TestRecordFromNewerCoffer(t *testing.T) {
	h := newHarness(t, Options{})
	key, _ := h.s.hash(h.ctx, "hvs.future")
	if err := h.view.Put(h.ctx, &storage.Entry{Key: idPrefix + key, Value: []byte(`{"v":2,"id":"hvs.future"}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.s.Lookup(h.ctx, "hvs.future"); err == nil || !strings.Contains(err.Error(), "upgrade Coffer") {
		t.Fatalf("Lookup of a v2 record: %v, want an error asking to upgrade", err)
	}
}

func TestRootTokens(t *testing.T) {
	h := newHarness(t, Options{})
	dev, err := h.s.CreateRoot(h.ctx, "root")
	if err != nil {
		t.Fatal(err)
	}
	if dev.ID != "root" || !dev.ExpireTime.IsZero() || dev.TTL != 0 || dev.Renewable || !dev.Orphan {
		t.Fatalf("dev root = %+v, want id root, no expiry, not renewable, orphan", dev)
	}
	if _, err := h.s.CreateRoot(h.ctx, "root"); !isErr(err, ErrDuplicateID) {
		t.Fatalf("second CreateRoot(root): %v, want ErrDuplicateID", err)
	}
	h.clock.Advance(10 * 365 * 24 * time.Hour)
	if h.lookup("root") == nil {
		t.Fatal("root token expired")
	}
	if _, err := h.s.Renew(h.ctx, "root", time.Hour); !isErr(err, ErrNotRenewable) {
		t.Fatalf("Renew(root): %v, want ErrNotRenewable", err)
	}
	// A root-policy token with an explicit max TTL does expire.
	bounded := h.create(&Entry{Policies: []string{"root"}, ExplicitMaxTTL: time.Hour})
	if !bounded.ExpireTime.Equal(h.clock.Now().Add(time.Hour)) {
		t.Fatalf("root token with explicit max 1h expires at %s", bounded.ExpireTime)
	}
}

func TestLegacyRecordsOfTheFirstTokenStore(t *testing.T) {
	// core/token.go wrote a raw 32-byte salt and {id, accessor, policies,
	// creation_time} records: they must still be found.
	mem := inmem.New()
	view := logical.NewView(mem, "sys/token/")
	salt := make([]byte, 32)
	for i := range salt {
		salt[i] = byte(i)
	}
	ctx := context.Background()
	if err := view.Put(ctx, &storage.Entry{Key: "salt", Value: salt}); err != nil {
		t.Fatal(err)
	}
	s := New(view, Options{}, zerolog.Nop())
	key, err := s.hash(ctx, "legacy-root")
	if err != nil {
		t.Fatal(err)
	}
	rec := `{"id":"legacy-root","accessor":"abc","policies":["root"],"creation_time":"2024-01-01T00:00:00Z"}`
	if err := view.Put(ctx, &storage.Entry{Key: idPrefix + key, Value: []byte(rec)}); err != nil {
		t.Fatal(err)
	}
	e, err := s.Lookup(ctx, "legacy-root")
	if err != nil || e == nil {
		t.Fatalf("Lookup(legacy) = %v, %v", e, err)
	}
	if !reflect.DeepEqual(e.Policies, []string{"root"}) || !e.ExpireTime.IsZero() || !e.Orphan || e.Type != TypeService {
		t.Fatalf("legacy entry = %+v", e)
	}
}

func TestTTLBoundedBySystemMax(t *testing.T) {
	h := newHarness(t, Options{DefaultTTL: time.Hour, MaxTTL: 2 * time.Hour})

	long := h.create(&Entry{Parent: h.root, Policies: []string{"p"}, TTL: 5 * time.Hour, Renewable: true})
	if long.TTL != 2*time.Hour {
		t.Fatalf("TTL 5h under max 2h granted %s", long.TTL)
	}
	e := h.child(h.root, "p")
	if e.TTL != time.Hour {
		t.Fatalf("default TTL granted %s, want 1h", e.TTL)
	}

	h.clock.Advance(50 * time.Minute)
	r, err := h.s.Renew(h.ctx, e.ID, 0) // its own TTL again
	if err != nil {
		t.Fatal(err)
	}
	if want := t0.Add(110 * time.Minute); !r.ExpireTime.Equal(want) {
		t.Fatalf("renewed to %s, want %s", r.ExpireTime, want)
	}
	if r.TTL != time.Hour {
		t.Fatalf("renewal changed creation TTL to %s", r.TTL)
	}

	h.clock.Advance(50 * time.Minute) // t0+1h40m
	_, ttl, warnings, err := h.s.renew(h.ctx, e.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if ttl != 20*time.Minute || len(warnings) != 1 {
		t.Fatalf("renewal near the max granted %s (warnings %q), want 20m and a warning", ttl, warnings)
	}

	h.clock.Advance(20 * time.Minute) // t0+2h: expired for good
	if h.lookup(e.ID) != nil {
		t.Fatal("token alive past the system max TTL")
	}
	if _, err := h.s.Renew(h.ctx, e.ID, time.Hour); !isErr(err, ErrTokenNotFound) {
		t.Fatalf("Renew past max: %v, want ErrTokenNotFound", err)
	}
	if h.stored(e.ID) {
		t.Fatal("Lookup of an expired token did not revoke it")
	}
}

func TestExplicitMaxTTL(t *testing.T) {
	h := newHarness(t, Options{})
	e := h.create(&Entry{Parent: h.root, Policies: []string{"p"}, TTL: time.Hour, ExplicitMaxTTL: 90 * time.Minute, Renewable: true})
	h.clock.Advance(50 * time.Minute)
	r, err := h.s.Renew(h.ctx, e.ID, 4*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if want := t0.Add(90 * time.Minute); !r.ExpireTime.Equal(want) {
		t.Fatalf("renewal under explicit max 90m expires at %s, want %s", r.ExpireTime, want)
	}
	// Asked at creation above the explicit max, the TTL is the explicit max.
	c := h.create(&Entry{Parent: h.root, Policies: []string{"p"}, TTL: 5 * time.Hour, ExplicitMaxTTL: 2 * time.Hour})
	if c.TTL != 2*time.Hour {
		t.Fatalf("TTL 5h with explicit max 2h granted %s", c.TTL)
	}
}

func TestPeriodicTokens(t *testing.T) {
	h := newHarness(t, Options{DefaultTTL: time.Hour, MaxTTL: 2 * time.Hour})
	e := h.create(&Entry{Parent: h.root, Policies: []string{"p"}, Period: time.Hour, TTL: 10 * time.Minute, Renewable: true})
	if e.TTL != time.Hour {
		t.Fatalf("periodic token TTL %s, want its period", e.TTL)
	}
	// Renewed every 50 minutes, it outlives the system max TTL.
	for i := range 6 {
		h.clock.Advance(50 * time.Minute)
		r, err := h.s.Renew(h.ctx, e.ID, 0)
		if err != nil {
			t.Fatalf("renewal %d: %v", i, err)
		}
		if want := h.clock.Now().Add(time.Hour); !r.ExpireTime.Equal(want) {
			t.Fatalf("renewal %d expires at %s, want %s", i, r.ExpireTime, want)
		}
	}
	// As in Vault (framework.CalculateTTL), a periodic token's renewal sets
	// the period whatever the increment, below or above it.
	if r, _ := h.s.Renew(h.ctx, e.ID, 10*time.Minute); !r.ExpireTime.Equal(h.clock.Now().Add(time.Hour)) {
		t.Fatalf("increment 10m gave %s, want the period", r.ExpireTime)
	}
	if r, _ := h.s.Renew(h.ctx, e.ID, 5*time.Hour); !r.ExpireTime.Equal(h.clock.Now().Add(time.Hour)) {
		t.Fatalf("increment 5h gave %s, want the period", r.ExpireTime)
	}

	// With an explicit max TTL the period stops there.
	bounded := h.create(&Entry{Parent: h.root, Policies: []string{"p"}, Period: time.Hour, ExplicitMaxTTL: 150 * time.Minute, Renewable: true})
	start := h.clock.Now()
	h.clock.Advance(50 * time.Minute)
	if _, err := h.s.Renew(h.ctx, bounded.ID, 0); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(50 * time.Minute) // start+100m: a full period would pass the max
	r, err := h.s.Renew(h.ctx, bounded.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := start.Add(150 * time.Minute); !r.ExpireTime.Equal(want) {
		t.Fatalf("bounded periodic renewal expires at %s, want %s", r.ExpireTime, want)
	}
}

func TestNonRenewable(t *testing.T) {
	h := newHarness(t, Options{})
	e := h.create(&Entry{Parent: h.root, Policies: []string{"p"}, TTL: time.Hour})
	_, err := h.s.Renew(h.ctx, e.ID, time.Hour)
	if !isErr(err, ErrNotRenewable) || !strings.Contains(err.Error(), "renewable=false") {
		t.Fatalf("Renew(non-renewable): %v", err)
	}
	if got := h.lookup(e.ID); !got.ExpireTime.Equal(t0.Add(time.Hour)) {
		t.Fatal("a refused renewal changed the expiry")
	}
}

func TestUseLimitedToken(t *testing.T) {
	h := newHarness(t, Options{})
	e := h.create(&Entry{Parent: h.root, Policies: []string{"p"}, NumUses: 2})

	u, err := h.s.UseToken(h.ctx, h.lookup(e.ID))
	if err != nil || u == nil || u.NumUses != 1 || u.RevocationPending() {
		t.Fatalf("first use = %+v, %v", u, err)
	}
	if got := h.lookup(e.ID); got == nil || got.NumUses != 1 {
		t.Fatalf("after one use: %+v", got)
	}
	last, err := h.s.UseToken(h.ctx, h.lookup(e.ID))
	if err != nil || last == nil || !last.RevocationPending() {
		t.Fatalf("last use = %+v, %v; want an entry pending revocation", last, err)
	}
	// The request that consumed the last use still sees its token...
	resp := h.must(e.ID, logical.ReadOperation, "lookup-self", nil)
	if resp.Data["num_uses"] != 0 {
		t.Fatalf("lookup-self during the last use: num_uses %v", resp.Data["num_uses"])
	}
	// ...no other request does.
	if h.lookup(e.ID) != nil {
		t.Fatal("Lookup found a token whose uses are spent")
	}
	if again, err := h.s.UseToken(h.ctx, last); err != nil || again != nil {
		t.Fatalf("use after the last = %+v, %v; want nil", again, err)
	}
	// The router revokes it once the request is answered.
	if err := h.s.Revoke(h.ctx, last.ID); err != nil {
		t.Fatal(err)
	}
	if h.stored(e.ID) || len(h.keys("accessor/")) != 1 {
		t.Fatal("spent token left in storage")
	}

	// Unlimited tokens are not written on use.
	root := h.lookup(h.root)
	if u, err := h.s.UseToken(h.ctx, root); err != nil || u != root {
		t.Fatalf("UseToken(unlimited) = %v, %v", u, err)
	}
}

func TestUseLimitedTokenConcurrentUses(t *testing.T) {
	h := newHarness(t, Options{})
	e := h.create(&Entry{Parent: h.root, Policies: []string{"p"}, NumUses: 5})
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		granted int
		pending int
	)
	for range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u, err := h.s.UseToken(h.ctx, e)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if u != nil {
				granted++
				if u.RevocationPending() {
					pending++
				}
			}
		}()
	}
	wg.Wait()
	if granted != 5 || pending != 1 {
		t.Fatalf("%d uses granted (%d last), want 5 (1 last)", granted, pending)
	}
}

func TestRevokeTakesDescendantsButNotOrphans(t *testing.T) {
	h := newHarness(t, Options{})
	a := h.child(h.root, "p")
	b := h.child(a.ID, "p")
	c := h.child(b.ID, "p")
	sibling := h.child(h.root, "p")
	orphan := h.create(&Entry{Policies: []string{"p"}}) // created by a, without a parent
	if !orphan.Orphan {
		t.Fatal("token without parent is not an orphan")
	}

	if err := h.s.Revoke(h.ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	for _, gone := range []*Entry{a, b, c} {
		if h.lookup(gone.ID) != nil || h.stored(gone.ID) {
			t.Fatalf("token %s survived its ancestor's revocation", gone.Accessor)
		}
		if e, _ := h.s.LookupAccessor(h.ctx, gone.Accessor); e != nil {
			t.Fatal("accessor of a revoked token still resolves")
		}
	}
	for _, kept := range []*Entry{sibling, orphan} {
		if h.lookup(kept.ID) == nil {
			t.Fatalf("token %s revoked with an unrelated token", kept.Accessor)
		}
	}
	// Only the root's link to the sibling remains; 3 tokens are left.
	if n := len(h.keys("parent/")); n != 1 {
		t.Fatalf("%d parent links left, want 1: %q", n, h.keys("parent/"))
	}
	if n, m := len(h.keys("id/")), len(h.keys("accessor/")); n != 3 || m != 3 {
		t.Fatalf("%d tokens and %d accessors left, want 3 and 3", n, m)
	}
	if err := h.s.Revoke(h.ctx, a.ID); err != nil {
		t.Fatalf("revoking again: %v", err)
	}
	// A revoked token cannot parent new tokens.
	if err := h.s.Create(h.ctx, &Entry{Parent: a.ID, Policies: []string{"p"}}); !isErr(err, ErrParentNotFound) {
		t.Fatalf("Create under a revoked parent: %v", err)
	}
}

func TestRevokeOrphanKeepsChildren(t *testing.T) {
	h := newHarness(t, Options{})
	a := h.child(h.root, "p")
	b := h.child(a.ID, "p")
	c := h.child(a.ID, "p")
	grandchild := h.child(b.ID, "p")

	if err := h.s.RevokeOrphan(h.ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if h.stored(a.ID) {
		t.Fatal("revoke-orphan left the token")
	}
	for _, kid := range []*Entry{b, c} {
		got := h.lookup(kid.ID)
		if got == nil || !got.Orphan || got.Parent != "" {
			t.Fatalf("child after revoke-orphan = %+v, want a live orphan", got)
		}
	}
	// The grandchild still belongs to b.
	if err := h.s.Revoke(h.ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	if h.lookup(grandchild.ID) != nil {
		t.Fatal("grandchild survived its parent's revocation")
	}
	if h.lookup(c.ID) == nil {
		t.Fatal("orphaned sibling revoked")
	}
	if err := h.s.RevokeOrphan(h.ctx, a.ID); !isErr(err, ErrTokenNotFound) {
		t.Fatalf("RevokeOrphan of a missing token: %v", err)
	}
}

func TestAccessorOperations(t *testing.T) {
	h := newHarness(t, Options{})
	a := h.child(h.root, "p")
	b := h.child(a.ID, "p")
	if err := h.s.RevokeAccessor(h.ctx, a.Accessor); err != nil {
		t.Fatal(err)
	}
	if h.lookup(a.ID) != nil || h.lookup(b.ID) != nil {
		t.Fatal("revoke by accessor left the token or its child")
	}
	if err := h.s.RevokeAccessor(h.ctx, a.Accessor); !isErr(err, ErrAccessorNotFound) {
		t.Fatalf("RevokeAccessor(unknown): %v", err)
	}
	if e, err := h.s.LookupAccessor(h.ctx, "nope"); e != nil || err != nil {
		t.Fatalf("LookupAccessor(unknown) = %v, %v", e, err)
	}
}

func TestCreateRejectsBadEntries(t *testing.T) {
	h := newHarness(t, Options{})
	for name, e := range map[string]*Entry{
		"negative uses": {NumUses: -1},
		"negative ttl":  {TTL: -time.Second},
		"unknown type":  {Type: "weird"},
		"hvb. id":       {ID: BatchPrefix + "chosen", Policies: []string{"p"}},
		"no parent":     {Parent: "hvs.missing"},
	} {
		if err := h.s.Create(h.ctx, e); err == nil {
			t.Errorf("%s: Create succeeded", name)
		}
	}
}

func TestRestartFindsTokens(t *testing.T) {
	// bolt on disk: a new store on reopened storage finds everything.
	path := filepath.Join(t.TempDir(), "coffer.db")
	open := func() *bolt.Backend {
		b, err := bolt.Open(bolt.Options{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ctx := context.Background()
	c := testutil.NewClock(t0)
	db := open()
	s1 := New(logical.NewView(db, "sys/token/"), Options{Now: c.Now}, zerolog.Nop())
	root, err := s1.CreateRoot(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	kid := &Entry{Parent: root.ID, Policies: []string{"p"}, TTL: time.Hour, Renewable: true}
	if err := s1.Create(ctx, kid); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = open()
	defer db.Close()
	s2 := New(logical.NewView(db, "sys/token/"), Options{Now: c.Now}, zerolog.Nop())
	for _, id := range []string{root.ID, kid.ID} {
		if e, err := s2.Lookup(ctx, id); err != nil || e == nil {
			t.Fatalf("after restart Lookup = %v, %v", e, err)
		}
	}
	if e, _ := s2.LookupAccessor(ctx, kid.Accessor); e == nil || e.ID != kid.ID {
		t.Fatal("accessor lost across restart")
	}
	if err := s2.Revoke(ctx, root.ID); err != nil {
		t.Fatal(err)
	}
	if e, _ := s2.Lookup(ctx, kid.ID); e != nil {
		t.Fatal("child link lost across restart: child survived its parent")
	}
}

func TestSanitizePolicies(t *testing.T) {
	cases := []struct {
		in         []string
		addDefault bool
		want       []string
	}{
		{nil, false, []string{}},
		{nil, true, []string{"default"}},
		{[]string{"B", " a ", "", "b"}, true, []string{"a", "b", "default"}},
		{[]string{"a", "Root", "default"}, true, []string{"root"}},
	}
	for _, c := range cases {
		if got := SanitizePolicies(c.in, c.addDefault); !reflect.DeepEqual(got, c.want) {
			t.Errorf("SanitizePolicies(%q, %v) = %q, want %q", c.in, c.addDefault, got, c.want)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	if err := (Options{}).Validate(); err != nil {
		t.Fatal(err)
	}
	for _, o := range []Options{{DefaultTTL: -1}, {MaxTTL: -1}, {DefaultTTL: 2 * time.Hour, MaxTTL: time.Hour}, {ExpirationInterval: -1}} {
		if err := o.Validate(); err == nil {
			t.Errorf("Validate(%+v) accepted", o)
		}
	}
}

func FuzzDecodeEntry(f *testing.F) {
	e := &Entry{ID: "hvs.x", Accessor: "a", Policies: []string{"p"}, CreationTime: t0, ExpireTime: t0.Add(time.Hour), TTL: time.Hour, Meta: map[string]string{"k": "v"}}
	b, _ := encodeEntry(e)
	f.Add(b)
	f.Add([]byte(`{"id":"legacy","policies":["root"],"creation_time":"2024-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"v":9}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := decodeEntry(data)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes and decodes to the same entry.
		b, err := encodeEntry(e)
		if err != nil {
			t.Fatal(err)
		}
		again, err := decodeEntry(b)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !again.ExpireTime.Equal(e.ExpireTime) || again.ID != e.ID || again.NumUses != e.NumUses || !reflect.DeepEqual(again.Policies, e.Policies) {
			t.Fatalf("round trip changed the entry: %+v vs %+v", again, e)
		}
	})
}

func TestRevokeByPath(t *testing.T) {
	h := newHarness(t, Options{})
	login := &Entry{Policies: []string{"default"}, Path: "auth/userpass/login/bob", Orphan: true}
	other := &Entry{Policies: []string{"default"}, Path: "auth/corp/login/ann", Orphan: true}
	for _, e := range []*Entry{login, other} {
		if err := h.s.Create(h.ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	n, err := h.s.RevokeByPath(h.ctx, "auth/userpass/")
	if err != nil || n != 1 {
		t.Fatalf("RevokeByPath = %d, %v; want 1 token", n, err)
	}
	if e, _ := h.s.Lookup(h.ctx, login.ID); e != nil {
		t.Fatal("a token of the disabled method survived")
	}
	if e, _ := h.s.Lookup(h.ctx, other.ID); e == nil {
		t.Fatal("a token of another method was revoked")
	}
}
