package userpass

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/cofferhq/coffer/logical"
	"github.com/cofferhq/coffer/storage"
)

func TestUserCRUD(t *testing.T) {
	h := newHarness(t)
	if resp := h.must(cr, "users/alice", map[string]any{
		"password":       "s3cr3t",
		"token_policies": "ops, Dev,ops",
		"token_ttl":      "1h",
	}); resp != nil {
		t.Fatalf("create: want no response body, got %+v", resp)
	}
	jsonEq(t, "read", h.must(rd, "users/alice", nil).Data, map[string]any{
		"token_policies":          []string{"dev", "ops"},
		"token_ttl":               3600,
		"token_max_ttl":           0,
		"token_explicit_max_ttl":  0,
		"token_period":            0,
		"token_num_uses":          0,
		"token_no_default_policy": false,
		"token_type":              "default",
		"token_bound_cidrs":       []string{},
	})

	// An update changes only the fields it names.
	h.must(wr, "users/alice", map[string]any{"token_num_uses": 5})
	got := h.must(rd, "users/alice", nil).Data
	jsonEq(t, "policies after update", got["token_policies"], []string{"dev", "ops"})
	jsonEq(t, "ttl after update", got["token_ttl"], 3600)
	jsonEq(t, "num_uses after update", got["token_num_uses"], 5)
	h.login("alice", "s3cr3t")

	if resp := h.must(del, "users/alice", nil); resp != nil {
		t.Fatalf("delete: want no response body, got %+v", resp)
	}
	err := h.fails(rd, "users/alice", nil, 404, "alice")
	if !errors.Is(err, logical.ErrNotFound) {
		t.Fatalf("read after delete: %v, want ErrNotFound", err)
	}
	h.fails(wr, "login/alice", map[string]any{"password": "s3cr3t"}, 400, "invalid username or password")
	// Deleting a missing user is not an error, as in Vault.
	h.must(del, "users/alice", nil)
	h.must(del, "users/nobody", nil)
}

func TestCreateNeedsPassword(t *testing.T) {
	h := newHarness(t)
	h.fails(cr, "users/alice", map[string]any{"token_policies": "dev"}, 400, "missing password")
	h.fails(cr, "users/alice", map[string]any{"password": ""}, 400, "missing password")
	if h.raw("user/alice") != nil {
		t.Fatal("a refused create stored the user")
	}
	// The decision comes from storage, not from the operation the router
	// chose: an update of a missing user is a create and needs a password.
	h.fails(wr, "users/alice", map[string]any{"token_ttl": 60}, 400, "missing password")
	h.must(wr, "users/alice", map[string]any{"password": "pw"})
	// An existing user is updated without one.
	h.must(cr, "users/alice", map[string]any{"token_ttl": 60})
	h.login("alice", "pw")
}

func TestReadNeverLeaksPassword(t *testing.T) {
	h := newHarness(t)
	const pw = "correct horse battery staple"
	h.must(cr, "users/alice", map[string]any{"password": pw, "policies": "dev"})
	resp := h.must(rd, "users/alice", nil)
	raw, err := json.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	stored := h.raw("user/alice")["password_hash"].(string)
	for _, leak := range []string{pw, stored, "$2a$", "password_hash", `"password"`} {
		if strings.Contains(string(raw), leak) {
			t.Fatalf("read response %s contains %q", raw, leak)
		}
	}
	// The stored record holds a bcrypt hash of the password, never the password.
	if err := bcrypt.CompareHashAndPassword([]byte(stored), []byte(pw)); err != nil {
		t.Fatalf("stored hash does not verify: %v", err)
	}
	e, err := h.view.Get(context.Background(), "user/alice")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(e.Value), pw) {
		t.Fatalf("storage holds the plaintext password: %s", e.Value)
	}
}

func TestDefaultCostIsTen(t *testing.T) {
	b := New()
	if got := b.cost(); got != 10 {
		t.Fatalf("default cost %d, want 10", got)
	}
	h := newHarness(t)
	h.must(cr, "users/alice", map[string]any{"password": "pw"})
	cost, err := bcrypt.Cost([]byte(h.raw("user/alice")["password_hash"].(string)))
	if err != nil || cost != bcrypt.MinCost {
		t.Fatalf("stored hash cost %d (%v), want the backend's Cost %d", cost, err, bcrypt.MinCost)
	}
}

func TestStoredRecord(t *testing.T) {
	h := newHarness(t)
	h.must(cr, "users/alice", map[string]any{
		"password": "pw", "token_policies": []any{"b", "a"}, "token_ttl": 90,
		"token_bound_cidrs": "10.1.2.3/8, 192.168.0.1",
	})
	rec := h.raw("user/alice")
	jsonEq(t, "v", rec["v"], 1)
	jsonEq(t, "token_policies", rec["token_policies"], []string{"a", "b"})
	jsonEq(t, "token_ttl_ns", rec["token_ttl_ns"], 90e9)
	jsonEq(t, "token_type", rec["token_type"], "default")
	jsonEq(t, "token_bound_cidrs", rec["token_bound_cidrs"], []string{"10.0.0.0/8", "192.168.0.1/32"})

	// A record of another version is refused, not guessed at.
	rec["v"] = 2
	raw, _ := json.Marshal(rec)
	if err := h.view.Put(context.Background(), &storage.Entry{Key: "user/alice", Value: raw}); err != nil {
		t.Fatal(err)
	}
	_, err := h.req(rd, "users/alice", nil)
	if err == nil || !strings.Contains(err.Error(), "upgrade coffer") {
		t.Fatalf("read of a v2 record: %v, want a refusal naming the upgrade", err)
	}
	h.fails(wr, "login/alice", map[string]any{"password": "pw"}, 500, "record version 2")
}

func TestList(t *testing.T) {
	h := newHarness(t)
	if err := h.fails(list, "users/", nil, 404, "no users"); !errors.Is(err, logical.ErrNotFound) {
		t.Fatalf("empty list: %v, want ErrNotFound", err)
	}
	h.must(cr, "users/bob", map[string]any{"password": "pw"})
	h.must(cr, "users/Alice", map[string]any{"password": "pw"})
	for _, p := range []string{"users", "users/"} {
		jsonEq(t, "list "+p, h.must(list, p, nil).Data, map[string]any{"keys": []string{"alice", "bob"}})
	}
	h.must(del, "users/bob", nil)
	jsonEq(t, "list after delete", h.must(list, "users/", nil).Data, map[string]any{"keys": []string{"alice"}})
}

func TestUsernamesAreLowercased(t *testing.T) {
	h := newHarness(t)
	h.must(cr, "users/Alice.Smith", map[string]any{"password": "pw"})
	if h.raw("user/alice.smith") == nil {
		t.Fatal("user not stored under its lowercased name")
	}
	h.must(rd, "users/ALICE.SMITH", nil)
	h.must(wr, "users/aLiCe.smith/policies", map[string]any{"token_policies": "dev"})
	a := h.login("ALICE.Smith", "pw")
	if a.Metadata["username"] != "alice.smith" || a.DisplayName != "userpass-alice.smith" {
		t.Fatalf("login as mixed case: metadata %v display %q, want the lowercased name", a.Metadata, a.DisplayName)
	}
	h.must(del, "users/ALICE.smith", nil)
	if h.raw("user/alice.smith") != nil {
		t.Fatal("delete with another case left the user")
	}
}

func TestUsernameRules(t *testing.T) {
	h := newHarness(t)
	for _, ok := range []string{"a", "a_b", "a-b", "a.b", "a@b.com", "_x_", "0"} {
		h.must(cr, "users/"+ok, map[string]any{"password": "pw"})
	}
	for _, bad := range []string{"-a", "a-", ".a", "a.", "@a", "a b", "ä"} {
		h.fails(cr, "users/"+bad, map[string]any{"password": "pw"}, 400, "username")
	}
}

func TestPasswordEndpoint(t *testing.T) {
	h := newHarness(t)
	h.must(cr, "users/alice", map[string]any{"password": "old", "token_policies": "dev", "token_ttl": 60})
	if resp := h.must(wr, "users/alice/password", map[string]any{"password": "new"}); resp != nil {
		t.Fatalf("password update: want no body, got %+v", resp)
	}
	h.fails(wr, "login/alice", map[string]any{"password": "old"}, 400, "invalid username or password")
	a := h.login("alice", "new")
	jsonEq(t, "policies kept", a.Policies, []string{"default", "dev"})

	h.fails(wr, "users/alice/password", map[string]any{}, 400, "missing password")
	h.fails(wr, "users/alice/password", map[string]any{"password": "x", "password_hash": "y"}, 400, "password and password_hash")
	h.fails(wr, "users/nobody/password", map[string]any{"password": "x"}, 400, `user "nobody" does not exist`)
	if h.raw("user/nobody") != nil {
		t.Fatal("a password update created a user")
	}

	// password_hash: a bcrypt hash made elsewhere.
	hash, err := bcrypt.GenerateFromPassword([]byte("hashed-elsewhere"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	h.must(cr, "users/alice/password", map[string]any{"password_hash": string(hash)})
	h.login("alice", "hashed-elsewhere")
	h.fails(wr, "users/alice/password", map[string]any{"password_hash": "plaintext"}, 400, "password_hash")
	h.fails(wr, "users/alice/password", map[string]any{"password_hash": "$2a$" + strings.Repeat("x", 56)}, 400, "password_hash")
	h.must(cr, "users/bob", map[string]any{"password_hash": string(hash)})
	h.login("bob", "hashed-elsewhere")

	// bcrypt hashes at most 72 bytes; a longer password is refused, not truncated.
	h.fails(wr, "users/alice/password", map[string]any{"password": strings.Repeat("p", 73)}, 400, "72 bytes")

	// Fields the endpoint does not take are ignored, with a warning.
	resp := h.must(wr, "users/alice/password", map[string]any{"password": "newer", "token_ttl": 5})
	if resp == nil || len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "token_ttl") {
		t.Fatalf("want a warning naming token_ttl, got %+v", resp)
	}
	jsonEq(t, "ttl untouched", h.must(rd, "users/alice", nil).Data["token_ttl"], 60)
}

func TestPoliciesEndpoint(t *testing.T) {
	h := newHarness(t)
	h.must(cr, "users/alice", map[string]any{"password": "pw", "token_policies": "dev"})
	h.must(wr, "users/alice/policies", map[string]any{"token_policies": []any{"ops", "audit"}})
	data := h.must(rd, "users/alice", nil).Data
	jsonEq(t, "token_policies", data["token_policies"], []string{"audit", "ops"})
	if _, ok := data["policies"]; ok {
		t.Fatalf("read shows legacy policies although only token_policies was set: %v", data)
	}
	jsonEq(t, "login policies", h.login("alice", "pw").Policies, []string{"audit", "default", "ops"})

	// The deprecated alias sets the same list, and a read echoes it as Vault does.
	h.must(wr, "users/alice/policies", map[string]any{"policies": "legacy"})
	data = h.must(rd, "users/alice", nil).Data
	jsonEq(t, "token_policies via alias", data["token_policies"], []string{"legacy"})
	jsonEq(t, "policies via alias", data["policies"], []string{"legacy"})
	// Setting token_policies again drops the legacy echo.
	h.must(wr, "users/alice/policies", map[string]any{"token_policies": ""})
	data = h.must(rd, "users/alice", nil).Data
	jsonEq(t, "emptied", data["token_policies"], []string{})
	if _, ok := data["policies"]; ok {
		t.Fatalf("legacy policies still shown: %v", data)
	}

	h.fails(wr, "users/alice/policies", map[string]any{}, 400, "missing token_policies")
	h.fails(wr, "users/alice/policies", map[string]any{"token_policies": "a", "policies": "b"}, 400, "give only token_policies")
	h.must(wr, "users/alice/policies", map[string]any{"token_policies": "a,b", "policies": []any{"b", "a"}})
	h.fails(wr, "users/nobody/policies", map[string]any{"token_policies": "a"}, 400, "does not exist")
	// The password is not taken here.
	resp := h.must(wr, "users/alice/policies", map[string]any{"token_policies": "x", "password": "changed"})
	if resp == nil || len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "password") {
		t.Fatalf("want a warning naming password, got %+v", resp)
	}
	h.login("alice", "pw")
}

func TestLegacyAliases(t *testing.T) {
	h := newHarness(t)
	h.must(cr, "users/alice", map[string]any{"password": "pw", "policies": "a", "ttl": "2m", "max_ttl": 600, "bound_cidrs": "127.0.0.0/8"})
	data := h.must(rd, "users/alice", nil).Data
	jsonEq(t, "token_ttl", data["token_ttl"], 120)
	jsonEq(t, "token_max_ttl", data["token_max_ttl"], 600)
	jsonEq(t, "token_bound_cidrs", data["token_bound_cidrs"], []string{"127.0.0.0/8"})
	jsonEq(t, "policies", data["policies"], []string{"a"})
	h.fails(wr, "users/alice", map[string]any{"ttl": 1, "token_ttl": 2}, 400, "give only token_ttl")
}

func TestTokenFieldValidation(t *testing.T) {
	h := newHarness(t)
	h.must(cr, "users/alice", map[string]any{"password": "pw", "token_max_ttl": "1h"})
	h.fails(wr, "users/alice", map[string]any{"token_ttl": "2h"}, 400, "token_ttl (2h0m0s) is greater than token_max_ttl (1h0m0s)")
	h.must(wr, "users/alice", map[string]any{"token_ttl": "2h", "token_max_ttl": 0})
	h.fails(wr, "users/alice", map[string]any{"token_type": "batch"}, 400, "logins issue service tokens only")
	h.must(wr, "users/alice", map[string]any{"token_type": "service"})
	jsonEq(t, "token_type", h.must(rd, "users/alice", nil).Data["token_type"], "service")
}

func TestWrongTypes(t *testing.T) {
	h := newHarness(t)
	cases := []struct {
		field string
		value any
	}{
		{"password", 1234.0},
		{"password", []any{"a"}},
		{"password_hash", true},
		{"token_policies", 5.0},
		{"token_policies", []any{"ok", 7.0}},
		{"token_policies", map[string]any{}},
		{"policies", true},
		{"token_ttl", true},
		{"token_ttl", "soon"},
		{"token_ttl", -5.0},
		{"token_ttl", "-1h"},
		{"token_max_ttl", []any{}},
		{"token_explicit_max_ttl", "forever"},
		{"token_period", 1.5},
		{"token_num_uses", 1.5},
		{"token_num_uses", "many"},
		{"token_num_uses", -1.0},
		{"token_no_default_policy", "maybe"},
		{"token_no_default_policy", 1.0},
		{"token_type", "weird"},
		{"token_type", 3.0},
		{"token_bound_cidrs", "not-a-cidr"},
		{"token_bound_cidrs", 10.0},
	}
	for _, c := range cases {
		data := map[string]any{"password": "pw", c.field: c.value}
		if strings.HasPrefix(c.field, "password") {
			data = map[string]any{c.field: c.value}
		}
		err := h.fails(cr, "users/alice", data, 400, c.field)
		if !errors.Is(err, logical.ErrInvalidRequest) {
			t.Fatalf("%s=%v: %v is not an ErrInvalidRequest", c.field, c.value, err)
		}
		if h.raw("user/alice") != nil {
			t.Fatalf("%s=%v: the refused write stored the user", c.field, c.value)
		}
	}
	// Strings from the CLI's k=v arguments parse like JSON values.
	h.must(cr, "users/alice", map[string]any{
		"password": "pw", "token_num_uses": "3", "token_no_default_policy": "true",
		"token_ttl": "120", "token_period": json.Number("30"),
	})
	data := h.must(rd, "users/alice", nil).Data
	jsonEq(t, "parsed", map[string]any{
		"n": data["token_num_uses"], "nd": data["token_no_default_policy"], "ttl": data["token_ttl"], "p": data["token_period"],
	}, map[string]any{"n": 3, "nd": true, "ttl": 120, "p": 30})
}

func TestUnknownFieldsWarn(t *testing.T) {
	h := newHarness(t)
	resp := h.must(cr, "users/alice", map[string]any{"password": "pw", "colour": "blue", "age": 3.0, "username": "ignored-silently"})
	if resp == nil || len(resp.Warnings) != 1 || resp.Warnings[0] != "Endpoint ignored these unrecognized parameters: [age colour]" {
		t.Fatalf("warnings: %+v", resp)
	}
}

func TestExistenceCheck(t *testing.T) {
	h := newHarness(t)
	if h.exists("users/alice") {
		t.Fatal("missing user reported as existing")
	}
	h.must(cr, "users/alice", map[string]any{"password": "pw"})
	for path, want := range map[string]bool{
		"users/alice":          true,
		"users/ALICE":          true,
		"users/bob":            false,
		"users/bob/password":   true,
		"users/bob/policies":   true,
		"users/alice/password": true,
		"login/alice":          false,
		"users/":               false,
		"users/-bad":           false,
		"nowhere":              false,
	} {
		if got := h.exists(path); got != want {
			t.Errorf("ExistenceCheck(%q) = %v, want %v", path, got, want)
		}
	}
}

func TestPathsAndOperations(t *testing.T) {
	h := newHarness(t)
	h.must(cr, "users/alice", map[string]any{"password": "pw"})
	for _, p := range []string{"nowhere", "users/alice/other", "users/alice/password/x", "login/a/b", "config"} {
		if err := h.fails(rd, p, nil, 404, "userpass serves"); !errors.Is(err, logical.ErrUnsupportedPath) {
			t.Fatalf("%s: %v, want ErrUnsupportedPath", p, err)
		}
	}
	h.fails(wr, "login/", map[string]any{"password": "pw"}, 400, "missing username")
	h.fails(wr, "users/", map[string]any{"password": "pw"}, 405, "supports list")
	h.fails(rd, "users/", nil, 405, "supports list")
	h.fails(list, "users/alice", nil, 405, "read, write, delete")
	h.fails(rd, "users/alice/password", nil, 405, "supports write")
	h.fails(rd, "login/alice", nil, 405, "supports write")
	h.fails(del, "users/alice/policies", nil, 405, "supports write")
	h.fails(logical.PatchOperation, "users/alice", map[string]any{"token_ttl": 1}, 405, "read, write, delete")
}

func TestUnauthenticatedPaths(t *testing.T) {
	jsonEq(t, "UnauthenticatedPaths", UnauthenticatedPaths(), []string{"login/*"})
	for p, want := range map[string]bool{
		"login/alice": true, "login/": true, "users/alice": false, "users/": false, "loginx/a": false, "x/login/a": false,
	} {
		if LoginPath(p) != want {
			t.Errorf("LoginPath(%q) = %v, want %v", p, !want, want)
		}
	}
}

// User names are case-insensitive: the canonical path core authorizes has
// the name lowercased, so an ACL rule on users/bob holds for users/BOB.
func TestCanonicalPathLowercasesNames(t *testing.T) {
	b := &Backend{}
	for in, want := range map[string]string{
		"users/BOB":          "users/bob",
		"users/Bob/password": "users/bob/password",
		"users/":             "users/",
		"login/ALICE":        "login/alice",
		"users/bob/policies": "users/bob/policies",
		"other/X":            "other/X",
	} {
		if got, err := b.CanonicalPath(in); err != nil || got != want {
			t.Errorf("CanonicalPath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
