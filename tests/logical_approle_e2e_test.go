package tests

import (
	"net/http"
	"slices"
	"testing"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/hashicorp/vault/api"
)

// approleLogin logs in at auth/approle/login on c's cluster with a client
// that has no token.
func approleLogin(t *testing.T, c *api.Client, roleID, secretID string) (*api.Secret, error) {
	t.Helper()
	anon := withToken(t, c, "")
	return anon.Logical().Write("auth/approle/login", map[string]any{"role_id": roleID, "secret_id": secretID})
}

func approleSetup(t *testing.T, root *api.Client, data map[string]any) (roleID string) {
	t.Helper()
	if err := root.Sys().EnableAuthWithOptions("approle", &api.EnableAuthOptions{Type: "approle"}); err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().PutPolicy("app", `path "secret/*" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, root, "auth/approle/role/web", data)
	r, err := root.Logical().Read("auth/approle/role/web/role-id")
	if err != nil || r == nil {
		t.Fatalf("role-id: %v", err)
	}
	return str(r.Data["role_id"])
}

// AppRole through vault/api: roles, role ids, secret ids with their
// accessors, login, and the refusals: an exhausted, a destroyed, a wrong
// secret id.
func TestAppRole(t *testing.T) {
	t.Parallel()
	_, root := devServer(t)
	roleID := approleSetup(t, root, map[string]any{"token_policies": "app", "token_ttl": "10m", "secret_id_num_uses": 2})
	r, err := root.Logical().Read("auth/approle/role/web")
	if err != nil || r == nil || !slices.Equal(strs(r.Data["token_policies"]), []string{"app"}) || num(t, "secret_id_num_uses", r.Data["secret_id_num_uses"]) != 2 {
		t.Fatalf("read role: %v %v", r, err)
	}
	if l, err := root.Logical().List("auth/approle/role"); err != nil || l == nil || !slices.Equal(strs(l.Data["keys"]), []string{"web"}) {
		t.Fatalf("list roles: %v %v", l, err)
	}
	gen := mustWrite(t, root, "auth/approle/role/web/secret-id", map[string]any{"metadata": `{"team":"web"}`})
	sid, acc := str(gen["secret_id"]), str(gen["secret_id_accessor"])
	look := mustWrite(t, root, "auth/approle/role/web/secret-id/lookup", map[string]any{"secret_id": sid})
	if look["secret_id_accessor"] != acc || num(t, "secret_id_num_uses", look["secret_id_num_uses"]) != 2 {
		t.Fatalf("secret-id lookup: %v", look)
	}
	if l, err := root.Logical().List("auth/approle/role/web/secret-id"); err != nil || l == nil || !slices.Contains(strs(l.Data["keys"]), acc) {
		t.Fatalf("list secret id accessors: %v %v", l, err)
	}
	login, err := approleLogin(t, root, roleID, sid)
	if err != nil || login.Auth == nil || !slices.Contains(login.Auth.Policies, "app") || login.Auth.LeaseDuration != 600 || login.Auth.Metadata["role_name"] != "web" {
		t.Fatalf("login: %+v %v", login, err)
	}
	if _, err := withToken(t, root, login.Auth.ClientToken).Auth().Token().LookupSelf(); err != nil {
		t.Fatalf("the login's token: %v", err)
	}
	if _, err := approleLogin(t, root, roleID, sid); err != nil {
		t.Fatalf("second (last) use: %v", err)
	}
	_, err = approleLogin(t, root, roleID, sid)
	refused(t, "an exhausted secret id", err, http.StatusBadRequest, "")
	_, err = approleLogin(t, root, roleID, "not-a-secret-id")
	refused(t, "a wrong secret id", err, http.StatusBadRequest, "")
	_, err = approleLogin(t, root, "not-a-role-id", sid)
	refused(t, "a wrong role id", err, http.StatusBadRequest, "")

	gen = mustWrite(t, root, "auth/approle/role/web/secret-id", nil)
	if look := mustWrite(t, root, "auth/approle/role/web/secret-id-accessor/lookup", map[string]any{"secret_id_accessor": gen["secret_id_accessor"]}); look["secret_id_accessor"] != gen["secret_id_accessor"] {
		t.Fatalf("secret-id-accessor lookup: %v", look)
	}
	mustWrite(t, root, "auth/approle/role/web/secret-id/destroy", map[string]any{"secret_id": gen["secret_id"]})
	_, err = approleLogin(t, root, roleID, str(gen["secret_id"]))
	refused(t, "a secret id destroyed by value", err, http.StatusBadRequest, "invalid role or secret ID")
	gen = mustWrite(t, root, "auth/approle/role/web/secret-id", nil)
	mustWrite(t, root, "auth/approle/role/web/secret-id-accessor/destroy", map[string]any{"secret_id_accessor": gen["secret_id_accessor"]})
	_, err = approleLogin(t, root, roleID, str(gen["secret_id"]))
	refused(t, "a destroyed secret id", err, http.StatusBadRequest, "")
	mustWrite(t, root, "auth/approle/role/web/custom-secret-id", map[string]any{"secret_id": "chosen-secret"})
	if _, err := approleLogin(t, root, roleID, "chosen-secret"); err != nil {
		t.Fatalf("login with a custom secret id: %v", err)
	}
	mustWrite(t, root, "auth/approle/role/web/role-id", map[string]any{"role_id": "custom-role-id"})
	mustWrite(t, root, "auth/approle/role/web/custom-secret-id", map[string]any{"secret_id": "chosen-2"})
	if _, err := approleLogin(t, root, "custom-role-id", "chosen-2"); err != nil {
		t.Fatalf("login with a custom role id: %v", err)
	}
	if _, err := root.Logical().Delete("auth/approle/role/web"); err != nil {
		t.Fatal(err)
	}
	_, err = approleLogin(t, root, "custom-role-id", "chosen-2")
	refused(t, "login to a deleted role", err, http.StatusBadRequest, "")
}

// Roles replicate; secret ids are local to the cluster that issued them: a
// secondary generates and honours its own, with no round trip to the
// primary, and refuses the primary's (and the other way round).
func TestAppRoleSecretIDsAreLocal(t *testing.T) {
	t.Parallel()
	rp := fwdPairT(t)
	P, S := rp.p.root, rp.s.root
	roleID := approleSetup(t, P, map[string]any{"token_policies": "app"})
	var sSID string
	testutil.Eventually(t, waitTimeout, "the role on the secondary", func() error {
		s, err := S.Logical().Write("auth/approle/role/web/secret-id", nil)
		if err != nil {
			return err
		}
		sSID = str(s.Data["secret_id"])
		return nil
	})
	pSID := str(mustWrite(t, P, "auth/approle/role/web/secret-id", nil)["secret_id"])
	if _, err := approleLogin(t, S, roleID, sSID); err != nil {
		t.Fatalf("the secondary's secret id on the secondary: %v", err)
	}
	if _, err := approleLogin(t, P, roleID, pSID); err != nil {
		t.Fatalf("the primary's secret id on the primary: %v", err)
	}
	_, err := approleLogin(t, S, roleID, pSID)
	refused(t, "the primary's secret id on the secondary", err, http.StatusBadRequest, "")
	_, err = approleLogin(t, P, roleID, sSID)
	refused(t, "the secondary's secret id on the primary", err, http.StatusBadRequest, "")
	if l, err := P.Logical().List("auth/approle/role/web/secret-id"); err != nil || l == nil || len(strs(l.Data["keys"])) != 1 {
		t.Fatalf("the primary lists %v (%v), want its own secret id only", l, err)
	}
	// A role change asked of the secondary is the primary's to make.
	mustWrite(t, S, "auth/approle/role/web", map[string]any{"token_ttl": "5m"})
	if r, err := P.Logical().Read("auth/approle/role/web"); err != nil || num(t, "token_ttl", r.Data["token_ttl"]) != 300 {
		t.Fatalf("the role on the primary after a write to the secondary: %v %v", r, err)
	}
	// With the primary gone, the secondary still issues and honours its own.
	rp.p.p.kill()
	sid := str(mustWrite(t, S, "auth/approle/role/web/secret-id", nil)["secret_id"])
	if _, err := approleLogin(t, S, roleID, sid); err != nil {
		t.Fatalf("login on the secondary with the primary gone: %v", err)
	}
}
