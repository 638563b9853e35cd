package approle

import (
	"testing"

	"github.com/google/uuid"

	"github.com/cofferhq/coffer/engines/internal/enginetest"
)

func TestRoleCreateReadUpdate(t *testing.T) {
	h := newHarness(t)
	resp := h.must(cr, "role/Web", map[string]any{
		"token_policies":        "B, a",
		"token_ttl":             "1h",
		"token_max_ttl":         7200,
		"secret_id_ttl":         "10m",
		"secret_id_num_uses":    3,
		"secret_id_bound_cidrs": []any{"10.0.0.0/8", "192.168.1.7"},
		"token_bound_cidrs":     "10.1.0.0/16",
		"local_secret_ids":      true,
		"bogus":                 1,
	})
	if resp == nil || len(resp.Warnings) != 1 || resp.Warnings[0] != "Endpoint ignored these unrecognized parameters: [bogus]" {
		t.Fatalf("warnings: %+v", resp)
	}
	got := h.must(rd, "role/web", nil).Data
	jsonEq(t, "role read", got, map[string]any{
		"bind_secret_id":          true,
		"secret_id_bound_cidrs":   []string{"10.0.0.0/8", "192.168.1.7/32"},
		"secret_id_num_uses":      3,
		"secret_id_ttl":           600,
		"local_secret_ids":        true,
		"token_policies":          []string{"a", "b"},
		"token_ttl":               3600,
		"token_max_ttl":           7200,
		"token_explicit_max_ttl":  0,
		"token_period":            0,
		"token_num_uses":          0,
		"token_no_default_policy": false,
		"token_type":              "default",
		"token_bound_cidrs":       []string{"10.1.0.0/16"},
	})

	// An update changes only what it names; the legacy names are echoed.
	h.must(wr, "role/web", map[string]any{"policies": "c", "period": "5m", "token_num_uses": 4})
	got = h.must(rd, "role/web", nil).Data
	jsonEq(t, "policies", got["token_policies"], []string{"c"})
	jsonEq(t, "legacy policies", got["policies"], []string{"c"})
	jsonEq(t, "period", got["token_period"], 300)
	jsonEq(t, "legacy period", got["period"], 300)
	jsonEq(t, "num uses", got["token_num_uses"], 4)
	jsonEq(t, "kept", got["secret_id_num_uses"], 3)

	if !h.exists("role/web") || h.exists("role/nope") || !h.exists("role/nope/secret-id") || h.exists("login") {
		t.Fatal("ExistenceCheck")
	}
}

func (h *harness) exists(path string) bool {
	h.t.Helper()
	return enginetest.Target{Backend: h.b, Storage: h.view}.Exists(h.t, path)
}

func TestRoleValidation(t *testing.T) {
	h := newHarness(t)
	h.fails(wr, "role/a", map[string]any{"bind_secret_id": false}, 400, "at least one constraint should be enabled on the role")
	h.fails(wr, "role/a", map[string]any{"token_type": "batch"}, 400, "coffer logins issue service tokens only")
	h.fails(wr, "role/a", map[string]any{"token_ttl": "2h", "token_max_ttl": "1h"}, 400, "token_ttl (2h0m0s) is greater than token_max_ttl")
	h.fails(wr, "role/a", map[string]any{"secret_id_bound_cidrs": "nope"}, 400, "secret_id_bound_cidrs")
	h.fails(wr, "role/a", map[string]any{"secret_id_num_uses": -1}, 400, "secret_id_num_uses")
	h.fails(wr, "role/a", map[string]any{"policies": "a", "token_policies": "b"}, 400, "token_policies and policies differ")
	h.fails(wr, "role/-a", nil, 400, "role name")
	h.fails(wr, "role/a b", nil, 400, "role name")
	h.fails(rd, "role/a/nope", nil, 404, "approle serves")

	h.must(wr, "role/a", map[string]any{"bind_secret_id": false, "token_bound_cidrs": "10.0.0.0/8"})
	// Taking away the last constraint is refused too.
	h.fails(wr, "role/a", map[string]any{"token_bound_cidrs": ""}, 400, "at least one constraint")
	h.fails(wr, "role/a", map[string]any{"local_secret_ids": true}, 400, "local_secret_ids can only be modified during role creation")
	h.must(wr, "role/a", map[string]any{"local_secret_ids": false})
}

func TestRoleListDelete(t *testing.T) {
	h := newHarness(t)
	h.fails(list, "role/", nil, 404, "no roles")
	h.fails(rd, "role/a", nil, 404, "no role")
	h.role("b", nil)
	h.role("a", nil)
	jsonEq(t, "list", h.must(list, "role/", nil).Data["keys"], []string{"a", "b"})

	id := h.role("c", nil)
	sec := h.secret("c", nil)
	h.must(del, "role/c", nil)
	h.must(del, "role/c", nil) // missing: not an error
	h.fails(rd, "role/c", nil, 404, "no role")
	for _, k := range h.keys() {
		if underAny(k, []string{secretIDPrefix + "", accessorPrefix}) && k != localSaltKey {
			t.Fatalf("key %q left after the role's delete", k)
		}
	}
	// Created again under the same name: a new role_id, and the old
	// credentials are dead.
	id2 := h.role("c", nil)
	if id2 == id {
		t.Fatal("role_id reused")
	}
	h.refused(id, sec["secret_id"].(string))
	h.refused(id2, sec["secret_id"].(string))
}

func TestRoleID(t *testing.T) {
	h := newHarness(t)
	id := h.role("a", nil)
	if _, err := uuid.Parse(id); err != nil {
		t.Fatalf("role_id %q is not a UUID", id)
	}
	sec := h.secret("a", nil)["secret_id"].(string)

	h.must(wr, "role/a/role-id", map[string]any{"role_id": "custom-a"})
	jsonEq(t, "custom", h.must(rd, "role/a/role-id", nil).Data, map[string]any{"role_id": "custom-a"})
	h.login("custom-a", sec)
	h.refused(id, sec)

	h.role("b", map[string]any{"role_id": "custom-b"})
	h.fails(wr, "role/b/role-id", map[string]any{"role_id": "custom-a"}, 400, "role_id already in use")
	h.fails(wr, "role/c", map[string]any{"role_id": "custom-a"}, 400, "role_id already in use")
	h.fails(wr, "role/b/role-id", nil, 400, "missing role_id")
	h.fails(wr, "role/b/role-id", map[string]any{"role_id": ""}, 400, "role_id: must not be empty")
	h.fails(wr, "role/zz/role-id", map[string]any{"role_id": "x"}, 404, `role "zz" does not exist`)
	h.fails(rd, "role/zz/role-id", nil, 404, "no role")
	// The old value is free again.
	h.must(wr, "role/b/role-id", map[string]any{"role_id": id})
	h.fails(wr, "login", map[string]any{"role_id": "custom-b", "secret_id": sec}, 400, "invalid role or secret ID")
}

func TestCanonicalPath(t *testing.T) {
	b := New()
	for in, want := range map[string]string{
		"role/Web":                "role/web",
		"role/Web/secret-id":      "role/web/secret-id",
		"role/web/Secret-ID":      "role/web/Secret-ID",
		"login":                   "login",
		"role/":                   "role/",
		"role/A/secret-id/lookup": "role/a/secret-id/lookup",
	} {
		if got, _ := b.CanonicalPath(in); got != want {
			t.Errorf("CanonicalPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestUnsupportedOperation(t *testing.T) {
	h := newHarness(t)
	h.fails(rd, "login", nil, 405, "supports write")
	h.fails(del, "role/a/secret-id/lookup", nil, 405, "supports write")
	h.fails(list, "role/a", nil, 405, "read, write, delete")
}
