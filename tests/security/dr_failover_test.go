package security

// Issue 12, the backup site: the primary dies, its DR secondary is promoted
// with a DR operation token (generated from the primary's unseal key share,
// or made on the primary before the failover and replicated), keeps every
// write it had applied and every token; the performance secondary follows it
// with update-primary, and the old primary, back, is fenced until demoted and
// pointed at the new one.

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/cofferhq/coffer/bus"
	"github.com/cofferhq/coffer/bus/bustest"
	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/hashicorp/vault/api"
)

// activateDR makes drs a DR secondary of pri, named id.
func activateDR(t *testing.T, pri, drs *server, id string) {
	t.Helper()
	s, err := pri.rootClient().Logical().Write(pathDRToken, map[string]any{"id": id})
	if err != nil || s.WrapInfo == nil {
		t.Fatalf("dr/primary/secondary-token: %v %+v", err, s)
	}
	c := drs.rootClient()
	c.SetClientTimeout(activateTimeout)
	if _, err := c.Logical().Write(pathDRActivate, map[string]any{"token": s.WrapInfo.Token}); err != nil {
		t.Fatalf("dr/secondary/enable: %v", err)
	}
	testutil.Eventually(t, replTimeout, "the DR secondary streaming", func() error {
		if st := drStatus(t, drs); jsonString(st["mode"]) != "secondary" || jsonString(st["state"]) != "stream-wals" {
			return fmt.Errorf("DR status %v", st)
		}
		return nil
	})
}

// drCaughtUp waits until drs applied everything pri committed.
func drCaughtUp(t *testing.T, pri, drs *server) {
	t.Helper()
	testutil.Eventually(t, replTimeout, "the DR secondary caught up", func() error {
		d, p := jsonString(drStatus(t, drs)["last_remote_wal"]), jsonString(drStatus(t, pri)["last_wal"])
		if d != p {
			return fmt.Errorf("DR secondary at %s, primary at %s", d, p)
		}
		return nil
	})
}

// drOperationToken runs generate-operation-token on drs with one key share
// and decodes the token with the OTP.
func drOperationToken(t *testing.T, drs *server, share []byte) string {
	t.Helper()
	sys := drs.client("").Sys()
	st, err := sys.GenerateDROperationTokenInit("", "")
	if err != nil {
		t.Fatalf("generate-operation-token/attempt: %v", err)
	}
	done, err := sys.GenerateDROperationTokenUpdate(base64.StdEncoding.EncodeToString(share), st.Nonce)
	if err != nil || !done.Complete {
		t.Fatalf("generate-operation-token/update: %v %+v", err, done)
	}
	enc, err := base64.RawStdEncoding.DecodeString(done.EncodedToken)
	if err != nil || len(enc) != len(st.OTP) {
		t.Fatalf("encoded token %q: %v", done.EncodedToken, err)
	}
	for i := range enc {
		enc[i] ^= st.OTP[i]
	}
	return string(enc)
}

func promoteDR(t *testing.T, drs *server, opToken string) {
	t.Helper()
	if _, err := drs.client("").Logical().Write(pathDRPromote, map[string]any{"dr_operation_token": opToken}); err != nil {
		t.Fatalf("dr/secondary/promote: %v", err)
	}
	testutil.Eventually(t, replTimeout, "the promoted cluster a running primary", func() error {
		st := drs.replStatus()
		if jsonString(st["mode"]) != "primary" || jsonString(st["state"]) != "running" {
			return fmt.Errorf("status %v", st)
		}
		return nil
	})
}

func TestDRFailoverWithATokenFromUnsealShares(t *testing.T) {
	ns := bustest.StartConfig(t, bus.Config{Listen: testutil.FreeAddr(t), StoreDir: t.TempDir()})
	named := func(n string) serverOpts { return serverOpts{Name: n, Bolt: true, ExternalNATS: ns.ClientURL()} }
	pri, s1, drs := startDevServer(t, named("dc1")), startDevServer(t, named("dc2")), startDevServer(t, named("dr1"))
	R := pri.rootClient()
	enablePrimary(t, pri)
	if _, err := R.Logical().Write(pathDREnablePrimary, nil); err != nil {
		t.Fatalf("dr/primary/enable: %v", err)
	}
	if err := activate(s1, secondaryToken(t, pri, "dc2")); err != nil {
		t.Fatalf("activate dc2: %v", err)
	}
	activateDR(t, pri, drs, "dr1")
	// Before the writes dc2 and dr1 are awaited for: the public key it
	// publishes reaches both by then, its signing key only dr1.
	oldBatch, err := R.Auth().Token().CreateOrphan(&api.TokenCreateRequest{Type: "batch", Policies: []string{"default"}, TTL: "1h"})
	if err != nil {
		t.Fatalf("a batch token on the primary: %v", err)
	}
	for i := range 20 {
		mustKVPut(t, R, fmt.Sprintf("k%02d", i), "v1")
	}
	tok, err := R.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"default"}})
	if err != nil {
		t.Fatal(err)
	}
	drCaughtUp(t, pri, drs)
	waitKV(t, s1.client(pri.rootID), "k19", "v1")
	share := pri.devUnsealKey()

	pri.p.kill()
	promoteDR(t, drs, drOperationToken(t, drs, share))
	N := drs.client(pri.rootID) // the primary's dev root token came along, like every token
	for i := range 20 {
		if err := kvHas(N, fmt.Sprintf("k%02d", i), "v1"); err != nil {
			t.Fatalf("a write the DR secondary had applied, after the promotion: %v", err)
		}
	}
	if _, err := drs.client(tok.Auth.ClientToken).Auth().Token().LookupSelf(); err != nil {
		t.Fatalf("a token issued on the old primary, on the promoted cluster: %v", err)
	}
	// The promoted cluster holds the old primary's batch signing key (local
	// class, shipped by DR replication): its batch tokens, old and new,
	// verify wherever the old primary's did.
	newBatch, err := N.Auth().Token().CreateOrphan(&api.TokenCreateRequest{Type: "batch", Policies: []string{"default"}, TTL: "1h"})
	if err != nil {
		t.Fatalf("a batch token on the promoted cluster: %v", err)
	}
	batches := map[string]string{"the old primary's": oldBatch.Auth.ClientToken, "the promoted cluster's": newBatch.Auth.ClientToken}
	for name, b := range batches {
		if _, err := drs.client(b).Auth().Token().LookupSelf(); err != nil {
			t.Fatalf("%s batch token on the promoted cluster: %v", name, err)
		}
	}
	mustKVPut(t, N, "after", "promotion")

	// The performance secondary follows the promoted primary, without a wipe.
	drs.rootID = pri.rootID
	if _, err := N.Logical().Write("sys/replication/performance/primary/revoke-secondary", map[string]any{"id": "dc2"}); err != nil {
		t.Fatalf("revoke dc2 on the new primary: %v", err)
	}
	S1 := s1.client(pri.rootID)
	if _, err := S1.Logical().Write(pathUpdatePrimary, map[string]any{"token": secondaryToken(t, drs, "dc2")}); err != nil {
		t.Fatalf("update-primary on dc2: %v", err)
	}
	waitKV(t, S1, "after", "promotion")
	testutil.Eventually(t, replTimeout, "dc2 streaming from the promoted primary", func() error { return stateIs(s1.addr, "stream-wals") })
	moved, _ := strconv.Atoi(jsonString(s1.replStatus()["last_sync_keys"]))
	t.Logf("update-primary on dc2: the merkle diff moved %d storage keys", moved)
	if moved > 10 {
		t.Fatalf("the merkle diff moved %d keys: dc2 had all but the last writes", moved)
	}
	for name, b := range batches {
		if _, err := s1.client(b).Auth().Token().LookupSelf(); err != nil {
			t.Fatalf("%s batch token on dc2, following the promoted cluster: %v", name, err)
		}
	}

	// The old primary comes back: fenced, then demoted and pointed at the new one.
	pri.startAny()
	if _, err := pri.client("").Sys().Unseal(base64.StdEncoding.EncodeToString(share)); err != nil {
		t.Fatalf("unseal the old primary: %v", err)
	}
	P := pri.rootClient()
	testutil.Eventually(t, replTimeout, "the old primary fenced", func() error {
		if s := jsonString(pri.replStatus()["state"]); s != "fenced" {
			return fmt.Errorf("state %q", s)
		}
		return nil
	})
	if err := kvPut(P, "split", "brain"); !isStatus(err, http.StatusServiceUnavailable) || !strings.Contains(err.Error(), drs.addr) {
		t.Fatalf("a write on the fenced old primary: %v, want 503 naming %s", err, drs.addr)
	}
	if _, err := P.Logical().Write(pathDemote, nil); err != nil {
		t.Fatalf("demote the old primary: %v", err)
	}
	if _, err := P.Logical().Write(pathUpdatePrimary, map[string]any{"token": secondaryToken(t, drs, "dc1")}); err != nil {
		t.Fatalf("update-primary on the old primary: %v", err)
	}
	mustKVPut(t, N, "rejoined", "yes")
	waitKV(t, P, "rejoined", "yes")
	testutil.Eventually(t, replTimeout, "the old primary equal to the new", func() error {
		_, err := sameData(N, P)
		return err
	})
	for name, b := range batches {
		if _, err := pri.client(b).Auth().Token().LookupSelf(); err != nil {
			t.Fatalf("%s batch token on the old primary, now a secondary of the promoted cluster: %v", name, err)
		}
	}
}

// The second way to promote: a DR operation token made on the primary before
// the failover (an orphan service token with a policy that allows promote;
// tokens are local, so it reaches DR secondaries only), and a static seal
// this time. Batch tokens made on the primary work after the promotion too:
// the promoted cluster holds the primary's signing key (local class, which DR
// ships) and its published public key, and a child's parent came along with
// the tokens.
func TestDRFailoverWithATokenMadeOnThePrimary(t *testing.T) {
	d := startDRSet(t)
	R := d.pri.rootClient()
	if err := R.Sys().PutPolicy("dr-ops", `path "sys/replication/dr/secondary/promote" { capabilities = ["update"] }
path "sys/replication/dr/secondary/update-primary" { capabilities = ["update"] }`); err != nil {
		t.Fatal(err)
	}
	if err := R.Sys().PutPolicy("app-read", `path "secret/data/app" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	batches := map[string]string{}
	for name, create := range map[string]func(*api.TokenCreateRequest) (*api.Secret, error){
		"orphan": R.Auth().Token().CreateOrphan, "child": R.Auth().Token().Create,
	} {
		s, err := create(&api.TokenCreateRequest{Type: "batch", Policies: []string{"app-read"}, TTL: "1h"})
		if err != nil || !strings.HasPrefix(s.Auth.ClientToken, "hvb.") {
			t.Fatalf("an %s batch token on the primary: %v %+v", name, err, s)
		}
		batches[name] = s.Auth.ClientToken
	}
	// The batch DR operation token, as Vault's docs make it: an orphan batch
	// token with a policy that allows promote and update-primary.
	op, err := R.Auth().Token().CreateOrphan(&api.TokenCreateRequest{Type: "batch", Policies: []string{"dr-ops"}, NoDefaultPolicy: true, TTL: "8h"})
	if err != nil || !strings.HasPrefix(op.Auth.ClientToken, "hvb.") {
		t.Fatalf("the batch DR operation token: %v %+v", err, op)
	}
	weak, err := R.Auth().Token().CreateOrphan(&api.TokenCreateRequest{Policies: []string{"default"}})
	if err != nil {
		t.Fatal(err)
	}
	mustKVPut(t, R, "app", "before the failover")
	// Writes in parallel: the primary ships them in batches, which the DR
	// secondary applies one WAL entry each, so its own WAL index stays
	// behind the primary's.
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 40 {
				if err := kvPut(R, fmt.Sprintf("p%d-%d", w, i), "x"); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	// A client's read-after-write header from the old primary.
	resp, err := R.Logical().WriteRaw("secret/data/idx", []byte(`{"data":{"v":"1"}}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	index := resp.Header.Get("X-Vault-Index")
	if index == "" {
		t.Fatal("no X-Vault-Index on a write")
	}
	drCaughtUp(t, d.pri, d.drs)
	d.pri.p.kill()

	if _, err := d.drs.client("").Logical().Write(pathDRPromote, map[string]any{"dr_operation_token": weak.Auth.ClientToken}); !isStatus(err, http.StatusForbidden) {
		t.Fatalf("promote with a token without the policy: %v, want 403", err)
	}
	if _, err := d.drs.client("").Logical().Write(pathDRPromote, map[string]any{"dr_operation_token": "dro.nottherightone0000000000"}); !isStatus(err, http.StatusForbidden) {
		t.Fatalf("promote with a made-up token: %v, want 403", err)
	}
	promoteDR(t, d.drs, op.Auth.ClientToken)
	N := d.drs.client(d.pri.rootID)
	if err := kvHas(N, "app", "before the failover"); err != nil {
		t.Fatalf("on the promoted cluster: %v", err)
	}
	if _, err := d.drs.client(weak.Auth.ClientToken).Auth().Token().LookupSelf(); err != nil {
		t.Fatalf("a token issued on the old primary, on the promoted cluster: %v", err)
	}
	for name, tok := range batches {
		if err := kvHas(d.drs.client(tok), "app", "before the failover"); err != nil {
			t.Fatalf("an %s batch token of the old primary, reading on the promoted cluster: %v", name, err)
		}
		if err := kvHas(d.drs.client(tok), "after", "promotion"); !isStatus(err, http.StatusForbidden) {
			t.Fatalf("an %s batch token of the old primary, outside its policy: %v, want 403", name, err)
		}
	}
	mustKVPut(t, N, "after", "promotion")
	// The old header names the old generation: the promoted cluster's WAL
	// indexes do not compare with it, and it does not hold the read (412).
	withIndex, err := N.Clone()
	if err != nil {
		t.Fatal(err)
	}
	withIndex.SetToken(N.Token())
	withIndex.AddHeader("X-Vault-Index", index)
	got, err := withIndex.Logical().ReadRaw("secret/data/idx")
	if err != nil {
		t.Fatalf("a read with the old primary's X-Vault-Index on the promoted cluster: %v", err)
	}
	got.Body.Close()
}
