package security

// Checks of the bus attacker itself, against an embedded NATS server and
// plain nats.go clients standing in for coffer servers: a defence test that
// passes because its attacker silently does nothing proves nothing.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/cofferhq/coffer/bus/bustest"
	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/nats-io/nats.go"
)

func TestAttackerHarness(t *testing.T) {
	b := bustest.Start(t)
	url := b.ClientURL()
	a := newAttacker(t, url)

	// A "server" in the queue group coffer, answering "pong".
	srv, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if _, err := srv.QueueSubscribe("coffer.c1.rpc.ping", "coffer", func(m *nats.Msg) { _ = m.Respond([]byte("pong")) }); err != nil {
		t.Fatal(err)
	}
	if err := srv.Flush(); err != nil {
		t.Fatal(err)
	}
	cli, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx := context.Background()

	t.Run("capture and scan", func(t *testing.T) {
		secret := []byte("attacker-selftest-0123456789abcdef")
		blob := fmt.Appendf(nil, `{"x":%q,"h":%q}`, base64.StdEncoding.EncodeToString(append([]byte("ab"), secret...)), hex.EncodeToString(secret))
		if err := cli.Publish("app.secret", blob); err != nil {
			t.Fatal(err)
		}
		if err := cli.Flush(); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 10*time.Second, "the attacker captured app.secret", func() error {
			for _, m := range a.Messages() {
				if m.Subject == "app.secret" && bytes.Equal(m.Data, blob) {
					return nil
				}
			}
			return fmt.Errorf("%d messages captured, none on app.secret", len(a.Messages()))
		})
		forms := map[string]bool{}
		for _, h := range a.Find(map[string][]byte{"s": secret}) {
			forms[h.Form] = true
		}
		if !forms["base64"] || !forms["hex"] || !forms["raw"] {
			t.Fatalf("found the secret as %v in a message holding it as base64 at offset 2, hex, and (decoded) raw", forms)
		}
		if hits := a.Find(map[string][]byte{"other": []byte("never-sent-0123456789")}); len(hits) != 0 {
			t.Fatalf("found a secret never sent: %v", hits)
		}
	})

	t.Run("queue group", func(t *testing.T) {
		a.JoinQueueGroups("coffer")
		defer a.LeaveQueueGroups()
		stolen := 0
		for range 10 {
			rctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			if _, err := cli.RequestWithContext(rctx, "coffer.c1.rpc.ping", []byte("ping")); err != nil {
				stolen++
			}
			cancel()
		}
		if stolen < 8 || a.HeldCount("ping") != stolen {
			t.Fatalf("%d of 10 requests went unanswered, the attacker holds %d: want most taken and held", stolen, a.HeldCount("ping"))
		}
		// The attacker's own requests reach the server, not its own members.
		for _, r := range a.ReleaseHeld(ctx) {
			if r.Err != nil || string(r.Data) != "pong" {
				t.Fatalf("a released request: %q, %v (want the server's pong)", r.Data, r.Err)
			}
		}
	})

	t.Run("racing", func(t *testing.T) {
		// A responder slower than the attacker: one that never answers.
		if _, err := srv.Subscribe("coffer.c1.rpc.slow", func(*nats.Msg) {}); err != nil {
			t.Fatal(err)
		}
		if err := srv.Flush(); err != nil {
			t.Fatal(err)
		}
		a.StartRacing(attackerRaceForgedError)
		defer a.StopRacing()
		m, err := cli.Request("coffer.c1.rpc.slow", []byte("x"), 5*time.Second)
		if err != nil {
			t.Fatalf("no reply from the racing attacker: %v", err)
		}
		if !bytes.Contains(m.Data, []byte(`"code":"revoked"`)) || a.Raced("slow") != 1 {
			t.Fatalf("the first reply was %q after %d raced requests: want the attacker's forged revoked", m.Data, a.Raced("slow"))
		}
	})

	t.Run("replay", func(t *testing.T) {
		rs := a.ReplayRequests(ctx, "ping")
		if len(rs) == 0 {
			t.Fatal("nothing replayed")
		}
		for _, r := range rs {
			if r.Err != nil || string(r.Data) != "pong" {
				t.Fatalf("replayed request: %q, %v", r.Data, r.Err)
			}
		}
	})
}
