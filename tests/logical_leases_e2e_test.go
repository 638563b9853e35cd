package tests

import (
	"net/http"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"
)

// sys/leases for the leases that exist: tokens'. Lookup, LIST under
// lookup/ (sudo), renew (refused for tokens, as in Vault), revoke,
// revoke-prefix and revoke-force (sudo), tidy.
func TestLeasesOfTokens(t *testing.T) {
	t.Parallel()
	_, root := devServer(t)
	mk := func() *api.Secret {
		s, err := root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"default"}, TTL: "1h"})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, b, c := mk(), mk(), mk()
	l, err := root.Logical().List("sys/leases/lookup/auth/token/create/")
	if err != nil || l == nil {
		t.Fatalf("LIST sys/leases/lookup/auth/token/create/: %v %v", l, err)
	}
	ids := strs(l.Data["keys"])
	if len(ids) != 3 {
		t.Fatalf("lease keys %v, want the 3 tokens'", ids)
	}
	if top, err := root.Logical().List("sys/leases/lookup/auth/token/"); err != nil || top == nil || !slices.Equal(strs(top.Data["keys"]), []string{"create/"}) {
		t.Fatalf("LIST one level up: %v %v", top, err)
	}
	_, err = withToken(t, root, a.Auth.ClientToken).Logical().List("sys/leases/lookup/auth/token/create/")
	refused(t, "listing leases without sudo", err, http.StatusForbidden, "")

	leaseID := path.Join("auth/token/create", ids[0])
	look, err := root.Sys().Lookup(leaseID)
	if err != nil {
		t.Fatalf("sys/leases/lookup: %v", err)
	}
	if look.Data["id"] != leaseID || look.Data["renewable"] != true || num(t, "ttl", look.Data["ttl"]) <= 3500 || look.Data["last_renewal"] != nil {
		t.Fatalf("lookup: %v", look.Data)
	}
	if _, err := root.Auth().Token().Renew(a.Auth.ClientToken, 600); err != nil {
		t.Fatal(err)
	}
	_, err = root.Sys().Renew(leaseID, 60)
	refused(t, "renewing a token's lease", err, http.StatusBadRequest, "tokens cannot be renewed through this endpoint")
	_, err = root.Sys().Lookup("auth/token/create/nope")
	refused(t, "an unknown lease", err, http.StatusBadRequest, "invalid lease")

	if err := root.Sys().Revoke(leaseID); err != nil {
		t.Fatalf("sys/leases/revoke: %v", err)
	}
	if err := root.Sys().Revoke(leaseID); err != nil {
		t.Fatalf("sys/leases/revoke again (idempotent): %v", err)
	}
	alive := 0
	for _, s := range []*api.Secret{a, b, c} {
		if _, err := root.Auth().Token().Lookup(s.Auth.ClientToken); err == nil {
			alive++
		}
	}
	if alive != 2 {
		t.Fatalf("%d tokens alive after revoking one lease, want 2", alive)
	}

	err = withToken(t, root, b.Auth.ClientToken).Sys().RevokePrefix("auth/token/create")
	refused(t, "revoke-prefix without sudo", err, http.StatusForbidden, "")
	if err := root.Sys().RevokePrefix("auth/token/create"); err != nil {
		t.Fatalf("revoke-prefix: %v", err)
	}
	for _, s := range []*api.Secret{a, b, c} {
		if _, err := root.Auth().Token().Lookup(s.Auth.ClientToken); err == nil {
			t.Fatalf("token %s alive after revoke-prefix", s.Auth.Accessor)
		}
	}
	if _, err := root.Auth().Token().Lookup("root"); err != nil {
		t.Fatalf("the root token (no lease) after revoke-prefix: %v", err)
	}
	d := mk()
	if err := root.Sys().RevokeForce("auth/token"); err != nil {
		t.Fatalf("revoke-force: %v", err)
	}
	if _, err := root.Auth().Token().Lookup(d.Auth.ClientToken); err == nil {
		t.Fatal("token alive after revoke-force")
	}
	resp, err := root.Logical().Write("sys/leases/tidy", nil)
	if err != nil || resp == nil || len(resp.Warnings) == 0 || !strings.Contains(resp.Warnings[0], "Tidy operation") {
		t.Fatalf("tidy: %v %v", resp, err)
	}
	if l, err := root.Logical().List("sys/leases/lookup/auth/token/create/"); err != nil || l != nil {
		t.Fatalf("LIST with no lease: %v %v, want nothing (404)", l, err)
	}
}
