package tests

import (
	"net/http"
	"testing"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/hashicorp/vault/api"
)

// Seed 002: "The generate-root command can also be used to generate a root
// token local to the secondary cluster." The secondary holds the primary's
// seal material, so the primary's recovery key authorises the generation;
// the token lives in the secondary's local token store: it works there and
// not on the primary.
func TestGenerateRootOnASecondary(t *testing.T) {
	t.Parallel()
	key := randomBytes(t, 32)
	bus, _, seed := embeddedBusAt(t)
	pn := newNode(t, serverConfig{StaticKey: key, ClusterName: "dc1", Bus: bus})
	pn.start()
	res, err := client(t, pn.addr, "").Sys().Init(&api.InitRequest{RecoveryShares: 3, RecoveryThreshold: 2})
	if err != nil {
		t.Fatal(err)
	}
	waitHealthCode(t, pn.addr, 200)
	P := client(t, pn.addr, res.RootToken)
	enablePrimary(t, P)
	tok := secondaryToken(t, P, "dc2", "")
	sec := startReplNode(t, key, "dc2", withSeed(embeddedBus(t), seed))
	if err := activateSecondary(client(t, sec.n.addr, sec.root), tok); err != nil {
		t.Fatalf("secondary/enable: %v", err)
	}
	sys := client(t, sec.n.addr, "").Sys()
	var init *api.GenerateRootStatusResponse
	testutil.Eventually(t, waitTimeout, "generate-root attempt on the secondary", func() error {
		init, err = sys.GenerateRootInit("", "")
		return err
	})
	if init.Required != 2 {
		t.Fatalf("required %d shares on the secondary, want the primary's threshold 2", init.Required)
	}
	if _, err := sys.GenerateRootUpdate(res.RecoveryKeys[0], init.Nonce); err != nil {
		t.Fatal(err)
	}
	up, err := sys.GenerateRootUpdate(res.RecoveryKeys[2], init.Nonce)
	if err != nil || !up.Complete {
		t.Fatalf("generate-root update 2/2 on the secondary: %+v %v", up, err)
	}
	root := decodeGenerated(t, up.EncodedToken, init.OTP)
	S := client(t, sec.n.addr, root)
	if err := S.Sys().PutPolicy("local-check", `path "secret/*" { capabilities = ["read"] }`); err != nil {
		t.Fatalf("a root-only write with the secondary's new root token: %v", err)
	}
	if self, err := S.Auth().Token().LookupSelf(); err != nil || self.Data["path"] != "auth/token/root" {
		t.Fatalf("lookup-self on the secondary: %v %v", self, err)
	}
	_, err = client(t, pn.addr, root).Auth().Token().LookupSelf()
	refused(t, "the secondary's generated root token on the primary", err, http.StatusForbidden, "")
}
