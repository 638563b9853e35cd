package security

// Logins and token roles cannot be used to climb to root (issue 15 review):
// an AppRole role or userpass user naming the root policy logs in to a 400,
// never a root token; a new token role needs "create" on its path, as in
// Vault, so "update" alone cannot add one that hands out other policies.

import (
	"net/http"
	"strings"
	"testing"
)

func TestHTTPAttackLoginNeverMintsARootToken(t *testing.T) {
	s := startDevServer(t, serverOpts{NoNATS: true})
	root := s.rootClient()
	if err := root.Sys().EnableAuth("approle", "approle", ""); err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().EnableAuth("userpass", "userpass", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("auth/approle/role/climb", map[string]any{"token_policies": "root"}); err != nil {
		t.Fatal(err)
	}
	rid, err := root.Logical().Read("auth/approle/role/climb/role-id")
	if err != nil {
		t.Fatal(err)
	}
	sid, err := root.Logical().Write("auth/approle/role/climb/secret-id", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("auth/userpass/users/climber", map[string]any{"password": "pw", "token_policies": "root"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, body string }{
		{"/v1/auth/approle/login", `{"role_id":"` + rid.Data["role_id"].(string) + `","secret_id":"` + sid.Data["secret_id"].(string) + `"}`},
		{"/v1/auth/userpass/login/climber", `{"password":"pw"}`},
	} {
		r := s.raw(http.MethodPost, tc.path, "", strings.NewReader(tc.body))
		if r.code != http.StatusBadRequest || !strings.Contains(string(r.body), "auth methods cannot create root tokens") || strings.Contains(string(r.body), "client_token") {
			t.Fatalf("POST %s with a root policy behind it: %d %.300s; want 400 and no token", tc.path, r.code, r.body)
		}
	}
}

func TestHTTPAttackNewTokenRoleNeedsCreate(t *testing.T) {
	s := startDevServer(t, serverOpts{NoNATS: true})
	upd := s.tokenWithPolicy("roles-update", `path "auth/token/roles/*" { capabilities = ["update", "read"] }`)
	crt := s.tokenWithPolicy("roles-create", `path "auth/token/roles/*" { capabilities = ["create", "read"] }`)
	const body = `{"allowed_policies":"admin"}`
	if r := s.raw(http.MethodPost, "/v1/auth/token/roles/new-one", upd, strings.NewReader(body)); r.code != http.StatusForbidden {
		t.Fatalf("a new token role with update only: %d %.200s; want 403", r.code, r.body)
	}
	if r := s.raw(http.MethodPost, "/v1/auth/token/roles/new-one", crt, strings.NewReader(body)); r.code != http.StatusNoContent {
		t.Fatalf("a new token role with create: %d %.200s; want 204", r.code, r.body)
	}
	if r := s.raw(http.MethodPost, "/v1/auth/token/roles/new-one", upd, strings.NewReader(body)); r.code != http.StatusNoContent {
		t.Fatalf("an existing token role with update: %d %.200s; want 204", r.code, r.body)
	}
	if r := s.raw(http.MethodPost, "/v1/auth/token/roles/new-one", crt, strings.NewReader(body)); r.code != http.StatusForbidden {
		t.Fatalf("an existing token role with create only: %d %.200s; want 403", r.code, r.body)
	}
}
