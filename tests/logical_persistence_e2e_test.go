package tests

// The acceptance suite of the Vault-compatible logical layer, what survives a
// restart: driven through github.com/hashicorp/vault/api against real coffer
// processes. Expectations are Vault's (checked against Vault 1.21's source)
// unless a comment says Coffer decided otherwise.

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/hashicorp/vault/api"
)

// TestLogicalPersistence: what the logical layer stores survives a restart of
// a bolt-backed server (static seal, so it unseals itself): mounts with their
// tuning, kv data of both versions, policies, tokens, auth methods with their
// users, audit devices, and a pending wrapped response.
func TestLogicalPersistence(t *testing.T) {
	t.Parallel()
	n, p, rootTok := staticServer(t)
	ctx := context.Background()
	root := client(t, n.addr, rootTok)
	sys := root.Sys()

	if err := sys.Mount("kv1", &api.MountInput{Type: "kv", Local: true, Description: "v1 local"}); err != nil {
		t.Fatalf("mount kv1: %v", err)
	}
	if err := sys.TuneMountAllowNil("kv1", api.TuneMountConfigInput{DefaultLeaseTTL: ptr("1h")}); err != nil {
		t.Fatalf("tune kv1: %v", err)
	}
	if err := root.KVv1("kv1").Put(ctx, "a", map[string]any{"v": "one"}); err != nil {
		t.Fatalf("kv1 put: %v", err)
	}
	for i := 1; i <= 2; i++ {
		if _, err := root.KVv2("secret").Put(ctx, "b", map[string]any{"v": strconv.Itoa(i)}); err != nil {
			t.Fatalf("kv2 put: %v", err)
		}
	}
	if err := root.KVv2("secret").PutMetadata(ctx, "b", api.KVMetadataPutInput{MaxVersions: 5, CustomMetadata: map[string]any{"o": "p"}}); err != nil {
		t.Fatalf("put metadata: %v", err)
	}
	pol := `path "secret/data/b" { capabilities = ["read"] }`
	if err := sys.PutPolicy("readb", pol); err != nil {
		t.Fatalf("put policy: %v", err)
	}
	tok, err := root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"readb"}, TTL: "1h"})
	if err != nil {
		t.Fatalf("token create: %v", err)
	}
	if err := sys.EnableAuthWithOptions("userpass", &api.EnableAuthOptions{Type: "userpass"}); err != nil {
		t.Fatalf("enable userpass: %v", err)
	}
	if _, err := root.Logical().Write("auth/userpass/users/carol", map[string]any{"password": "pw-carol", "token_policies": []string{"readb"}}); err != nil {
		t.Fatalf("create user: %v", err)
	}
	logPath := filepath.Join(t.TempDir(), "audit.log")
	if err := sys.EnableAuditWithOptions("file", &api.EnableAuditOptions{Type: "file", Options: map[string]string{"file_path": logPath}}); err != nil {
		t.Fatalf("enable audit: %v", err)
	}
	wc := withToken(t, root, rootTok)
	wc.SetWrappingLookupFunc(func(string, string) string { return "10m" })
	wrapped, err := wc.Logical().Read("secret/data/b")
	if err != nil || wrapped == nil || wrapped.WrapInfo == nil {
		t.Fatalf("wrapped read: %+v, %v", wrapped, err)
	}

	p = n.restart(p)
	waitHealthCode(t, n.addr, 200)

	mounts, err := sys.ListMounts()
	if err != nil || mounts["kv1/"] == nil || !mounts["kv1/"].Local || mounts["kv1/"].Config.DefaultLeaseTTL != 3600 ||
		mounts["secret/"] == nil || mounts["secret/"].Options["version"] != "2" {
		t.Fatalf("mounts after restart: %v, %v", mounts, err)
	}
	if s, err := root.KVv1("kv1").Get(ctx, "a"); err != nil || s.Data["v"] != "one" {
		t.Fatalf("kv1/a after restart: %+v, %v", s, err)
	}
	if s, err := root.KVv2("secret").Get(ctx, "b"); err != nil || s.Data["v"] != "2" || s.VersionMetadata.Version != 2 || s.CustomMetadata["o"] != "p" {
		t.Fatalf("secret/b after restart: %+v, %v", s, err)
	}
	if md, err := root.KVv2("secret").GetMetadata(ctx, "b"); err != nil || md.MaxVersions != 5 {
		t.Fatalf("secret/b metadata after restart: %+v, %v", md, err)
	}
	if got, err := sys.GetPolicy("readb"); err != nil || got != pol {
		t.Fatalf("policy after restart: %q, %v", got, err)
	}
	tc := withToken(t, root, tok.Auth.ClientToken)
	if _, err := tc.KVv2("secret").Get(ctx, "b"); err != nil {
		t.Fatalf("the token after restart: %v", err)
	}
	if l, err := tc.Auth().Token().LookupSelf(); err != nil || num(t, "ttl", l.Data["ttl"]) > 3600 || num(t, "ttl", l.Data["ttl"]) < 3000 {
		t.Fatalf("token lookup-self after restart: %+v, %v; want ttl under an hour", l, err)
	}
	_, err = tc.Logical().Read("secret/data/other")
	refused(t, "the token outside its policy after restart", err, 403, "permission denied")
	login, err := withToken(t, root, "").Logical().Write("auth/userpass/login/carol", map[string]any{"password": "pw-carol"})
	if err != nil || login == nil || login.Auth == nil || !slices.Contains(login.Auth.Policies, "readb") {
		t.Fatalf("login after restart: %+v, %v", login, err)
	}
	if devs, err := sys.ListAudit(); err != nil || devs["file/"] == nil {
		t.Fatalf("audit devices after restart: %v, %v", devs, err)
	}
	before, err := os.Stat(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := root.Auth().Token().LookupSelf(); err != nil {
		t.Fatal(err)
	}
	if after, err := os.Stat(logPath); err != nil || after.Size() <= before.Size() {
		t.Fatalf("the audit device does not log after restart: %d -> %d bytes", before.Size(), after.Size())
	}
	un, err := root.Logical().Unwrap(wrapped.WrapInfo.Token)
	if err != nil || un == nil {
		t.Fatalf("unwrap after restart: %+v, %v", un, err)
	}
	if v, _ := mapAt(un.Data, "data", "v"); v != "2" {
		t.Fatalf("unwrapped after restart: %v", un.Data)
	}
	if code := p.stop(); code != 0 {
		t.Fatalf("exit %d on SIGTERM", code)
	}
}
