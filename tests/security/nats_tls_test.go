package security

// A primary whose embedded NATS requires credentials and TLS, and a
// secondary that reaches it the documented way (docs/configuration.md, "The
// bus: credentials and TLS"): a copy of the primary's client seed and the CA
// that signed its NATS certificate. Activation and replication work; without
// the CA, or without the seed, the primary's NATS stays closed to a client.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/bus/bustest"
	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/hashicorp/vault/api"
	"github.com/nats-io/nats.go"
)

func TestNATSReplicationOverTLSWithCredentials(t *testing.T) {
	ca := bustest.NewCA(t)
	sealKey := randomBytes(t, 32)

	pri := startConfigServer(t, serverOpts{Name: "dc1", Bolt: true, SealKey: sealKey, NATSStore: true,
		Bus: fmt.Sprintf("  tls_cert_file = %q\n  tls_key_file = %q", ca.CertFile, ca.KeyFile)})
	pri.initialize()
	P := pri.rootClient()
	if err := P.Sys().Mount("secret", &api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatal(err)
	}
	if err := P.Sys().PutPolicy("reader", `path "secret/*" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	if err := P.Sys().EnableAuthWithOptions("userpass", &api.EnableAuthOptions{Type: "userpass"}); err != nil {
		t.Fatal(err)
	}
	if _, err := P.Logical().Write("auth/userpass/users/alice", map[string]any{"password": "pw", "token_policies": "reader"}); err != nil {
		t.Fatal(err)
	}
	if err := kvPut(P, "app", "before"); err != nil {
		t.Fatal(err)
	}
	enablePrimary(t, pri)
	token := secondaryToken(t, pri, "dc2")

	// The primary's NATS speaks only TLS, to clients with its seed.
	seed := filepath.Join(pri.dir, "nats", "auth", "client.nk")
	seedOpt, err := nats.NkeyOptionFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	tlsURL := "tls://" + pri.natsAddr
	if nc, err := natsConnect(tlsURL, seedOpt); err == nil {
		nc.Close()
		t.Fatal("connected to the primary's NATS without trusting its CA")
	} else if !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("without the CA: %v, want a certificate error", err)
	}
	natsRefused(t, tlsURL, "TLS without credentials", nats.RootCAs(ca.CAFile))
	natsJetStreamWorks(t, tlsURL, seedOpt, nats.RootCAs(ca.CAFile))

	// The secondary runs its own embedded NATS and holds a copy of the
	// primary's seed and CA, as an operator would copy them.
	seedCopy := filepath.Join(t.TempDir(), "dc1-client.nk")
	data, err := os.ReadFile(seed)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(seedCopy, data, 0o600); err != nil {
		t.Fatal(err)
	}
	sec := startConfigServer(t, serverOpts{Name: "dc2", Bolt: true, SealKey: sealKey,
		Bus: fmt.Sprintf("  nkey_seed_file = %q\n  tls_ca_file = %q", seedCopy, ca.CAFile)})
	sec.initialize()
	if err := activate(sec, token); err != nil {
		t.Fatalf("secondary/enable over TLS with the copied seed: %v", err)
	}
	if err := kvPut(P, "app", "after"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, replTimeout, "alice reads secret/app = after on the secondary", func() error {
		c := sec.client("")
		login, err := c.Logical().Write("auth/userpass/login/alice", map[string]any{"password": "pw"})
		if err != nil {
			return err
		}
		c.SetToken(login.Auth.ClientToken)
		kv, err := c.KVv2("secret").Get(t.Context(), "app")
		if err != nil {
			return err
		}
		if kv.Data["v"] != "after" {
			return fmt.Errorf("secret/app = %v", kv.Data["v"])
		}
		return nil
	})
}
