package tests

// The acceptance suite of the Vault-compatible logical layer, response
// wrapping: driven through github.com/hashicorp/vault/api against real coffer
// processes. Expectations are Vault's (checked against Vault 1.21's source)
// unless a comment says Coffer decided otherwise.

import (
	"context"
	"net/http"
	"testing"

	"github.com/hashicorp/vault/api"
)

func TestLogicalWrapping(t *testing.T) {
	t.Parallel()
	_, root := devServer(t)
	ctx := context.Background()
	if _, err := root.KVv2("secret").Put(ctx, "w", map[string]any{"k": "wrapped-value"}); err != nil {
		t.Fatalf("put: %v", err)
	}

	// With the wrapping lookup function (what the vault CLI's -wrap-ttl does).
	wc := withToken(t, root, "root")
	wc.SetWrappingLookupFunc(func(operation, path string) string { return "5m" })
	sec, err := wc.Logical().Read("secret/data/w")
	if err != nil || sec == nil || sec.WrapInfo == nil {
		t.Fatalf("wrapped read: %+v, %v; want wrap_info", sec, err)
	}
	wi := sec.WrapInfo
	if sec.Data != nil || wi.Token == "" || wi.Accessor == "" || wi.TTL != 300 || wi.CreationPath != "secret/data/w" || wi.CreationTime.IsZero() {
		t.Fatalf("wrapped read: data %v, wrap_info %+v; want no data, a token, ttl 300, creation_path secret/data/w", sec.Data, wi)
	}

	// sys/wrapping/lookup needs no token of its own.
	lk, err := withToken(t, root, "").Logical().Write("sys/wrapping/lookup", map[string]any{"token": wi.Token})
	if err != nil || lk == nil || lk.Data["creation_path"] != "secret/data/w" || num(t, "creation_ttl", lk.Data["creation_ttl"]) != 300 {
		t.Fatalf("sys/wrapping/lookup: %+v, %v; want creation_path secret/data/w", lk, err)
	}

	// Unwrap once; a second unwrap fails.
	un, err := root.Logical().Unwrap(wi.Token)
	if err != nil || un == nil {
		t.Fatalf("unwrap: %v, %v", un, err)
	}
	if v, _ := mapAt(un.Data, "data", "k"); v != "wrapped-value" {
		t.Fatalf("unwrapped data %v; want data.k = wrapped-value", un.Data)
	}
	if _, err := root.Logical().Unwrap(wi.Token); err == nil {
		t.Fatal("a second unwrap of the same token succeeded")
	} else if c := statusOf(err); c != 400 && c != 403 {
		t.Fatalf("second unwrap: %v; want 400 (or 403)", err)
	}
	if _, err := withToken(t, root, "").Logical().Write("sys/wrapping/lookup", map[string]any{"token": wi.Token}); err == nil {
		t.Fatal("sys/wrapping/lookup of an unwrapped token succeeded")
	}

	// With the X-Vault-Wrap-TTL header, and unwrapping with the wrapping
	// token as the client token.
	hc := withToken(t, root, "root")
	hc.SetHeaders(http.Header{"X-Vault-Wrap-TTL": []string{"60"}})
	sec, err = hc.Logical().Read("secret/data/w")
	if err != nil || sec == nil || sec.WrapInfo == nil || sec.WrapInfo.TTL != 60 || sec.Data != nil {
		t.Fatalf("read with X-Vault-Wrap-TTL: %+v, %v; want wrap_info with ttl 60 and no data", sec, err)
	}
	self := withToken(t, root, sec.WrapInfo.Token)
	un, err = self.Logical().Unwrap("")
	if err != nil || un == nil {
		t.Fatalf("unwrap with the wrapping token as client token: %v, %v", un, err)
	}
	if v, _ := mapAt(un.Data, "data", "k"); v != "wrapped-value" {
		t.Fatalf("unwrapped data %v", un.Data)
	}
	if _, err := self.Logical().Unwrap(""); err == nil {
		t.Fatal("a second self-unwrap succeeded")
	}
	// The wrapping token grants nothing but unwrapping.
	sec, err = hc.Logical().Read("secret/data/w")
	if err != nil || sec.WrapInfo == nil {
		t.Fatalf("wrapped read: %+v, %v", sec, err)
	}
	_, err = withToken(t, root, sec.WrapInfo.Token).Logical().Read("secret/data/w")
	refused(t, "a wrapping token reads a secret", err, 403, "permission denied")

	// A wrapped token create: the unwrapped auth holds a working token.
	tc := withToken(t, root, "root")
	tc.SetWrappingLookupFunc(func(operation, path string) string { return "2m" })
	ws, err := tc.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"default"}})
	if err != nil || ws.WrapInfo == nil || ws.Auth != nil || ws.WrapInfo.WrappedAccessor == "" || ws.WrapInfo.CreationPath != "auth/token/create" {
		t.Fatalf("wrapped token create: %+v, %v; want wrap_info with wrapped_accessor and no auth", ws, err)
	}
	ut, err := root.Logical().Unwrap(ws.WrapInfo.Token)
	if err != nil || ut == nil || ut.Auth == nil || ut.Auth.Accessor != ws.WrapInfo.WrappedAccessor {
		t.Fatalf("unwrap of a token create: %+v, %v; want the auth with the wrapped accessor", ut, err)
	}
	if _, err := withToken(t, root, ut.Auth.ClientToken).Auth().Token().LookupSelf(); err != nil {
		t.Fatalf("the unwrapped token: %v", err)
	}
	// sys/wrapping/wrap wraps arbitrary data.
	ww, err := tc.Logical().Write("sys/wrapping/wrap", map[string]any{"hello": "world"})
	if err != nil || ww == nil || ww.WrapInfo == nil {
		t.Fatalf("sys/wrapping/wrap: %+v, %v", ww, err)
	}
	if un, err := root.Logical().Unwrap(ww.WrapInfo.Token); err != nil || un == nil || un.Data["hello"] != "world" {
		t.Fatalf("unwrap of sys/wrapping/wrap: %+v, %v", un, err)
	}
}
