package tests

// The acceptance suite of the Vault-compatible logical layer, requests it must
// refuse: driven through github.com/hashicorp/vault/api against real coffer
// processes. Expectations are Vault's (checked against Vault 1.21's source)
// unless a comment says Coffer decided otherwise.

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/hashicorp/vault/api"
)

func TestLogicalBadInput(t *testing.T) {
	t.Parallel()
	_, root := devServer(t)
	ctx := context.Background()
	kv := root.KVv2("secret")

	// Unknown mount path.
	rawJSON(t, root, http.MethodGet, "nowhere/at/all", nil).expectError(t, 404, "nowhere/at/all")
	rawJSON(t, root, http.MethodPut, "nowhere/at/all", `{"a":"b"}`).expectError(t, 404, "nowhere/at/all")

	// A field of the wrong type: 400 naming it; nothing written.
	_, err := root.Logical().Write("secret/metadata/bi", map[string]any{"max_versions": "abc"})
	refused(t, "metadata max_versions=abc", err, 400, "max_versions")
	if _, err := kv.GetMetadata(ctx, "bi"); !errors.Is(err, api.ErrSecretNotFound) {
		t.Fatalf("metadata after the refused write: %v; want not found", err)
	}
	_, err = root.Logical().Write("sys/mounts/badmount", map[string]any{"type": "kv", "local": "notabool"})
	refused(t, "mount with local=notabool", err, 400, "local")
	if m, err := root.Sys().ListMounts(); err != nil || m["badmount/"] != nil {
		t.Fatalf("ListMounts after the refused mount: %v, %v", m["badmount/"], err)
	}
	_, err = root.Logical().Write("auth/token/create", map[string]any{"num_uses": "many", "policies": []string{"default"}})
	refused(t, "token create num_uses=many", err, 400, "num_uses")
	_, err = root.Logical().Write("auth/token/create", map[string]any{"ttl": "forever"})
	refused(t, "token create ttl=forever", err, 400, "ttl")
	_, err = root.Logical().Write("secret/data/bi", map[string]any{"data": "not-an-object"})
	refused(t, "kv v2 data that is not an object", err, 400, "data")
	_, err = root.Logical().Write("secret/data/bi", map[string]any{"data": map[string]any{"k": "v"}, "options": map[string]any{"cas": "x"}})
	refused(t, "kv v2 cas=x", err, 400, "cas")
	if _, err := kv.Get(ctx, "bi"); !errors.Is(err, api.ErrSecretNotFound) {
		t.Fatalf("secret/bi after the refused writes: %v; want not found", err)
	}

	// A policy that does not parse names the line; nothing stored.
	err = root.Sys().PutPolicy("broken", "path \"a/*\" {\n  capabilities = [\"read\"]\n}\n\npath \"b/*\" {\n  capabilities = [\"read\"]\n  bogus_key = true\n}\n")
	refused(t, "a policy with an unknown key", err, 400, "line 7")
	if p, err := root.Sys().GetPolicy("broken"); err != nil || p != "" {
		t.Fatalf("policy broken after the refused write: %q, %v", p, err)
	}

	// Malformed JSON on a logical path: 400, nothing written.
	rawJSON(t, root, http.MethodPut, "secret/data/mal", `{"data": {"k": `).expectError(t, 400, "json")
	rawJSON(t, root, http.MethodPut, "secret/data/mal", `{"data": {"k": "v"}} trailing`).expectError(t, 400, "json")
	rawJSON(t, root, http.MethodPut, "secret/data/mal", `["not", "an", "object"]`).expectError(t, 400, "")
	if _, err := kv.Get(ctx, "mal"); !errors.Is(err, api.ErrSecretNotFound) {
		t.Fatalf("secret/mal after malformed bodies: %v; want not found", err)
	}

	// A token with no policies at all (Vault allows it: policies [default]
	// with no_default_policy=true leaves none) is denied everything.
	np, err := root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"default"}, NoDefaultPolicy: true})
	if err != nil {
		t.Fatalf("create a token without policies: %v", err)
	}
	if len(np.Auth.Policies) != 0 {
		t.Fatalf("policies of the token: %q; want none", np.Auth.Policies)
	}
	npc := withToken(t, root, np.Auth.ClientToken)
	_, err = npc.Logical().Read("secret/data/bi")
	refused(t, "a token without policies reads", err, 403, "permission denied")
	_, err = npc.KVv2("secret").Put(ctx, "np", map[string]any{"k": "v"})
	refused(t, "a token without policies writes", err, 403, "permission denied")
	_, err = npc.Auth().Token().LookupSelf()
	refused(t, "a token without policies looks itself up", err, 403, "permission denied")
	if _, err := kv.Get(ctx, "np"); !errors.Is(err, api.ErrSecretNotFound) {
		t.Fatalf("secret/np after the refused write: %v; want not found", err)
	}

	// PATCH without the merge-patch content type: 415.
	if r := rawJSON(t, root, http.MethodPatch, "secret/data/mal", `{"data":{"k":"v"}}`); r.code != 415 {
		t.Fatalf("PATCH with application/json: %d, want 415 (%q)", r.code, r.body)
	}
	// LIST on data/: 405.
	if _, err := root.Logical().List("secret/data/"); statusOf(err) != 405 {
		t.Fatalf("LIST secret/data/: %v; want 405", err)
	}
}
