package tests

// The acceptance suite of the Vault-compatible logical layer, tokens: driven
// through github.com/hashicorp/vault/api against real coffer processes.
// Expectations are Vault's (checked against Vault 1.21's source) unless a
// comment says Coffer decided otherwise.

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/hashicorp/vault/api"
)

func TestLogicalTokens(t *testing.T) {
	t.Parallel()
	_, root := devServer(t)
	ta := root.Auth().Token()
	if err := root.Sys().PutPolicy("p1", `path "secret/data/p1/*" { capabilities = ["read"] }`); err != nil {
		t.Fatalf("put policy p1: %v", err)
	}
	if err := root.Sys().PutPolicy("tokmaker", `
path "auth/token/create" { capabilities = ["update"] }
path "auth/token/create-orphan" { capabilities = ["update"] }
`); err != nil {
		t.Fatalf("put policy tokmaker: %v", err)
	}

	// create with every field, then lookup.
	sec, err := ta.Create(&api.TokenCreateRequest{
		Policies: []string{"p1"}, TTL: "1h", ExplicitMaxTTL: "2h", NumUses: 5,
		DisplayName: "myapp", Metadata: map[string]string{"team": "blue"},
	})
	if err != nil || sec.Auth == nil || sec.Auth.ClientToken == "" || sec.Auth.Accessor == "" {
		t.Fatalf("token create: %+v, %v", sec, err)
	}
	tok, acc := sec.Auth.ClientToken, sec.Auth.Accessor
	if !slices.Equal(sec.Auth.Policies, []string{"default", "p1"}) || sec.Auth.LeaseDuration != 3600 || !sec.Auth.Renewable {
		t.Fatalf("token create auth: %+v; want policies [default p1], lease 3600, renewable", sec.Auth)
	}
	look, err := ta.Lookup(tok)
	if err != nil || look == nil {
		t.Fatalf("lookup: %v, %v", look, err)
	}
	d := look.Data
	if d["id"] != tok || d["accessor"] != acc || d["display_name"] != "token-myapp" ||
		num(t, "num_uses", d["num_uses"]) != 5 || num(t, "explicit_max_ttl", d["explicit_max_ttl"]) != 7200 ||
		num(t, "creation_ttl", d["creation_ttl"]) != 3600 || d["orphan"] != false || d["path"] != "auth/token/create" {
		t.Fatalf("lookup data: %v", d)
	}
	if ttl := num(t, "ttl", d["ttl"]); ttl < 3500 || ttl > 3600 {
		t.Fatalf("lookup ttl %d; want about 3600", ttl)
	}
	if v, _ := mapAt(d, "meta", "team"); v != "blue" {
		t.Fatalf("lookup meta: %v; want team=blue", d["meta"])
	}
	if p := strs(d["policies"]); !slices.Equal(p, []string{"default", "p1"}) {
		t.Fatalf("lookup policies %q", p)
	}
	// lookup-self spends one of the five uses.
	self, err := withToken(t, root, tok).Auth().Token().LookupSelf()
	if err != nil || self.Data["accessor"] != acc || num(t, "num_uses", self.Data["num_uses"]) != 4 {
		t.Fatalf("lookup-self: %+v, %v; want the same accessor and 4 uses left", self, err)
	}
	la, err := ta.LookupAccessor(acc)
	if err != nil || la == nil || la.Data["accessor"] != acc || (la.Data["id"] != nil && la.Data["id"] != "") {
		t.Fatalf("lookup-accessor: %+v, %v; want the accessor and no id", la, err)
	}

	// Periodic token: ttl is the period; renew resets it.
	per, err := ta.Create(&api.TokenCreateRequest{Policies: []string{"p1"}, Period: "30m"})
	if err != nil || per.Auth.LeaseDuration != 1800 {
		t.Fatalf("periodic token create: %+v, %v; want lease 1800", per, err)
	}
	if l, err := ta.Lookup(per.Auth.ClientToken); err != nil || num(t, "period", l.Data["period"]) != 1800 {
		t.Fatalf("lookup of the periodic token: %+v, %v; want period 1800", l, err)
	}
	// Vault ignores the increment of a periodic token: the TTL is reset to
	// the period (sdk/framework.CalculateTTL).
	rn, err := ta.Renew(per.Auth.ClientToken, 60)
	if err != nil || rn.Auth == nil {
		t.Fatalf("renew of a periodic token: %+v, %v", rn, err)
	}
	if rn.Auth.LeaseDuration != 1800 {
		t.Errorf("renew of a periodic token with increment 60: lease_duration %d; want 1800 (the period), as in Vault", rn.Auth.LeaseDuration)
	}

	// renew and renew-self on an ordinary token.
	plain, err := ta.Create(&api.TokenCreateRequest{Policies: []string{"p1"}, TTL: "1h", ExplicitMaxTTL: "2h"})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	rn, err = ta.Renew(plain.Auth.ClientToken, 600)
	if err != nil || rn.Auth == nil || rn.Auth.LeaseDuration != 600 || rn.Auth.ClientToken != plain.Auth.ClientToken {
		t.Fatalf("renew increment 600: %+v, %v; want lease 600", rn, err)
	}
	if l, err := ta.Lookup(plain.Auth.ClientToken); err != nil || num(t, "ttl", l.Data["ttl"]) > 600 {
		t.Fatalf("lookup after renew: %+v, %v; want ttl at most 600", l, err)
	}
	rn, err = withToken(t, root, plain.Auth.ClientToken).Auth().Token().RenewSelf(900)
	if err != nil || rn.Auth == nil || rn.Auth.LeaseDuration != 900 {
		t.Fatalf("renew-self 900: %+v, %v; want lease 900", rn, err)
	}
	// explicit_max_ttl caps renewals.
	rn, err = ta.Renew(plain.Auth.ClientToken, 86400)
	if err != nil || rn.Auth == nil || rn.Auth.LeaseDuration > 7200 || rn.Auth.LeaseDuration < 7000 {
		t.Fatalf("renew beyond explicit_max_ttl: %+v, %v; want capped near 7200", rn, err)
	}

	// Parent, child and orphan.
	parentSec, err := ta.Create(&api.TokenCreateRequest{Policies: []string{"tokmaker", "p1"}})
	if err != nil {
		t.Fatalf("create parent: %v", err)
	}
	parent := withToken(t, root, parentSec.Auth.ClientToken)
	childSec, err := parent.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"p1"}})
	if err != nil || !slices.Equal(childSec.Auth.Policies, []string{"default", "p1"}) {
		t.Fatalf("parent creates child: %+v, %v", childSec, err)
	}
	_, err = parent.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"root"}})
	refused(t, "a non-root parent asks for root", err, 400, "")
	_, err = parent.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"other"}})
	refused(t, "a child policy outside the parent's", err, 400, "subset")
	orphanSec, err := parent.Auth().Token().CreateOrphan(&api.TokenCreateRequest{Policies: []string{"p1"}})
	if err != nil || !orphanSec.Auth.Orphan {
		t.Fatalf("create-orphan: %+v, %v; want an orphan", orphanSec, err)
	}
	if l, err := ta.Lookup(orphanSec.Auth.ClientToken); err != nil || l.Data["orphan"] != true {
		t.Fatalf("lookup of the orphan: %+v, %v", l, err)
	}
	if err := ta.RevokeTree(parentSec.Auth.ClientToken); err != nil {
		t.Fatalf("revoke parent: %v", err)
	}
	_, err = parent.Auth().Token().LookupSelf()
	refused(t, "the revoked parent", err, 403, "")
	_, err = withToken(t, root, childSec.Auth.ClientToken).Auth().Token().LookupSelf()
	refused(t, "the child of a revoked parent", err, 403, "")
	if _, err := withToken(t, root, orphanSec.Auth.ClientToken).Auth().Token().LookupSelf(); err != nil {
		t.Fatalf("the orphan after its creator's revocation: %v; want alive", err)
	}

	// revoke-orphan: the parent goes, its children stay, as orphans.
	p2Sec, err := ta.Create(&api.TokenCreateRequest{Policies: []string{"tokmaker", "p1"}})
	if err != nil {
		t.Fatalf("create parent 2: %v", err)
	}
	c2Sec, err := withToken(t, root, p2Sec.Auth.ClientToken).Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"p1"}})
	if err != nil || c2Sec.Auth.Orphan {
		t.Fatalf("parent 2 creates a child: %+v, %v", c2Sec, err)
	}
	err = withToken(t, root, c2Sec.Auth.ClientToken).Auth().Token().RevokeOrphan(p2Sec.Auth.ClientToken)
	if err == nil {
		t.Fatal("revoke-orphan without sudo succeeded")
	}
	if err := ta.RevokeOrphan(p2Sec.Auth.ClientToken); err != nil {
		t.Fatalf("revoke-orphan: %v", err)
	}
	_, err = withToken(t, root, p2Sec.Auth.ClientToken).Auth().Token().LookupSelf()
	refused(t, "the parent revoked with revoke-orphan", err, 403, "")
	c2Self, err := withToken(t, root, c2Sec.Auth.ClientToken).Auth().Token().LookupSelf()
	if err != nil || c2Self.Data["orphan"] != true {
		t.Fatalf("the child after revoke-orphan: %+v, %v; want alive and an orphan", c2Self, err)
	}

	// revoke-self, revoke-accessor, revoke.
	rs, err := ta.Create(&api.TokenCreateRequest{Policies: []string{"p1"}})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if err := withToken(t, root, rs.Auth.ClientToken).Auth().Token().RevokeSelf(""); err != nil {
		t.Fatalf("revoke-self: %v", err)
	}
	_, err = withToken(t, root, rs.Auth.ClientToken).Auth().Token().LookupSelf()
	refused(t, "a token after revoke-self", err, 403, "")
	ra, err := ta.Create(&api.TokenCreateRequest{Policies: []string{"p1"}})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if err := ta.RevokeAccessor(ra.Auth.Accessor); err != nil {
		t.Fatalf("revoke-accessor: %v", err)
	}
	_, err = withToken(t, root, ra.Auth.ClientToken).Auth().Token().LookupSelf()
	refused(t, "a token after revoke-accessor", err, 403, "")
	if _, err := ta.LookupAccessor(ra.Auth.Accessor); err == nil {
		t.Fatal("lookup-accessor of a revoked token succeeded")
	}
	_, err = withToken(t, root, plain.Auth.ClientToken).Logical().Read("secret/data/p1/x")
	if err != nil {
		t.Fatalf("a live token within its policy: %v", err)
	}
	if err := ta.RevokeTree(plain.Auth.ClientToken); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	_, err = withToken(t, root, plain.Auth.ClientToken).Logical().Read("secret/data/p1/x")
	refused(t, "a revoked token reads", err, 403, "permission denied")

	// A use-limited token works num_uses times, then is refused.
	lim, err := ta.Create(&api.TokenCreateRequest{Policies: []string{"p1"}, NumUses: 3})
	if err != nil {
		t.Fatalf("create a token with 3 uses: %v", err)
	}
	limC := withToken(t, root, lim.Auth.ClientToken)
	for i := 1; i <= 3; i++ {
		if _, err := limC.Logical().Read("secret/data/p1/x"); err != nil {
			t.Fatalf("use %d of 3: %v", i, err)
		}
	}
	_, err = limC.Logical().Read("secret/data/p1/x")
	refused(t, "use 4 of 3", err, 403, "permission denied")

	// An expiring token is refused once its TTL has passed.
	exp, err := ta.Create(&api.TokenCreateRequest{Policies: []string{"p1"}, TTL: "2s"})
	if err != nil || exp.Auth.LeaseDuration != 2 {
		t.Fatalf("create with ttl 2s: %+v, %v", exp, err)
	}
	expC := withToken(t, root, exp.Auth.ClientToken)
	created := time.Now()
	testutil.Eventually(t, waitTimeout, "the 2s token is refused", func() error {
		_, err := expC.Logical().Read("secret/data/p1/x")
		switch {
		case err == nil:
			return errors.New("still accepted")
		case statusOf(err) != 403:
			t.Fatalf("the expiring token got %v; want success, then 403", err)
		}
		return nil
	})
	if since := time.Since(created); since < time.Second {
		t.Fatalf("the 2s token was refused after only %s", since)
	}
}
