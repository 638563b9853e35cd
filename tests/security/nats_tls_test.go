package security

// A primary whose embedded NATS requires credentials and TLS, and a
// secondary that reaches it the documented way (docs/configuration.md, "The
// bus: credentials and TLS"): a copy of the primary's client seed and the CA
// that signed its NATS certificate. Activation and replication work; without
// the CA, or without the seed, the primary's NATS stays closed to a client.

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/hashicorp/vault/api"
	"github.com/nats-io/nats.go"
)

// natsReplTimeout bounds waits for activation and replication; a passing run
// never waits for it.
const natsReplTimeout = 60 * time.Second

// natsAPIClient is a vault/api client of the plain-HTTP server at addr.
func natsAPIClient(t *testing.T, addr, token string) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = "http://" + addr
	cfg.MaxRetries = 0
	cfg.Timeout = 30 * time.Second
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(token)
	return c
}

// natsInit initializes the static-seal server at addr and waits until it is
// unsealed and active; it returns the root token.
func natsInit(t *testing.T, addr string) string {
	t.Helper()
	res, err := natsAPIClient(t, addr, "").Sys().Init(&api.InitRequest{RecoveryShares: 1, RecoveryThreshold: 1})
	if err != nil {
		t.Fatalf("sys/init on %s: %v", addr, err)
	}
	hc := &http.Client{Timeout: 2 * time.Second}
	testutil.Eventually(t, natsReplTimeout, "sys/health on "+addr+" answers 200", func() error {
		resp, err := hc.Get("http://" + addr + "/v1/sys/health")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
	return res.RootToken
}

func TestNATSReplicationOverTLSWithCredentials(t *testing.T) {
	bin := natsBuildCoffer(t)
	ca := natsNewCA(t)
	sealKey := make([]byte, 32)
	if _, err := rand.Read(sealKey); err != nil {
		t.Fatal(err)
	}

	priDir, priAPI, priNATS := t.TempDir(), natsFreeAddr(t), natsFreeAddr(t)
	priStore := filepath.Join(priDir, "nats")
	priCfg := natsConfigServer(t, priDir, priAPI, "dc1", fmt.Sprintf(
		"embedded = true\n  listen = %q\n  store_dir = %q\n  tls_cert_file = %q\n  tls_key_file = %q",
		priNATS, priStore, ca.certFile, ca.keyFile), sealKey)
	natsStartCoffer(t, bin, priAPI, "server", "-config="+priCfg)
	P := natsAPIClient(t, priAPI, natsInit(t, priAPI))
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
	if _, err := P.KVv2("secret").Put(t.Context(), "app", map[string]any{"v": "before"}); err != nil {
		t.Fatal(err)
	}
	if _, err := P.Logical().Write("sys/replication/performance/primary/enable", nil); err != nil {
		t.Fatalf("primary/enable: %v", err)
	}
	s, err := P.Logical().Write("sys/replication/performance/primary/secondary-token", map[string]any{"id": "dc2"})
	if err != nil || s == nil || s.WrapInfo == nil || s.WrapInfo.Token == "" {
		t.Fatalf("secondary-token: %v %+v", err, s)
	}

	// The primary's NATS speaks only TLS, to clients with its seed.
	seed := filepath.Join(priStore, "auth", "client.nk")
	seedOpt, err := nats.NkeyOptionFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	tlsURL := "tls://" + priNATS
	if nc, err := natsConnect(tlsURL, seedOpt); err == nil {
		nc.Close()
		t.Fatal("connected to the primary's NATS without trusting its CA")
	} else if !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("without the CA: %v, want a certificate error", err)
	}
	natsRefused(t, tlsURL, "TLS without credentials", nats.RootCAs(ca.caFile))
	natsJetStreamWorks(t, tlsURL, seedOpt, nats.RootCAs(ca.caFile))

	// The secondary runs its own embedded NATS and holds a copy of the
	// primary's seed and CA, as an operator would copy them.
	secDir, secAPI := t.TempDir(), natsFreeAddr(t)
	seedCopy := filepath.Join(secDir, "dc1-client.nk")
	data, err := os.ReadFile(seed)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(seedCopy, data, 0o600); err != nil {
		t.Fatal(err)
	}
	secCfg := natsConfigServer(t, secDir, secAPI, "dc2", fmt.Sprintf(
		"embedded = true\n  listen = %q\n  nkey_seed_file = %q\n  tls_ca_file = %q",
		natsFreeAddr(t), seedCopy, ca.caFile), sealKey)
	natsStartCoffer(t, bin, secAPI, "server", "-config="+secCfg)
	S := natsAPIClient(t, secAPI, natsInit(t, secAPI))
	if _, err := S.Logical().Write("sys/replication/performance/secondary/enable", map[string]any{"token": s.WrapInfo.Token}); err != nil {
		t.Fatalf("secondary/enable over TLS with the copied seed: %v", err)
	}
	if _, err := P.KVv2("secret").Put(t.Context(), "app", map[string]any{"v": "after"}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, natsReplTimeout, "alice reads secret/app = after on the secondary", func() error {
		c := natsAPIClient(t, secAPI, "")
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
