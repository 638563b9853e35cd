package security

// Issue 12, DR replication: a DR secondary receives the replicated and the
// local classes (tokens too), serves no client request but sys/health (472),
// seal-status and sys/replication/*.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/cofferhq/coffer/bus"
	"github.com/cofferhq/coffer/bus/bustest"
	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/hashicorp/vault/api"
)

const (
	pathDREnablePrimary = "sys/replication/dr/primary/enable"
	pathDRToken         = "sys/replication/dr/primary/secondary-token"
	pathDRActivate      = "sys/replication/dr/secondary/enable"
	pathDRPromote       = "sys/replication/dr/secondary/promote"
)

// drStatus reads sys/replication/status (unauthenticated) and returns its
// "dr" part.
func drStatus(t testing.TB, s *server) map[string]any {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + s.addr + "/v1/sys/replication/status")
	if err != nil {
		t.Fatalf("status of %s: %v", s.name, err)
	}
	defer resp.Body.Close()
	var env struct {
		Data struct {
			DR map[string]any `json:"dr"`
		} `json:"data"`
	}
	d := json.NewDecoder(resp.Body)
	d.UseNumber()
	if err := d.Decode(&env); err != nil {
		t.Fatalf("status of %s: %d %v", s.name, resp.StatusCode, err)
	}
	return env.Data.DR
}

// drSet is a primary with a DR secondary (and the NATS of the test's own).
type drSet struct {
	opts     serverOpts
	pri, drs *server
	ns       *bus.Bus
}

func startDRSet(t *testing.T) *drSet {
	t.Helper()
	ns := bustest.StartConfig(t, bus.Config{Listen: testutil.FreeAddr(t), StoreDir: t.TempDir()})
	opts := serverOpts{Bolt: true, SealKey: randomBytes(t, 32), ExternalNATS: ns.ClientURL()}
	named := func(n string) serverOpts { o := opts; o.Name = n; return o }
	d := &drSet{opts: opts, ns: ns, pri: startDevServer(t, named("dc1")), drs: startDevServer(t, named("dr1"))}
	R := d.pri.rootClient()
	if _, err := R.Logical().Write(pathDREnablePrimary, nil); err != nil {
		t.Fatalf("dr/primary/enable: %v", err)
	}
	s, err := R.Logical().Write(pathDRToken, map[string]any{"id": "dr1"})
	if err != nil || s.WrapInfo == nil {
		t.Fatalf("dr/primary/secondary-token: %v %+v", err, s)
	}
	c := d.drs.rootClient()
	c.SetClientTimeout(activateTimeout)
	if _, err := c.Logical().Write(pathDRActivate, map[string]any{"token": s.WrapInfo.Token}); err != nil {
		t.Fatalf("dr/secondary/enable: %v", err)
	}
	testutil.Eventually(t, replTimeout, "the DR secondary streaming", func() error {
		if st := drStatus(t, d.drs); jsonString(st["mode"]) != "secondary" || jsonString(st["state"]) != "stream-wals" {
			return fmt.Errorf("DR status %v", st)
		}
		return nil
	})
	return d
}

func TestDRSecondaryServesNothingAndHoldsEverything(t *testing.T) {
	d := startDRSet(t)
	P := d.pri.rootClient()
	mustKVPut(t, P, "app", "v1")
	// A token made on the primary: local, so only DR secondaries get it.
	tok, err := P.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"default"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := P.Sys().EnableAuthWithOptions("userpass", &api.EnableAuthOptions{Type: "userpass"}); err != nil {
		t.Fatal(err)
	}
	if _, err := P.Logical().Write("auth/userpass/users/alice", map[string]any{"password": "pw"}); err != nil {
		t.Fatal(err)
	}
	drCaughtUp(t, d.pri, d.drs)
	if _, err := d.drs.client("").Logical().Write("auth/userpass/login/alice", map[string]any{"password": "pw"}); !isStatus(err, http.StatusBadRequest) {
		t.Fatalf("a login on the DR secondary: %v, want 400", err)
	}
	D := d.drs.client(d.pri.rootID)
	if _, err := D.Logical().Read("secret/data/app"); !isStatus(err, http.StatusBadRequest) {
		t.Fatalf("a KV read on the DR secondary: %v, want 400", err)
	}
	if _, err := d.drs.client("").Logical().Write("auth/token/lookup-self", nil); !isStatus(err, http.StatusBadRequest) {
		t.Fatalf("a request without a token on the DR secondary: %v, want 400", err)
	}
	if err := healthIs(d.drs.addr, 472); err != nil {
		t.Fatalf("sys/health of the DR secondary: %v", err)
	}
	h, err := d.drs.client("").Sys().Health()
	if err != nil || h.ReplicationDRMode != "secondary" {
		t.Fatalf("sys/health body of the DR secondary: %+v %v", h, err)
	}
	// Everything arrived, the token too (checked on promotion below).
	testutil.Eventually(t, replTimeout, "the DR secondary applied the primary's writes", func() error {
		st := drStatus(t, d.drs)
		ps := drStatus(t, d.pri)
		if jsonString(st["last_remote_wal"]) != jsonString(ps["last_wal"]) {
			return fmt.Errorf("DR secondary at %s, primary at %s", jsonString(st["last_remote_wal"]), jsonString(ps["last_wal"]))
		}
		return nil
	})
	_ = tok
	if st := drStatus(t, d.pri); len(st["known_secondaries"].([]any)) != 1 {
		t.Fatalf("the DR primary's status: %v", st)
	}
	if ps := d.pri.replStatus(); jsonString(ps["mode"]) != "disabled" {
		t.Fatalf("a DR-only primary's performance status: %v", ps)
	}
}
