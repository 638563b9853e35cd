package tests

import (
	"net/http"
	"slices"
	"testing"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/hashicorp/vault/api"
)

// Token roles through vault/api: create, read, list, delete; create/<role>
// with allowed and disallowed policies, orphan, renewable, period and
// path_suffix; refusals with Vault's codes and messages.
func TestTokenRoles(t *testing.T) {
	t.Parallel()
	_, root := devServer(t)
	for _, p := range []string{"app", "ops", "admin"} {
		if err := root.Sys().PutPolicy(p, `path "secret/*" { capabilities = ["read"] }`); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := root.Logical().Write("auth/token/roles/app", map[string]any{
		"allowed_policies": "app,ops", "disallowed_policies": "admin", "orphan": true,
		"renewable": false, "token_period": "1h", "path_suffix": "v1",
	}); err != nil {
		t.Fatalf("write role: %v", err)
	}
	r, err := root.Logical().Read("auth/token/roles/app")
	if err != nil || r == nil {
		t.Fatalf("read role: %v", err)
	}
	if r.Data["name"] != "app" || r.Data["orphan"] != true || r.Data["renewable"] != false ||
		r.Data["path_suffix"] != "v1" || num(t, "token_period", r.Data["token_period"]) != 3600 ||
		!slices.Equal(strs(r.Data["allowed_policies"]), []string{"app", "ops"}) ||
		!slices.Equal(strs(r.Data["disallowed_policies"]), []string{"admin"}) {
		t.Fatalf("role read: %v", r.Data)
	}
	l, err := root.Logical().List("auth/token/roles")
	if err != nil || l == nil || !slices.Equal(strs(l.Data["keys"]), []string{"app"}) {
		t.Fatalf("list roles: %v %v", l, err)
	}

	// A parent holding neither "app" nor "ops" hands them out through the role.
	if err := root.Sys().PutPolicy("role-user", `path "auth/token/create/app" { capabilities = ["update"] }`); err != nil {
		t.Fatal(err)
	}
	parent, err := root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"role-user"}})
	if err != nil {
		t.Fatal(err)
	}
	pc := withToken(t, root, parent.Auth.ClientToken)
	s, err := pc.Auth().Token().CreateWithRole(&api.TokenCreateRequest{Policies: []string{"app"}}, "app")
	if err != nil {
		t.Fatalf("create/app: %v", err)
	}
	if !slices.Equal(s.Auth.Policies, []string{"app", "default"}) || !s.Auth.Orphan || s.Auth.Renewable || s.Auth.LeaseDuration != 3600 {
		t.Fatalf("create/app auth: %+v", s.Auth)
	}
	look, err := root.Auth().Token().Lookup(s.Auth.ClientToken)
	if err != nil {
		t.Fatal(err)
	}
	if look.Data["path"] != "auth/token/create/app/v1" || look.Data["role"] != "app" || num(t, "period", look.Data["period"]) != 3600 {
		t.Fatalf("lookup of the role's token: %v", look.Data)
	}
	// No policies asked: the role's allowed ones.
	if s, err := pc.Auth().Token().CreateWithRole(&api.TokenCreateRequest{}, "app"); err != nil ||
		!slices.Equal(s.Auth.Policies, []string{"app", "default", "ops"}) {
		t.Fatalf("create/app without policies: %+v %v", s, err)
	}

	_, err = pc.Auth().Token().CreateWithRole(&api.TokenCreateRequest{Policies: []string{"admin"}}, "app")
	refused(t, "a policy outside allowed_policies", err, http.StatusBadRequest, "must be subset of the role's allowed policies")
	_, err = root.Auth().Token().CreateWithRole(&api.TokenCreateRequest{}, "nope")
	refused(t, "an unknown role", err, http.StatusBadRequest, "unknown role nope")
	_, err = root.Logical().Write("auth/token/roles/bad", map[string]any{"token_type": "weird"})
	refused(t, "an unknown token_type", err, http.StatusBadRequest, "invalid 'token_type'")

	// Without allowed_policies: the parent's, minus the disallowed ones.
	if _, err := root.Logical().Write("auth/token/roles/open", map[string]any{"disallowed_policies": "admin"}); err != nil {
		t.Fatal(err)
	}
	_, err = root.Auth().Token().CreateWithRole(&api.TokenCreateRequest{Policies: []string{"admin"}}, "open")
	refused(t, "a disallowed policy", err, http.StatusBadRequest, "contain disallowed policies")
	_, err = pc.Auth().Token().CreateWithRole(&api.TokenCreateRequest{Policies: []string{"ops"}}, "open")
	refused(t, "create/open without the ACL", err, http.StatusForbidden, "")

	if _, err := root.Logical().Delete("auth/token/roles/open"); err != nil {
		t.Fatal(err)
	}
	if r, err := root.Logical().Read("auth/token/roles/open"); err != nil || r != nil {
		t.Fatalf("read of a deleted role: %v %v", r, err)
	}
}

// On a performance secondary a role write goes to the primary (roles are
// replicated), and create/<role> makes a token local to the secondary.
func TestTokenRolesOnASecondary(t *testing.T) {
	t.Parallel()
	rp := fwdPairT(t)
	if err := rp.p.root.Sys().PutPolicy("app", `path "secret/*" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	if _, err := rp.s.root.Logical().Write("auth/token/roles/app", map[string]any{"allowed_policies": "app"}); err != nil {
		t.Fatalf("role write on the secondary: %v", err)
	}
	r, err := rp.p.root.Logical().Read("auth/token/roles/app")
	if err != nil || r == nil || !slices.Equal(strs(r.Data["allowed_policies"]), []string{"app"}) {
		t.Fatalf("the role on the primary: %v %v", r, err)
	}
	var tok string
	testutil.Eventually(t, waitTimeout, "create/app on the secondary", func() error {
		s, err := rp.s.root.Auth().Token().CreateWithRole(&api.TokenCreateRequest{}, "app")
		if err != nil {
			return err
		}
		tok = s.Auth.ClientToken
		return nil
	})
	if _, err := withToken(t, rp.s.root, tok).Auth().Token().LookupSelf(); err != nil {
		t.Fatalf("the role's token on the secondary: %v", err)
	}
	_, err = withToken(t, rp.p.root, tok).Auth().Token().LookupSelf()
	refused(t, "the secondary's token on the primary", err, http.StatusForbidden, "")
}
