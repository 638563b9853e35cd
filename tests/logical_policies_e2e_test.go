package tests

// The acceptance suite of the Vault-compatible logical layer, policies (the
// ACL) and userpass, the auth method that hands them out: driven through
// github.com/hashicorp/vault/api against real coffer processes. Expectations
// are Vault's (checked against Vault 1.21's source) unless a comment says
// Coffer decided otherwise.

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"
)

func TestLogicalPolicies(t *testing.T) {
	t.Parallel()
	_, root := devServer(t)
	ctx := context.Background()
	sys := root.Sys()

	readerHCL := `# reads under a/ and b/
path "secret/data/a/*" {
  capabilities = ["read"]
}
path "secret/data/b/*" {
  capabilities = ["read", "list"]
}
`
	denierJSON := `{"path": {"secret/data/b/*": {"capabilities": ["deny"]}}}`
	if err := sys.PutPolicy("reader", readerHCL); err != nil {
		t.Fatalf("PutPolicy reader (HCL): %v", err)
	}
	if err := sys.PutPolicy("denier", denierJSON); err != nil {
		t.Fatalf("PutPolicy denier (JSON): %v", err)
	}
	if got, err := sys.GetPolicy("reader"); err != nil || got != readerHCL {
		t.Fatalf("GetPolicy reader: %q, %v; want the text as written", got, err)
	}
	if got, err := sys.GetPolicy("denier"); err != nil || got != denierJSON {
		t.Fatalf("GetPolicy denier: %q, %v; want the JSON as written", got, err)
	}
	names, err := sys.ListPolicies()
	if err != nil {
		t.Fatalf("ListPolicies: %v", err)
	}
	for _, want := range []string{"default", "root", "reader", "denier"} {
		if !slices.Contains(names, want) {
			t.Fatalf("ListPolicies %q lacks %q", names, want)
		}
	}
	if got, err := sys.GetPolicy("no-such-policy"); err != nil || got != "" {
		t.Fatalf("GetPolicy of a missing policy: %q, %v; want empty", got, err)
	}

	kv := root.KVv2("secret")
	for _, p := range []string{"a/x", "b/x", "c/x"} {
		if _, err := kv.Put(ctx, p, map[string]any{"v": p}); err != nil {
			t.Fatalf("put %s: %v", p, err)
		}
	}
	tok, err := root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"reader"}})
	if err != nil {
		t.Fatalf("create reader token: %v", err)
	}
	rc := withToken(t, root, tok.Auth.ClientToken)
	if s, err := rc.KVv2("secret").Get(ctx, "a/x"); err != nil || s.Data["v"] != "a/x" {
		t.Fatalf("reader reads a/x: %+v, %v", s, err)
	}
	if s, err := rc.KVv2("secret").Get(ctx, "b/x"); err != nil || s.Data["v"] != "b/x" {
		t.Fatalf("reader reads b/x: %+v, %v", s, err)
	}
	_, err = rc.Logical().Read("secret/data/c/x")
	refused(t, "reader reads outside its paths", err, 403, "permission denied")
	_, err = rc.KVv2("secret").Put(ctx, "a/x", map[string]any{"v": "overwritten"})
	refused(t, "reader writes", err, 403, "permission denied")
	_, err = rc.Logical().Write("secret/data/a/new", map[string]any{"data": map[string]any{"v": "new"}})
	refused(t, "reader creates", err, 403, "permission denied")
	if s, err := kv.Get(ctx, "a/x"); err != nil || s.Data["v"] != "a/x" || s.VersionMetadata.Version != 1 {
		t.Fatalf("a/x after the refused write: %+v, %v; want unchanged", s, err)
	}
	if _, err := kv.Get(ctx, "a/new"); !errors.Is(err, api.ErrSecretNotFound) {
		t.Fatalf("a/new after the refused create: %v; want not found", err)
	}

	// deny in one policy overrides read in another on the same path.
	both, err := root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"reader", "denier"}})
	if err != nil {
		t.Fatalf("create reader+denier token: %v", err)
	}
	bc := withToken(t, root, both.Auth.ClientToken)
	if _, err := bc.Logical().Read("secret/data/a/x"); err != nil {
		t.Fatalf("reader+denier reads a/x: %v", err)
	}
	_, err = bc.Logical().Read("secret/data/b/x")
	refused(t, "reader+denier reads the denied b/x", err, 403, "permission denied")

	// sudo: enabling an audit device (sys/audit/*) needs it.
	if err := sys.PutPolicy("auditor", `path "sys/audit/*" { capabilities = ["create", "read", "update", "delete", "list"] }`); err != nil {
		t.Fatalf("put auditor: %v", err)
	}
	if err := sys.PutPolicy("auditor-sudo", `path "sys/audit/*" { capabilities = ["create", "read", "update", "delete", "list", "sudo"] }
path "sys/audit" { capabilities = ["read", "sudo"] }`); err != nil {
		t.Fatalf("put auditor-sudo: %v", err)
	}
	logPath := filepath.Join(t.TempDir(), "audit.log")
	opts := &api.EnableAuditOptions{Type: "file", Options: map[string]string{"file_path": logPath}}
	nos, err := root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"auditor"}})
	if err != nil {
		t.Fatalf("create auditor token: %v", err)
	}
	err = withToken(t, root, nos.Auth.ClientToken).Sys().EnableAuditWithOptions("file", opts)
	refused(t, "enable audit without sudo", err, 403, "permission denied")
	if l, err := sys.ListAudit(); err != nil || len(l) != 0 {
		t.Fatalf("ListAudit after the refused enable: %v, %v; want none", l, err)
	}
	su, err := root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"auditor-sudo"}})
	if err != nil {
		t.Fatalf("create auditor-sudo token: %v", err)
	}
	suc := withToken(t, root, su.Auth.ClientToken)
	if err := suc.Sys().EnableAuditWithOptions("file", opts); err != nil {
		t.Fatalf("enable audit with sudo: %v", err)
	}
	if l, err := suc.Sys().ListAudit(); err != nil || l["file/"] == nil {
		t.Fatalf("ListAudit with sudo: %v, %v", l, err)
	}
	if err := suc.Sys().DisableAudit("file"); err != nil {
		t.Fatalf("disable audit with sudo: %v", err)
	}

	// A policy that does not parse: 400 naming the line; nothing stored.
	badCap := "path \"secret/data/ok/*\" {\n  capabilities = [\"read\"]\n}\npath \"secret/data/bad/*\" {\n  capabilities = [\"read\", \"fly\"]\n}\n"
	err = sys.PutPolicy("bad", badCap)
	refused(t, "a policy with an unknown capability", err, 400, "line 5")
	badSyntax := "path \"secret/*\" {\n  capabilities = [\"read\"\n}\n"
	err = sys.PutPolicy("bad", badSyntax)
	refused(t, "a policy that is not HCL", err, 400, "line")
	if got, err := sys.GetPolicy("bad"); err != nil || got != "" {
		t.Fatalf("GetPolicy bad after the refused writes: %q, %v; want nothing stored", got, err)
	}

	// Built-in policies.
	refused(t, "delete the default policy", sys.DeletePolicy("default"), 400, "default")
	refused(t, "write the root policy", sys.PutPolicy("root", `path "*" { capabilities = ["read"] }`), 400, "root")
	refused(t, "delete the root policy", sys.DeletePolicy("root"), 400, "root")
	if got, err := sys.GetPolicy("default"); err != nil || !strings.Contains(got, "auth/token/lookup-self") {
		t.Fatalf("default policy after the refused delete: %q, %v", got, err)
	}

	// Deleting a policy takes its grants away from existing tokens.
	if err := sys.DeletePolicy("reader"); err != nil {
		t.Fatalf("DeletePolicy reader: %v", err)
	}
	if names, err := sys.ListPolicies(); err != nil || slices.Contains(names, "reader") {
		t.Fatalf("ListPolicies after delete: %q, %v", names, err)
	}
	_, err = rc.Logical().Read("secret/data/a/x")
	refused(t, "a token whose policy was deleted", err, 403, "permission denied")
}

func TestLogicalUserpass(t *testing.T) {
	t.Parallel()
	_, root := devServer(t)
	ctx := context.Background()
	sys := root.Sys()
	if err := sys.PutPolicy("reader", `path "secret/data/a/*" { capabilities = ["read"] }`); err != nil {
		t.Fatalf("put policy: %v", err)
	}
	if _, err := root.KVv2("secret").Put(ctx, "a/x", map[string]any{"v": "1"}); err != nil {
		t.Fatalf("put a/x: %v", err)
	}
	if err := sys.EnableAuthWithOptions("userpass", &api.EnableAuthOptions{Type: "userpass"}); err != nil {
		t.Fatalf("enable userpass: %v", err)
	}
	auths, err := sys.ListAuth()
	if err != nil || auths["token/"] == nil || auths["token/"].Type != "token" || auths["userpass/"] == nil || auths["userpass/"].Type != "userpass" {
		t.Fatalf("ListAuth: %v, %v; want token/ and userpass/", auths, err)
	}
	refused(t, "enable userpass twice", sys.EnableAuthWithOptions("userpass", &api.EnableAuthOptions{Type: "userpass"}), 400, "already in use")
	if _, err := root.Logical().Write("auth/userpass/users/bob", map[string]any{"password": "hunter2", "token_policies": "reader"}); err != nil {
		t.Fatalf("create user bob: %v", err)
	}
	u, err := root.Logical().Read("auth/userpass/users/bob")
	if err != nil || u == nil || !slices.Equal(strs(u.Data["token_policies"]), []string{"reader"}) || u.Data["password"] != nil {
		t.Fatalf("read user bob: %+v, %v; want token_policies [reader] and no password", u, err)
	}

	anon := withToken(t, root, "")
	login, err := anon.Logical().Write("auth/userpass/login/bob", map[string]any{"password": "hunter2"})
	if err != nil || login == nil || login.Auth == nil || login.Auth.ClientToken == "" {
		t.Fatalf("login bob: %+v, %v", login, err)
	}
	if !slices.Equal(login.Auth.Policies, []string{"default", "reader"}) || login.Auth.Metadata["username"] != "bob" {
		t.Fatalf("login auth: %+v; want policies [default reader], metadata username=bob", login.Auth)
	}
	bob := withToken(t, root, login.Auth.ClientToken)
	if s, err := bob.KVv2("secret").Get(ctx, "a/x"); err != nil || s.Data["v"] != "1" {
		t.Fatalf("bob reads a/x: %+v, %v", s, err)
	}
	_, err = bob.KVv2("secret").Put(ctx, "a/x", map[string]any{"v": "2"})
	refused(t, "bob writes", err, 403, "permission denied")
	self, err := bob.Auth().Token().LookupSelf()
	if err != nil || self.Data["path"] != "auth/userpass/login/bob" || self.Data["display_name"] != "userpass-bob" {
		t.Fatalf("bob's lookup-self: %+v, %v; want path auth/userpass/login/bob and display name userpass-bob", self, err)
	}

	_, err = anon.Logical().Write("auth/userpass/login/bob", map[string]any{"password": "wrong"})
	refused(t, "login with a wrong password", err, 400, "invalid username or password")
	_, err = anon.Logical().Write("auth/userpass/login/nobody", map[string]any{"password": "hunter2"})
	refused(t, "login of an unknown user", err, 400, "invalid username or password")
	_, err = anon.Logical().Read("auth/userpass/users/bob")
	refused(t, "read a user without a token", err, 403, "")

	if err := sys.DisableAuth("userpass"); err != nil {
		t.Fatalf("disable userpass: %v", err)
	}
	if auths, err := sys.ListAuth(); err != nil || auths["userpass/"] != nil || auths["token/"] == nil {
		t.Fatalf("ListAuth after disable: %v, %v", auths, err)
	}
	_, err = anon.Logical().Write("auth/userpass/login/bob", map[string]any{"password": "hunter2"})
	refused(t, "login after disable", err, 404, "")

	// Vault revokes every token an auth method issued when it is disabled.
	t.Run("tokens of a disabled auth method are revoked", func(t *testing.T) {
		_, err := bob.Auth().Token().LookupSelf()
		refused(t, "bob's token after userpass was disabled", err, 403, "")
	})
}
