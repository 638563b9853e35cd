package tests

// Batch tokens across performance replication (core/tokens/batch.go): a
// batch token is not stored but signed, and the primary's public key is
// replicated, so an orphan batch token made on the primary works on its
// secondaries; a secondary signs with a key of its own, which the primary
// does not trust. Real coffer processes, the vault/api client.

import (
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"
)

func TestBatchTokenOnPerformanceSecondary(t *testing.T) {
	pri := devReplServer(t, "root-dc1")
	sec := devReplServer(t, "root-dc2")
	P := pri.root
	kvPut(t, P, "secret", "app", map[string]any{"v": "one"})
	kvPut(t, P, "secret", "other", map[string]any{"v": "two"})
	// It may create tokens too: only the batch token's type stops it.
	if err := P.Sys().PutPolicy("app-read", `path "secret/data/app" { capabilities = ["read"] }
path "auth/token/create" { capabilities = ["update"] }`); err != nil {
		t.Fatalf("put policy app-read: %v", err)
	}

	// Made on the primary before the secondary exists: the public key
	// reaches it with the activation's sync, not with a later write.
	orphan, err := P.Auth().Token().CreateOrphan(&api.TokenCreateRequest{Type: "batch", Policies: []string{"app-read"}, TTL: "1h"})
	if err != nil {
		t.Fatalf("create-orphan type=batch on the primary: %v", err)
	}
	a := orphan.Auth
	if !strings.HasPrefix(a.ClientToken, "hvb.") || a.Accessor != "" || a.Renewable || !a.Orphan || a.LeaseDuration != 3600 {
		t.Fatalf("batch token auth %+v: want hvb., no accessor, not renewable, orphan, 1h", a)
	}
	child, err := P.Auth().Token().Create(&api.TokenCreateRequest{Type: "batch", Policies: []string{"app-read"}, TTL: "1h"})
	if err != nil {
		t.Fatalf("create type=batch on the primary: %v", err)
	}
	if err := kvHas(withToken(t, P, child.Auth.ClientToken), "secret", "app", "one"); err != nil {
		t.Fatalf("the child batch token on its primary: %v", err)
	}

	// The secondary-to-be's own batch keys and token: the activation replaces
	// its data, its signing key included.
	own, err := sec.root.Auth().Token().CreateOrphan(&api.TokenCreateRequest{Type: "batch", Policies: []string{"default"}})
	if err != nil {
		t.Fatalf("create-orphan type=batch on the secondary-to-be: %v", err)
	}

	enablePrimary(t, P)
	if err := activateSecondary(sec.root, secondaryToken(t, P, "dc2", "")); err != nil {
		t.Fatalf("secondary/enable: %v", err)
	}
	S := client(t, sec.addr, a.ClientToken)
	// 403 until the sync has brought the public key and the data, then the read.
	waitKV(t, S, "secret", "app", "one", waitTimeout)

	_, err = withToken(t, S, own.Auth.ClientToken).Auth().Token().LookupSelf()
	forbidden(t, "a batch token the secondary made before its activation", err)

	look, err := S.Auth().Token().LookupSelf()
	if err != nil {
		t.Fatalf("lookup-self with the primary's batch token on the secondary: %v", err)
	}
	d := look.Data
	if d["type"] != "batch" || d["orphan"] != true || d["accessor"] != "" || d["renewable"] != false ||
		!slices.Equal(strs(d["policies"]), []string{"app-read", "default"}) || str(d["expire_time"]) == "" {
		t.Fatalf("lookup-self on the secondary: %v", d)
	}
	if ttl := num(t, "ttl", d["ttl"]); ttl <= 0 || ttl > 3600 {
		t.Fatalf("lookup-self ttl %d", ttl)
	}

	// Its policies hold on the secondary as on the primary.
	_, err = kvData(S, "secret", "other")
	forbidden(t, "the batch token reading secret/other, outside its policy, on the secondary", err)
	// A child batch token needs its parent, a token of the primary's local
	// store: the secondary refuses it (Vault: only orphans cross).
	_, err = kvData(withToken(t, S, child.Auth.ClientToken), "secret", "app")
	forbidden(t, "a child batch token of the primary on the secondary", err)
	// A tampered token is no token.
	tok := a.ClientToken
	i, sub := len(tok)/2, "A"
	if tok[i] == 'A' {
		sub = "B"
	}
	_, err = kvData(withToken(t, S, tok[:i]+sub+tok[i+1:]), "secret", "app")
	forbidden(t, "a tampered batch token on the secondary", err)

	// Batch tokens are neither renewed nor revoked, on either cluster.
	for name, c := range map[string]*api.Client{"primary": P, "secondary": client(t, sec.addr, pri.rootID)} {
		_, err := c.Auth().Token().Renew(tok, 0)
		refused(t, "renew a batch token on the "+name, err, 400, "batch tokens cannot be renewed")
		refused(t, "revoke a batch token on the "+name, c.Auth().Token().RevokeTree(tok), 400, "batch tokens cannot be revoked")
	}
	_, err = S.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"app-read"}})
	refused(t, "a batch token creating a token", err, 400, "batch tokens cannot create more tokens")

	// The secondary issues batch tokens with its own signing key, which
	// replication never brings to the primary: its operators, who hold all the
	// data the primary sends, cannot mint a token the primary accepts.
	SR := client(t, sec.addr, pri.rootID)
	made, err := SR.Auth().Token().CreateOrphan(&api.TokenCreateRequest{Type: "batch", Policies: []string{"app-read"}})
	if err != nil {
		t.Fatalf("create-orphan type=batch on the secondary: %v", err)
	}
	if err := kvHas(withToken(t, S, made.Auth.ClientToken), "secret", "app", "one"); err != nil {
		t.Fatalf("the secondary's batch token on the secondary: %v", err)
	}
	_, err = kvData(withToken(t, P, made.Auth.ClientToken), "secret", "app")
	forbidden(t, "a batch token minted on the secondary, reading on the primary", err)
	_, err = withToken(t, P, made.Auth.ClientToken).Auth().Token().LookupSelf()
	forbidden(t, "lookup-self on the primary with a batch token minted on the secondary", err)
	_, err = SR.Auth().Token().CreateOrphan(&api.TokenCreateRequest{Type: "batch"})
	refused(t, "a batch token with the root policy on the secondary", err, 400, "batch tokens cannot be root tokens")
	// The primary's token still works on the secondary, which has a key of
	// its own now.
	if err := kvHas(S, "secret", "app", "one"); err != nil {
		t.Fatalf("the primary's batch token on the secondary, after the secondary's own: %v", err)
	}
}
