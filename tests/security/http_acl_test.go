package security

// Finding 3 of issue 11: a trailing slash (or "//", "./", a capital letter in
// a policy name) made the ACL, the sudo check and the system backend read
// different paths, so a caller denied a path could reach it anyway. And the
// ACL half of finding 11: Vault's rule that a list matches the rules of its
// path without the trailing slash.

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// A policy that allows sys/replication/* and sys/policies/acl/* but denies
// the paths the attacks aim at, and grants no sudo.
const httpAttackReplicationPolicy = `
path "sys/replication/*" { capabilities = ["create", "update", "read"] }
path "sys/replication/performance/primary/secondary-token" { capabilities = ["deny"] }
path "sys/policies/acl/*" { capabilities = ["create", "update", "read"] }
path "sys/policies/acl/admin" { capabilities = ["deny"] }
`

// POST .../primary/secondary-token/ returned an activation token to a
// caller whose policy denies .../primary/secondary-token.
func TestHTTPAttackTrailingSlashSecondaryToken(t *testing.T) {
	s := startDevServer(t, serverOpts{})
	enablePrimary(t, s)
	tok := s.tokenWithPolicy("replicator", httpAttackReplicationPolicy)

	// vault/api drops a trailing slash; curl and raw HTTP keep it.
	for _, p := range []string{
		"/v1/sys/replication/performance/primary/secondary-token/",
		"/v1/sys/replication/performance/primary/secondary-token",
		"/v1/sys/replication/performance/primary/secondary-token//",
		"/v1/sys/replication/performance//primary/./secondary-token",
		"/v1//sys/replication/performance/primary/secondary-token/.",
	} {
		r := s.raw(http.MethodPost, p, tok, strings.NewReader(`{"id":"dc-evil"}`))
		if r.code != http.StatusForbidden {
			t.Errorf("POST %s: %d %s; want 403", p, r.code, r.body)
		}
	}
	// The root token is refused no spelling: the normalization does not
	// break the endpoint.
	if r := s.raw(http.MethodPost, "/v1/sys/replication/performance/primary/secondary-token/", s.rootID, strings.NewReader(`{"id":"dc2"}`)); r.code != http.StatusOK {
		t.Fatalf("root's secondary-token/: %d %s", r.code, r.body)
	}
}

// sys/replication/reindex/ ran without sudo.
func TestHTTPAttackTrailingSlashSkipsSudo(t *testing.T) {
	s := startDevServer(t, serverOpts{NoNATS: true})
	tok := s.tokenWithPolicy("replicator", httpAttackReplicationPolicy)
	for _, p := range []string{"/v1/sys/replication/reindex/", "/v1/sys/replication//reindex", "/v1/sys/replication/./reindex", "/v1/sys/replication/reindex"} {
		r := s.raw(http.MethodPost, p, tok, nil)
		if r.code != http.StatusForbidden {
			t.Errorf("POST %s without sudo: %d %s; want 403", p, r.code, r.body)
		}
	}
}

// PUT sys/policies/acl/admin/ overwrote a policy the caller was denied.
func TestHTTPAttackTrailingSlashOverwritesPolicy(t *testing.T) {
	s := startDevServer(t, serverOpts{NoNATS: true})
	root := s.rootClient()
	const adminPolicy = `path "secret/*" { capabilities = ["read"] }`
	if err := root.Sys().PutPolicy("admin", adminPolicy); err != nil {
		t.Fatal(err)
	}
	tok := s.tokenWithPolicy("editor", httpAttackReplicationPolicy)
	const evil = `path "*" { capabilities = ["create", "read", "update", "delete", "list", "sudo"] }`

	for _, p := range []string{"/v1/sys/policies/acl/admin/", "/v1/sys//policies/acl/admin", "/v1/sys/policies/acl/./admin", "/v1/sys/policies/acl/ADMIN", "/v1/sys/policies/acl/Admin/"} {
		r := s.raw(http.MethodPut, p, tok, strings.NewReader(httpAttackJSON(map[string]string{"policy": evil})))
		if r.code != http.StatusForbidden {
			t.Errorf("PUT %s: %d %s; want 403", p, r.code, r.body)
		}
	}
	if got, err := root.Sys().GetPolicy("admin"); err != nil || got != adminPolicy {
		t.Fatalf("policy admin is now %q (%v): overwritten by a caller denied it", got, err)
	}
	// What the caller may write still works, slash or not.
	if r := s.raw(http.MethodPut, "/v1/sys/policies/acl/team/", tok, strings.NewReader(httpAttackJSON(map[string]string{"policy": adminPolicy}))); r.code != http.StatusNoContent && r.code != http.StatusOK {
		t.Fatalf("PUT an allowed policy with a trailing slash: %d %s", r.code, r.body)
	}
}

// Finding 11 (ACL half): a policy on the exact path secret/metadata/foo with
// list grants LIST secret/metadata/foo/, as in Vault.
func TestHTTPVaultListRuleForExactPaths(t *testing.T) {
	s := startDevServer(t, serverOpts{NoNATS: true})
	root := s.rootClient()
	for _, k := range []string{"foo/a", "foo/b", "bar/c"} {
		if _, err := root.Logical().Write("secret/data/"+k, map[string]any{"data": map[string]any{"v": "1"}}); err != nil {
			t.Fatal(err)
		}
	}
	tok := s.tokenWithPolicy("lister", `path "secret/metadata/foo" { capabilities = ["list"] }`)
	c := s.client(tok)
	sec, err := c.Logical().List("secret/metadata/foo")
	if err != nil || sec == nil {
		t.Fatalf("LIST secret/metadata/foo/ with list on secret/metadata/foo: %v", err)
	}
	keys, _ := sec.Data["keys"].([]any)
	if !slices.Equal(keys, []any{"a", "b"}) {
		t.Fatalf("keys %v, want [a b]", keys)
	}
	if r := s.raw("LIST", "/v1/secret/metadata/foo/", tok, nil); r.code != http.StatusOK {
		t.Fatalf("raw LIST secret/metadata/foo/: %d %s", r.code, r.body)
	}
	// Only lists: a read of the folder, and other folders, stay denied.
	if _, err := c.Logical().Read("secret/metadata/foo"); err == nil || !strings.Contains(err.Error(), "Code: 403") {
		t.Errorf("read secret/metadata/foo: %v; want 403", err)
	}
	if _, err := c.Logical().List("secret/metadata/bar"); err == nil || !strings.Contains(err.Error(), "Code: 403") {
		t.Errorf("LIST secret/metadata/bar/: %v; want 403", err)
	}
}

// httpAttackJSON is v as JSON text.
func httpAttackJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// userpass reads user names case-insensitively: a policy that denies
// users/bob must also deny users/BOB (the same gap as the trailing slash,
// behind the backend's own lowercasing).
func TestHTTPAttackUserpassNameCase(t *testing.T) {
	s := startDevServer(t, serverOpts{NoNATS: true})
	root := s.rootClient()
	if _, err := root.Logical().Write("sys/auth/userpass", map[string]any{"type": "userpass"}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("auth/userpass/users/bob", map[string]any{"password": "bob-pw"}); err != nil {
		t.Fatal(err)
	}
	tok := s.tokenWithPolicy("users-but-bob", `
path "auth/userpass/users/*" { capabilities = ["create", "update", "read"] }
path "auth/userpass/users/bob" { capabilities = ["deny"] }
path "auth/userpass/users/bob/*" { capabilities = ["deny"] }
`)
	for _, p := range []string{"/v1/auth/userpass/users/BOB/password", "/v1/auth/userpass/users/Bob"} {
		r := s.raw(http.MethodPut, p, tok, strings.NewReader(`{"password":"stolen"}`))
		if r.code != http.StatusForbidden {
			t.Errorf("PUT %s: %d %s; want 403", p, r.code, r.body)
		}
	}
	// bob's password is unchanged: he still logs in with it.
	if _, err := root.Logical().Write("auth/userpass/login/bob", map[string]any{"password": "bob-pw"}); err != nil {
		t.Fatalf("bob's login after the attack: %v", err)
	}
}
