package userpass

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/cofferhq/coffer/logical"
	"github.com/cofferhq/coffer/storage"
)

func TestLoginAuth(t *testing.T) {
	h := newHarness(t)
	h.must(cr, "users/alice", map[string]any{"password": "pw", "token_policies": "ops,dev"})
	a := h.login("alice", "pw")
	jsonEq(t, "Auth", a, &logical.Auth{
		Policies:      []string{"default", "dev", "ops"},
		TokenPolicies: []string{"default", "dev", "ops"},
		Metadata:      map[string]string{"username": "alice"},
		Renewable:     true,
		TokenType:     "service",
	})
	if a.DisplayName != "userpass-alice" {
		t.Fatalf("DisplayName %q, want userpass-alice", a.DisplayName)
	}
	if a.TTL != 0 || a.ExplicitMaxTTL != 0 || a.Period != 0 || a.NumUses != 0 {
		t.Fatalf("a user without token settings gave %+v: want zeros (the mount's defaults)", a)
	}
	if a.ClientToken != "" || a.Accessor != "" {
		t.Fatalf("the backend must not invent a token: %+v", a)
	}
	// Policies and TokenPolicies are separate slices: the router may edit one.
	a.Policies[0] = "changed"
	if a.TokenPolicies[0] != "default" {
		t.Fatal("Policies and TokenPolicies share their backing array")
	}
}

func TestLoginDisplayNameFollowsMount(t *testing.T) {
	h := newHarness(t)
	h.must(cr, "users/alice", map[string]any{"password": "pw"})
	for mountPoint, want := range map[string]string{
		"auth/userpass/":    "userpass-alice",
		"auth/corp/people/": "corp-people-alice",
		"":                  "userpass-alice", // falls back to the mount from BackendConfig
	} {
		resp, err := h.b.HandleRequest(context.Background(), &logical.Request{
			Operation: wr, Path: "login/alice", Data: map[string]any{"password": "pw"},
			Storage: h.view, MountPoint: mountPoint,
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.Auth.DisplayName; got != want {
			t.Errorf("mount %q: DisplayName %q, want %q", mountPoint, got, want)
		}
	}
}

func TestLoginFailures(t *testing.T) {
	h := newHarness(t)
	h.must(cr, "users/alice", map[string]any{"password": "pw"})
	wrong := h.fails(wr, "login/alice", map[string]any{"password": "PW"}, 400, "invalid username or password")
	unknown := h.fails(wr, "login/mallory", map[string]any{"password": "pw"}, 400, "invalid username or password")
	if wrong.Error() != unknown.Error() || wrong.Error() != "invalid username or password" {
		t.Fatalf("wrong password %q and unknown user %q must answer alike", wrong, unknown)
	}
	h.fails(wr, "login/alice", map[string]any{"password": ""}, 400, "invalid username or password")
	h.fails(wr, "login/alice", map[string]any{}, 400, "missing password")
	h.fails(wr, "login/alice", map[string]any{"password": 12.0}, 400, "password: expected a string")
	// Nothing was stored by any of them.
	keys, err := h.view.List(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	jsonEq(t, "storage after failed logins", keys, []string{"user/"})
}

// An unknown user's login compares the password against a hash of the same
// cost as a real one, so the time it takes reveals nothing.
func TestLoginUnknownUserComparesDummyHash(t *testing.T) {
	h := newHarness(t)
	h.must(cr, "users/alice", map[string]any{"password": "pw"})
	var compared [][]byte
	h.b.compare = func(hash, pw []byte) error {
		compared = append(compared, hash)
		return bcrypt.CompareHashAndPassword(hash, pw)
	}

	h.fails(wr, "login/mallory", map[string]any{"password": "pw"}, 400, "invalid username or password")
	if len(compared) != 1 {
		t.Fatalf("unknown user: %d bcrypt compares, want 1", len(compared))
	}
	dummy := compared[0]
	if cost, err := bcrypt.Cost(dummy); err != nil || cost != h.b.Cost {
		t.Fatalf("dummy hash cost %d (%v), want the backend's cost %d", cost, err, h.b.Cost)
	}

	h.fails(wr, "login/alice", map[string]any{"password": "nope"}, 400, "invalid username or password")
	h.login("alice", "pw")
	stored := h.raw("user/alice")["password_hash"].(string)
	if len(compared) != 3 || string(compared[1]) != stored || string(compared[2]) != stored {
		t.Fatalf("known user: compares %q, want two against the stored hash", compared[1:])
	}

	// The dummy hash is made once, not per login.
	h.fails(wr, "login/eve", map[string]any{"password": "pw"}, 400, "invalid username or password")
	if string(compared[3]) != string(dummy) {
		t.Fatal("a second unknown-user login used another dummy hash")
	}
}

func TestLoginTokenSettings(t *testing.T) {
	h := newHarness(t)
	h.must(cr, "users/alice", map[string]any{
		"password":               "pw",
		"token_policies":         "dev",
		"token_ttl":              "1h",
		"token_max_ttl":          7200.0,
		"token_explicit_max_ttl": "3h",
		"token_num_uses":         3.0,
	})
	jsonEq(t, "read", h.must(rd, "users/alice", nil).Data, map[string]any{
		"token_policies":          []string{"dev"},
		"token_ttl":               3600,
		"token_max_ttl":           7200,
		"token_explicit_max_ttl":  10800,
		"token_period":            0,
		"token_num_uses":          3,
		"token_no_default_policy": false,
		"token_type":              "default",
		"token_bound_cidrs":       []string{},
	})
	a := h.login("alice", "pw")
	if a.TTL != time.Hour || a.ExplicitMaxTTL != 2*time.Hour || a.NumUses != 3 || a.Period != 0 || !a.Renewable {
		t.Fatalf("Auth %+v: want TTL 1h, ExplicitMaxTTL 2h (the smaller of max_ttl and explicit_max_ttl), NumUses 3", a)
	}

	// The larger of the two does not win.
	h.must(wr, "users/alice", map[string]any{"token_explicit_max_ttl": "90m"})
	if a := h.login("alice", "pw"); a.ExplicitMaxTTL != 90*time.Minute {
		t.Fatalf("ExplicitMaxTTL %s, want 90m", a.ExplicitMaxTTL)
	}

	// A periodic token renews past token_max_ttl, as in Vault; only the
	// explicit maximum bounds it.
	h.must(wr, "users/alice", map[string]any{"token_period": "24h", "token_explicit_max_ttl": 0})
	a = h.login("alice", "pw")
	if a.Period != 24*time.Hour || a.ExplicitMaxTTL != 0 {
		t.Fatalf("periodic Auth %+v: want Period 24h and no explicit max", a)
	}

	// Changes apply to the next login.
	h.must(wr, "users/alice", map[string]any{"token_period": 0, "token_ttl": 60, "token_max_ttl": 0, "token_num_uses": 0})
	a = h.login("alice", "pw")
	if a.TTL != time.Minute || a.ExplicitMaxTTL != 0 || a.Period != 0 || a.NumUses != 0 {
		t.Fatalf("Auth after update %+v", a)
	}
}

func TestLoginDefaultPolicy(t *testing.T) {
	h := newHarness(t)
	h.must(cr, "users/alice", map[string]any{"password": "pw", "token_policies": "dev", "token_no_default_policy": true})
	jsonEq(t, "no default", h.login("alice", "pw").Policies, []string{"dev"})

	h.must(cr, "users/bob", map[string]any{"password": "pw"})
	jsonEq(t, "no policies", h.login("bob", "pw").Policies, []string{"default"})

	h.must(cr, "users/carol", map[string]any{"password": "pw", "token_policies": "default,dev"})
	jsonEq(t, "default given", h.login("carol", "pw").Policies, []string{"default", "dev"})

	// root stands alone, as Vault sanitizes it.
	h.must(cr, "users/root-user", map[string]any{"password": "pw", "token_policies": "dev,root"})
	jsonEq(t, "stored root", h.must(rd, "users/root-user", nil).Data["token_policies"], []string{"root"})
	jsonEq(t, "root", h.login("root-user", "pw").Policies, []string{"root"})
}

func TestLoginBoundCIDRs(t *testing.T) {
	h := newHarness(t)
	h.must(cr, "users/alice", map[string]any{"password": "pw", "token_bound_cidrs": []any{"10.0.0.0/8", "2001:db8::/32"}})
	for _, addr := range []string{"10.1.2.3:5555", "10.1.2.3", "[2001:db8::1]:443", "[::ffff:10.0.0.1]:80"} {
		h.remote = addr
		h.login("alice", "pw")
	}
	for _, addr := range []string{"127.0.0.1:5555", "11.0.0.1", "[2001:db9::1]:443", "garbage"} {
		h.remote = addr
		err := h.fails(wr, "login/alice", map[string]any{"password": "pw"}, 403, "token_bound_cidrs")
		if !errors.Is(err, logical.ErrPermissionDenied) {
			t.Fatalf("%s: %v, want ErrPermissionDenied", addr, err)
		}
		// The password is checked first: a wrong one says only that.
		h.fails(wr, "login/alice", map[string]any{"password": "bad"}, 400, "invalid username or password")
	}
	h.remote = ""
	h.fails(wr, "login/alice", map[string]any{"password": "pw"}, 403, "address is unknown")
}

// Users are replicated configuration: on a secondary the applier writes
// storage under the backend, which must see the change at once.
func TestLoginReadsStorageEveryTime(t *testing.T) {
	primary := newHarness(t)
	secondary := newHarness(t)
	ctx := context.Background()
	replicate := func(key string) {
		t.Helper()
		e, err := primary.view.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if e == nil {
			err = secondary.view.Delete(ctx, key)
		} else {
			err = secondary.view.Put(ctx, &storage.Entry{Key: key, Value: e.Value})
		}
		if err != nil {
			t.Fatal(err)
		}
	}

	secondary.fails(wr, "login/alice", map[string]any{"password": "pw1"}, 400, "invalid username or password")
	primary.must(cr, "users/alice", map[string]any{"password": "pw1", "token_policies": "dev"})
	replicate("user/alice")
	jsonEq(t, "replicated policies", secondary.login("alice", "pw1").Policies, []string{"default", "dev"})

	primary.must(wr, "users/alice/password", map[string]any{"password": "pw2"})
	primary.must(wr, "users/alice/policies", map[string]any{"token_policies": "ops"})
	replicate("user/alice")
	secondary.fails(wr, "login/alice", map[string]any{"password": "pw1"}, 400, "invalid username or password")
	jsonEq(t, "updated policies", secondary.login("alice", "pw2").Policies, []string{"default", "ops"})

	primary.must(del, "users/alice", nil)
	replicate("user/alice")
	secondary.fails(wr, "login/alice", map[string]any{"password": "pw2"}, 400, "invalid username or password")
	secondary.fails(rd, "users/alice", nil, 404, "alice")
}

// The Auth a login returns is what the HTTP layer encodes under "auth".
func TestLoginAuthJSON(t *testing.T) {
	h := newHarness(t)
	h.must(cr, "users/alice", map[string]any{"password": "pw", "token_policies": "dev", "token_num_uses": 2})
	raw, err := json.Marshal(h.login("alice", "pw"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	jsonEq(t, "metadata", m["metadata"], map[string]string{"username": "alice"})
	jsonEq(t, "num_uses", m["num_uses"], 2)
	jsonEq(t, "renewable", m["renewable"], true)
	jsonEq(t, "token_policies", m["token_policies"], []string{"default", "dev"})
}
