package core

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/cofferhq/coffer/logical"
	"github.com/cofferhq/coffer/storage/inmem"
	"github.com/rs/zerolog"
)

// newTestCoreRoot is newTestCore that also returns the root token.
func newTestCoreRoot(t *testing.T) (*Core, string) {
	t.Helper()
	ctx := context.Background()
	c, err := New(ctx, Config{Physical: inmem.New(), StorageType: "inmem", Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	res, err := c.Initialize(ctx, InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Unseal(ctx, res.Keys[0]); err != nil {
		t.Fatal(err)
	}
	return c, res.RootToken
}

func do(t *testing.T, c *Core, token string, op logical.Operation, path string, data map[string]any) (*Response, error) {
	t.Helper()
	return c.HandleRequest(context.Background(), &Request{Operation: op, Path: path, Data: data, Token: token, Headers: http.Header{}})
}

// tokenWithPolicy writes policy text under name and returns a token holding it.
func tokenWithPolicy(t *testing.T, c *Core, root, name, text string) string {
	t.Helper()
	if _, err := do(t, c, root, logical.UpdateOperation, "sys/policies/acl/"+name, map[string]any{"policy": text}); err != nil {
		t.Fatalf("write policy %s: %v", name, err)
	}
	resp, err := do(t, c, root, logical.UpdateOperation, "auth/token/create", map[string]any{"policies": []any{name}})
	if err != nil {
		t.Fatalf("create token: %v", err)
	}
	return resp.Auth.ClientToken
}

// The ACL, the sudo check and the backend see one path: no spelling of a
// denied path reaches the backend (finding 3 of issue 11).
func TestEverySpellingOfADeniedPathIsDenied(t *testing.T) {
	c, root := newTestCoreRoot(t)
	tok := tokenWithPolicy(t, c, root, "editor", `
path "sys/policies/acl/*" { capabilities = ["create", "update", "read"] }
path "sys/policies/acl/admin" { capabilities = ["deny"] }
path "sys/replication/*" { capabilities = ["create", "update"] }
`)
	for _, p := range []string{
		"sys/policies/acl/admin", "sys/policies/acl/admin/", "sys//policies/acl/admin",
		"sys/policies/acl/./admin", "/sys/policies/acl/admin//", "sys/policies/acl/ADMIN", "sys/policies/acl/Admin/",
	} {
		_, err := do(t, c, tok, logical.UpdateOperation, p, map[string]any{"policy": `path "*" { capabilities = ["sudo", "update"] }`})
		if !errors.Is(err, ErrPermissionDenied) {
			t.Errorf("PUT %s: %v, want permission denied", p, err)
		}
	}
	if _, err := do(t, c, tok, logical.UpdateOperation, "sys/policies/acl/ Admin", map[string]any{"policy": `path "*" { capabilities = ["read"] }`}); StatusOf(err) != http.StatusBadRequest {
		t.Errorf("PUT a policy name with a leading space: %v, want 400", err)
	}
	if _, ok, err := c.policies.getRaw(context.Background(), "admin"); err != nil || ok {
		t.Fatalf("policy admin exists after the attempts (%v, %v)", ok, err)
	}
	// sudo: the slash does not drop it either.
	for _, p := range []string{"sys/replication/reindex", "sys/replication/reindex/", "sys/replication//reindex"} {
		if _, err := do(t, c, tok, logical.UpdateOperation, p, nil); !errors.Is(err, ErrPermissionDenied) {
			t.Errorf("PUT %s without sudo: %v, want permission denied", p, err)
		}
	}
	if _, err := do(t, c, tok, logical.UpdateOperation, "sys/policies/acl/other/", map[string]any{"policy": `path "x" { capabilities = ["read"] }`}); err != nil {
		t.Fatalf("PUT an allowed policy with a trailing slash: %v", err)
	}
	if _, ok, _ := c.policies.getRaw(context.Background(), "other"); !ok {
		t.Fatal("the allowed policy was not written")
	}
}

// Admit is called only once the request is allowed, with whether it was
// authenticated; a refused request's data is never asked for.
func TestAdmitIsCalledOnlyForAllowedRequests(t *testing.T) {
	c, root := newTestCoreRoot(t)
	var calls []bool
	admit := func(authenticated bool) (map[string]any, error) {
		calls = append(calls, authenticated)
		return map[string]any{"policy": `path "x" { capabilities = ["read"] }`}, nil
	}
	req := func(token, path string) error {
		_, err := c.HandleRequest(context.Background(), &Request{Operation: logical.UpdateOperation, Path: path, Token: token, Admit: admit, Headers: http.Header{}})
		return err
	}
	if err := req("", "sys/policies/acl/p"); !errors.Is(err, ErrPermissionDenied) {
		t.Fatalf("no token: %v", err)
	}
	if err := req("not-a-token", "sys/policies/acl/p"); !errors.Is(err, ErrPermissionDenied) {
		t.Fatalf("invalid token: %v", err)
	}
	if len(calls) != 0 {
		t.Fatalf("Admit called %d times for refused requests", len(calls))
	}
	if err := req(root, "sys/policies/acl/p"); err != nil {
		t.Fatalf("root: %v", err)
	}
	if err := req("", "sys/wrapping/lookup"); err == nil {
		t.Fatal("wrapping lookup of no token succeeded")
	}
	if len(calls) != 2 || !calls[0] || calls[1] {
		t.Fatalf("Admit calls %v, want [true false]", calls)
	}
	tooMany := errors.New("too many")
	_, err := c.HandleRequest(context.Background(), &Request{Operation: logical.UpdateOperation, Path: "sys/policies/acl/q", Token: root,
		Admit: func(bool) (map[string]any, error) { return nil, tooMany }, Headers: http.Header{}})
	if !errors.Is(err, tooMany) {
		t.Fatalf("Admit's error is not returned: %v", err)
	}
	if _, ok, _ := c.policies.getRaw(context.Background(), "q"); ok {
		t.Fatal("a request whose Admit failed was served")
	}
}

// Keys that would not survive a trip through JSON are refused before
// anything is written (finding 5 of issue 11).
func TestKeysThatAreNotUTF8AreRefused(t *testing.T) {
	c, root := newTestCoreRoot(t)
	if err := c.EnableMount(context.Background(), &MountEntry{Table: SecretTable, Path: "kv/", Type: "kv", Options: map[string]string{"version": "1"}}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"kv/\xff\xfe", "kv/a\x00b"} {
		_, err := do(t, c, root, logical.UpdateOperation, p, map[string]any{"v": "1"})
		if StatusOf(err) != http.StatusBadRequest {
			t.Errorf("PUT %q: %v, want 400", p, err)
		}
	}
	resp, err := do(t, c, root, logical.ListOperation, "kv/", nil)
	if !errors.Is(err, logical.ErrNotFound) {
		t.Fatalf("list kv/: %v %+v, want not found: the refused keys were written", err, resp)
	}
}
