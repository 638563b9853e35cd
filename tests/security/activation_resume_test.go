package security

// Finding 6 of issue 11: a failed activation destroyed the secondary (the
// wipe came before the first sync, and nothing of the activation survived the
// process). Now secondary/enable records the activation before the wipe; a
// server killed during the bootstrap resumes it at its next start (static
// seal: the record's secrets are wrapped with the seal's key), and a cluster
// that cannot resume (shamir) stays sealed and refuses sys/init until a retry
// with a new token of the same primary finishes it, without a client token.

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"

	"github.com/cofferhq/coffer/bus"
	"github.com/cofferhq/coffer/bus/bustest"
	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/hashicorp/vault/api"
)

// bootstrapData is what the primary holds before the activation: enough for
// several sync pages (1 MiB each), so that the first sync is still running
// when the test freezes the primary.
const bootstrapKeys = 60

func bootstrapValue(i int) string { return fmt.Sprintf("%03d-%s", i, strings.Repeat("x", 48<<10)) }

// frozenActivation starts a primary and a secondary on bolt, on a NATS server
// of the test's own (the primary's process can be frozen without the bus),
// activates the secondary with activation_wait = 0s and freezes the primary
// as soon as secondary/enable answers: the secondary is then left in the
// middle of its first sync. sealKey nil gives the secondary a shamir seal.
func frozenActivation(t *testing.T, sealKey []byte) (pri, sec *server) {
	t.Helper()
	ns := bustest.StartConfig(t, bus.Config{Listen: testutil.FreeAddr(t), StoreDir: t.TempDir()})
	pri = startDevServer(t, serverOpts{Name: "dc1", Bolt: true, SealKey: randomBytes(t, 32), ExternalNATS: ns.ClientURL()})
	sec = startDevServer(t, serverOpts{Name: "dc2", Bolt: true, SealKey: sealKey, ExternalNATS: ns.ClientURL(),
		Replication: `activation_wait = "0s"`})
	P := pri.rootClient()
	for i := range bootstrapKeys {
		mustKVPut(t, P, fmt.Sprintf("k%03d", i), bootstrapValue(i))
	}
	enablePrimary(t, pri)
	tok := secondaryToken(t, pri, "dc2")
	t.Cleanup(func() { _ = pri.p.cmd.Process.Signal(syscall.SIGCONT) })
	if err := activate(sec, tok); err != nil {
		t.Fatalf("activate: %v", err)
	}
	pri.p.signal(syscall.SIGSTOP)
	st, err := readReplStatus(sec.addr)
	if err != nil || jsonString(st["state"]) != "bootstrapping" {
		t.Fatalf("the secondary's status right after secondary/enable answered: %v (%v), want state bootstrapping", st, err)
	}
	return pri, sec
}

// bootstrapPhase reads the pending activation's phase from the status.
func bootstrapPhase(addr string) (string, map[string]any, error) {
	st, err := readReplStatus(addr)
	if err != nil {
		return "", nil, err
	}
	b, _ := st["bootstrap"].(map[string]any)
	return jsonString(b["phase"]), st, nil
}

func TestActivationResumesAfterTheSecondaryIsKilled(t *testing.T) {
	pri, sec := frozenActivation(t, randomBytes(t, 32))
	sec.p.kill()

	// Restarted with the primary still frozen: the secondary resumes the
	// recorded activation, stays sealed, and says so.
	sec.startAny()
	testutil.Eventually(t, replTimeout, "the restarted secondary shows its running activation", func() error {
		phase, st, err := bootstrapPhase(sec.addr)
		if err != nil {
			return err
		}
		if jsonString(st["state"]) != "bootstrapping" || phase != "running" {
			return fmt.Errorf("status %v, want state bootstrapping, phase running", st)
		}
		return nil
	})
	if healthIs(sec.addr, http.StatusOK) == nil {
		t.Fatal("the resuming secondary serves before its activation completes: it must stay sealed (wiped, 501, or sealed, 503)")
	}
	if strings.Contains(sec.output(), "Unseal Key:") {
		t.Fatal("the restarted dev secondary initialized a fresh cluster instead of resuming its activation")
	}

	pri.p.signal(syscall.SIGCONT)
	testutil.Eventually(t, replTimeout, "the resumed activation complete", func() error {
		return stateIs(sec.addr, "stream-wals")
	})
	waitHealth(t, sec.addr, http.StatusOK)
	S := sec.client(pri.rootID) // the primary's dev root token came with the bundle
	for _, i := range []int{0, bootstrapKeys / 2, bootstrapKeys - 1} {
		waitKV(t, S, fmt.Sprintf("k%03d", i), bootstrapValue(i))
	}
	mustKVPut(t, pri.rootClient(), "after", "resume")
	waitKV(t, S, "after", "resume")
	if _, err := sameData(pri.rootClient(), S); err != nil {
		t.Fatal(err)
	}
}

func TestFailedActivationIsFinishedByARetry(t *testing.T) {
	pri, sec := frozenActivation(t, nil) // shamir: nothing to resume with
	other := startDevServer(t, serverOpts{Name: "dc9"})
	enablePrimary(t, other)
	foreign := secondaryToken(t, other, "dc2")
	sec.p.kill()
	sec.startAny()

	testutil.Eventually(t, replTimeout, "the restarted secondary shows its failed activation", func() error {
		phase, st, err := bootstrapPhase(sec.addr)
		if err != nil {
			return err
		}
		if jsonString(st["state"]) != "bootstrapping" || phase != "failed" || !strings.Contains(jsonString(st["last_error"]), "shamir") {
			return fmt.Errorf("status %v, want state bootstrapping, phase failed, an error naming shamir", st)
		}
		return nil
	})
	anon := sec.client("")
	// The wiped cluster is not up for grabs: no one initializes it...
	if _, err := anon.Sys().Init(&api.InitRequest{SecretShares: 1, SecretThreshold: 1}); !isStatus(err, http.StatusBadRequest) {
		t.Fatalf("sys/init on a cluster with a pending activation: %v, want 400", err)
	}
	// ...nor activates it from another primary without a token.
	if _, err := anon.Logical().Write(pathActivate, map[string]any{"token": foreign}); !isStatus(err, http.StatusForbidden) {
		t.Fatalf("token-less activation with another primary's token: %v, want 403", err)
	}

	pri.p.signal(syscall.SIGCONT)
	R := pri.rootClient()
	if _, err := R.Logical().Write("sys/replication/performance/primary/revoke-secondary", map[string]any{"id": "dc2"}); err != nil {
		t.Fatalf("revoke-secondary: %v", err)
	}
	tok := secondaryToken(t, pri, "dc2")
	anon.SetClientTimeout(activateTimeout)
	if _, err := anon.Logical().Write(pathActivate, map[string]any{"token": tok}); err != nil {
		t.Fatalf("the retry with a new token of the same primary, without a client token: %v", err)
	}
	testutil.Eventually(t, replTimeout, "the retried activation complete", func() error {
		return stateIs(sec.addr, "stream-wals")
	})
	S := sec.client(pri.rootID)
	for _, i := range []int{0, bootstrapKeys - 1} {
		waitKV(t, S, fmt.Sprintf("k%03d", i), bootstrapValue(i))
	}
	if _, err := sameData(R, S); err != nil {
		t.Fatal(err)
	}
}

// isStatus reports whether err is a vault/api error with HTTP status code.
func isStatus(err error, code int) bool {
	var re *api.ResponseError
	return errors.As(err, &re) && re.StatusCode == code
}
