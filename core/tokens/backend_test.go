package tokens

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/cofferhq/coffer/logical"
)

// asVaultClient encodes resp the way httpapi's envelope does and decodes it
// with the vault/api client, so the shapes are checked against real clients.
func asVaultClient(t *testing.T, resp *logical.Response) *api.Secret {
	t.Helper()
	env := map[string]any{"request_id": "r", "lease_id": "", "renewable": false, "lease_duration": 0,
		"data": resp.Data, "wrap_info": nil, "warnings": resp.Warnings, "auth": resp.Auth}
	b, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	s, err := api.ParseSecret(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("vault/api cannot parse the response: %v\n%s", err, b)
	}
	return s
}

func TestBackendCreateAndLookupShapes(t *testing.T) {
	h := newHarness(t, Options{})
	resp := h.must(h.root, logical.UpdateOperation, "create", map[string]any{
		"policies":     []any{"web", "Web"},
		"ttl":          "1h",
		"meta":         map[string]any{"app": "billing"},
		"display_name": "my app!",
		"num_uses":     json.Number("3"),
	})
	a := resp.Auth
	if a == nil || resp.Data != nil {
		t.Fatalf("create answered data %v auth %v; Vault answers in auth only", resp.Data, a)
	}
	if !strings.HasPrefix(a.ClientToken, "hvs.") || a.Accessor == "" || a.LeaseDuration != 3600 || !a.Renewable ||
		a.Orphan || a.NumUses != 3 || a.TokenType != "service" || a.Metadata["app"] != "billing" {
		t.Fatalf("auth = %+v", a)
	}
	if want := []string{"default", "web"}; !reflect.DeepEqual(a.Policies, want) || !reflect.DeepEqual(a.TokenPolicies, want) {
		t.Fatalf("policies %q token_policies %q, want %q", a.Policies, a.TokenPolicies, want)
	}
	sec := asVaultClient(t, resp)
	if id, _ := sec.TokenID(); id != a.ClientToken {
		t.Fatalf("vault/api TokenID = %q", id)
	}
	if ttl, _ := sec.TokenTTL(); ttl != time.Hour {
		t.Fatalf("vault/api TokenTTL = %s", ttl)
	}

	h.clock.Advance(10 * time.Minute)
	look := h.must(h.root, logical.UpdateOperation, "lookup", map[string]any{"token": a.ClientToken})
	want := []string{"accessor", "creation_time", "creation_ttl", "display_name", "entity_id", "expire_time",
		"explicit_max_ttl", "id", "issue_time", "meta", "num_uses", "orphan", "path", "policies", "renewable", "ttl", "type"}
	var got []string
	for k := range look.Data {
		got = append(got, k)
	}
	slices.Sort(got)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("lookup fields %q\nwant %q", got, want)
	}
	d := look.Data
	if d["id"] != a.ClientToken || d["accessor"] != a.Accessor || d["display_name"] != "token-my-app" ||
		d["path"] != "auth/token/create" || d["ttl"] != int64(3000) || d["creation_ttl"] != int64(3600) ||
		d["creation_time"] != t0.Unix() || d["num_uses"] != 3 || d["orphan"] != false || d["type"] != "service" {
		t.Fatalf("lookup data = %v", d)
	}
	if exp, ok := d["expire_time"].(time.Time); !ok || !exp.Equal(t0.Add(time.Hour)) {
		t.Fatalf("expire_time = %v", d["expire_time"])
	}
	sec = asVaultClient(t, look)
	if ttl, _ := sec.TokenTTL(); ttl != 50*time.Minute {
		t.Fatalf("vault/api TokenTTL of lookup = %s", ttl)
	}
	if pol, _ := sec.TokenPolicies(); !reflect.DeepEqual(pol, []string{"default", "web"}) {
		t.Fatalf("vault/api TokenPolicies of lookup = %q", pol)
	}

	// lookup by GET with the token in the query, lookup-self, lookup-accessor.
	q := h.must(h.root, logical.ReadOperation, "lookup", map[string]any{"token": []string{a.ClientToken}})
	if q.Data["accessor"] != a.Accessor {
		t.Fatalf("GET lookup?token= = %v", q.Data)
	}
	self := h.must(a.ClientToken, logical.ReadOperation, "lookup-self", nil)
	if self.Data["id"] != a.ClientToken {
		t.Fatalf("lookup-self = %v", self.Data)
	}
	byAcc := h.must(h.root, logical.UpdateOperation, "lookup-accessor", map[string]any{"accessor": a.Accessor})
	if byAcc.Data["id"] != "" || byAcc.Data["accessor"] != a.Accessor {
		t.Fatalf("lookup-accessor must hide the id: %v", byAcc.Data)
	}
	rootLook := h.must(h.root, logical.ReadOperation, "lookup-self", nil)
	if rootLook.Data["expire_time"] != nil || rootLook.Data["ttl"] != int64(0) || rootLook.Data["orphan"] != true {
		t.Fatalf("root lookup-self = %v", rootLook.Data)
	}
}

func TestBackendPolicyRules(t *testing.T) {
	h := newHarness(t, Options{})
	parent := h.must(h.root, logical.UpdateOperation, "create", map[string]any{"policies": "a,b"}).Auth
	if want := []string{"a", "b", "default"}; !reflect.DeepEqual(parent.Policies, want) {
		t.Fatalf("root-created policies %q, want %q", parent.Policies, want)
	}
	tok := parent.ClientToken

	sub := h.must(tok, logical.UpdateOperation, "create", map[string]any{"policies": []any{"a"}}).Auth
	if want := []string{"a", "default"}; !reflect.DeepEqual(sub.Policies, want) {
		t.Fatalf("subset child policies %q, want %q", sub.Policies, want)
	}
	inherit := h.must(tok, logical.UpdateOperation, "create", nil).Auth
	if want := []string{"a", "b", "default"}; !reflect.DeepEqual(inherit.Policies, want) {
		t.Fatalf("inherited policies %q, want %q", inherit.Policies, want)
	}
	noDef := h.must(tok, logical.UpdateOperation, "create", map[string]any{"policies": []any{"a"}, "no_default_policy": true}).Auth
	if want := []string{"a"}; !reflect.DeepEqual(noDef.Policies, want) {
		t.Fatalf("no_default_policy gave %q", noDef.Policies)
	}

	h.fails(tok, logical.UpdateOperation, "create", map[string]any{"policies": []any{"a", "c"}}, 400, `child policies must be subset of parent: the parent token lacks ["c"]`)
	h.fails(tok, logical.UpdateOperation, "create", map[string]any{"policies": []any{"root"}}, 400, "subset of parent")
	h.fails(tok, logical.UpdateOperation, "create", map[string]any{"no_parent": true}, 400, "root privileges required to create orphan token")
	h.fails(tok, logical.UpdateOperation, "create", map[string]any{"id": "mine"}, 400, "root privileges required to specify token id")
	h.fails(tok, logical.UpdateOperation, "create", map[string]any{"period": "1h"}, 400, "root privileges required to create periodic token")
	h.fails("hvs.nobody", logical.UpdateOperation, "create", nil, 400, "no parent found")

	// create-orphan is open to whoever the router let through.
	orphan := h.must(tok, logical.UpdateOperation, "create-orphan", map[string]any{"policies": []any{"b"}}).Auth
	if !orphan.Orphan {
		t.Fatal("create-orphan made a child")
	}
	// Root may do all of it.
	custom := h.must(h.root, logical.UpdateOperation, "create", map[string]any{
		"id": "my-token", "policies": []any{"x"}, "no_parent": true, "period": 3600,
	}).Auth
	if custom.ClientToken != "my-token" || !custom.Orphan || custom.LeaseDuration != 3600 {
		t.Fatalf("root create = %+v", custom)
	}
	h.fails(h.root, logical.UpdateOperation, "create", map[string]any{"id": "my-token"}, 400, "duplicate ID")

	// Revoking the parent takes its children but not the orphan.
	h.must(h.root, logical.UpdateOperation, "revoke", map[string]any{"token": tok})
	for _, id := range []string{sub.ClientToken, inherit.ClientToken, noDef.ClientToken} {
		if h.lookup(id) != nil {
			t.Fatal("child survived its parent")
		}
	}
	if h.lookup(orphan.ClientToken) == nil {
		t.Fatal("orphan revoked with its creator")
	}
}

func TestBackendRootChildren(t *testing.T) {
	h := newHarness(t, Options{})
	// A root child of the (non-expiring) root never expires.
	r := h.must(h.root, logical.UpdateOperation, "create", nil).Auth
	if !reflect.DeepEqual(r.Policies, []string{"root"}) || r.LeaseDuration != 0 || r.Renewable {
		t.Fatalf("root child = %+v", r)
	}
	// An expiring root token cannot create a non-expiring one.
	exp := h.must(h.root, logical.UpdateOperation, "create", map[string]any{"ttl": "1h"}).Auth
	if exp.LeaseDuration != 3600 {
		t.Fatalf("root child with ttl 1h: %+v", exp)
	}
	h.fails(exp.ClientToken, logical.UpdateOperation, "create", nil, 400, "expiring root tokens cannot create non-expiring root tokens")
}

func TestBackendUseLimitedParent(t *testing.T) {
	h := newHarness(t, Options{})
	lim := h.must(h.root, logical.UpdateOperation, "create", map[string]any{"num_uses": 5}).Auth
	h.fails(lim.ClientToken, logical.UpdateOperation, "create", nil, 400, "restricted use token cannot generate child tokens")
	h.fails(h.root, logical.UpdateOperation, "create", map[string]any{"num_uses": -1}, 400, "number of uses cannot be negative")
}

func TestBackendRenew(t *testing.T) {
	h := newHarness(t, Options{})
	a := h.must(h.root, logical.UpdateOperation, "create", map[string]any{"policies": "p", "ttl": "1h"}).Auth
	h.clock.Advance(30 * time.Minute)

	r := h.must(h.root, logical.UpdateOperation, "renew", map[string]any{"token": a.ClientToken, "increment": "2h"})
	if r.Auth == nil || r.Auth.ClientToken != a.ClientToken || r.Auth.LeaseDuration != 7200 || !r.Auth.Renewable {
		t.Fatalf("renew auth = %+v", r.Auth)
	}
	self := h.must(a.ClientToken, logical.UpdateOperation, "renew-self", map[string]any{"increment": 600})
	if self.Auth.LeaseDuration != 600 {
		t.Fatalf("renew-self lease_duration %d", self.Auth.LeaseDuration)
	}
	byAcc := h.must(h.root, logical.UpdateOperation, "renew-accessor", map[string]any{"accessor": a.Accessor})
	if byAcc.Auth.ClientToken != "" || byAcc.Auth.LeaseDuration != 3600 {
		t.Fatalf("renew-accessor auth = %+v", byAcc.Auth)
	}

	fixed := h.must(h.root, logical.UpdateOperation, "create", map[string]any{"policies": "p", "renewable": false}).Auth
	h.fails(fixed.ClientToken, logical.UpdateOperation, "renew-self", nil, 400, "lease is not renewable")
	h.fails(h.root, logical.UpdateOperation, "renew-self", nil, 400, "lease is not renewable")
	h.fails(h.root, logical.UpdateOperation, "renew", map[string]any{"token": "hvs.gone"}, 400, "token not found")
	h.fails(h.root, logical.UpdateOperation, "renew", map[string]any{"token": a.ClientToken, "increment": "soon"}, 400, "increment")
}

func TestBackendRevoke(t *testing.T) {
	h := newHarness(t, Options{})
	mk := func(parent string) *logical.Auth {
		return h.must(parent, logical.UpdateOperation, "create", map[string]any{"policies": "p"}).Auth
	}
	a := mk(h.root)
	b := mk(a.ClientToken)
	if resp := h.must(h.root, logical.UpdateOperation, "revoke-orphan", map[string]any{"token": a.ClientToken}); resp != nil {
		t.Fatalf("revoke-orphan answered %+v, want 204", resp)
	}
	if h.lookup(a.ClientToken) != nil || h.lookup(b.ClientToken) == nil || !h.lookup(b.ClientToken).Orphan {
		t.Fatal("revoke-orphan: parent must go, child stay as an orphan")
	}
	h.fails(h.root, logical.UpdateOperation, "revoke-orphan", map[string]any{"token": a.ClientToken}, 400, "token to revoke not found")

	c := mk(h.root)
	h.must(h.root, logical.UpdateOperation, "revoke-accessor", map[string]any{"accessor": c.Accessor})
	if h.lookup(c.ClientToken) != nil {
		t.Fatal("revoke-accessor left the token")
	}
	w := h.must(h.root, logical.UpdateOperation, "revoke-accessor", map[string]any{"accessor": c.Accessor})
	if w == nil || len(w.Warnings) != 1 || !strings.Contains(w.Warnings[0], "No token found") {
		t.Fatalf("revoke-accessor of an unknown accessor = %+v", w)
	}

	d := mk(h.root)
	if resp := h.must(d.ClientToken, logical.UpdateOperation, "revoke-self", nil); resp != nil {
		t.Fatalf("revoke-self answered %+v", resp)
	}
	if h.lookup(d.ClientToken) != nil {
		t.Fatal("revoke-self left the token")
	}
	// Revoking a token that does not exist is a 204, as in Vault.
	if resp := h.must(h.root, logical.UpdateOperation, "revoke", map[string]any{"token": d.ClientToken}); resp != nil {
		t.Fatalf("revoke of a missing token = %+v", resp)
	}
	h.fails(h.root, logical.UpdateOperation, "revoke", nil, 400, "missing token ID")
	h.fails(h.root, logical.UpdateOperation, "lookup-accessor", map[string]any{"accessor": c.Accessor}, 400, "invalid accessor")
}

func TestBackendRequestErrors(t *testing.T) {
	h := newHarness(t, Options{})
	_, err := h.req(h.root, logical.UpdateOperation, "roles/web", nil)
	if !errors.Is(err, logical.ErrUnsupportedPath) {
		t.Fatalf("unknown path: %v", err)
	}
	if _, err := h.req(h.root, logical.ReadOperation, "create", nil); !errors.Is(err, logical.ErrUnsupportedOperation) {
		t.Fatalf("GET create: %v", err)
	}
	for field, v := range map[string]any{
		"ttl": "forever", "num_uses": "many", "renewable": "perhaps", "policies": 7,
		"meta": map[string]any{"k": 1.5}, "display_name": map[string]any{}, "explicit_max_ttl": []any{},
	} {
		_, err := h.req(h.root, logical.UpdateOperation, "create", map[string]any{field: v})
		if !errors.Is(err, logical.ErrInvalidRequest) || !strings.Contains(err.Error(), field) {
			t.Errorf("create with %s=%v: %v, want an invalid request naming the field", field, v, err)
		}
	}
	h.fails(h.root, logical.UpdateOperation, "create", map[string]any{"type": "weird"}, 400, "invalid 'type' value")
	h.fails("", logical.ReadOperation, "lookup-self", nil, 400, "missing token ID")
	h.fails(h.root, logical.UpdateOperation, "lookup", map[string]any{"token": "hvs.nope"}, 403, "bad token")

	resp := h.must(h.root, logical.UpdateOperation, "create", map[string]any{"policies": "p", "colour": "blue"})
	if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "colour") {
		t.Fatalf("unknown parameter warnings = %q", resp.Warnings)
	}
	h.must(h.root, logical.CreateOperation, "create", map[string]any{"policies": "p"}) // create is update's synonym

	exists, err := h.b.ExistenceCheck(h.ctx, &logical.Request{Operation: logical.UpdateOperation, Path: "create"})
	if err != nil || !exists {
		t.Fatalf("ExistenceCheck = %v, %v; want true so writes are authorized as update", exists, err)
	}
}
