package security

// The embedded NATS server outside dev mode requires credentials
// (docs/security.md, "The bus"): a stranger with nats.go, or speaking the
// protocol by hand, can neither connect nor subscribe to anything; the client
// seed the server generated next to its bolt file opens it, and stays the
// same across a restart. A dev server stays open, and says so.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

func TestNATSEmbeddedServerRefusesStrangers(t *testing.T) {
	// No store_dir: the store and its credentials go next to the bolt file.
	srv := startConfigServer(t, serverOpts{Name: "dc1", Bolt: true})
	url := srv.natsURL()

	// nats.go without credentials, with guessed ones, with an nkey of its own.
	natsRefused(t, url, "no credentials")
	natsRefused(t, url, "a guessed user and password", nats.UserInfo("coffer", "coffer"))
	natsRefused(t, url, "a guessed token", nats.Token("coffer"))
	stranger, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := stranger.PublicKey()
	natsRefused(t, url, "a self-made nkey", nats.Nkey(pub, stranger.Sign))

	// The protocol by hand: CONNECT without credentials, then at once SUB >
	// and a PUB. The server requires authentication, answers with an
	// authorization error and closes: no PONG, no message delivered.
	info, rest := natsRawAttempt(t, srv.natsAddr, `CONNECT {"verbose":false,"pedantic":false}`)
	if !strings.Contains(info, `"auth_required":true`) {
		t.Fatalf("the server's INFO does not require authentication: %s", info)
	}
	if !strings.Contains(rest, "-ERR 'Authorization Violation'") || strings.Contains(rest, "PONG") || strings.Contains(rest, "MSG ") {
		t.Fatalf("unauthenticated CONNECT + SUB >: the server sent %q, want only an authorization violation and a close", rest)
	}

	// Control: the credentials the server generated, next to its bolt file,
	// open it (the refusals above are authentication, not a dead server).
	seed := filepath.Join(srv.dir, "nats", "auth", "client.nk")
	fi, err := os.Stat(seed)
	if err != nil {
		t.Fatalf("the client seed a non-dev server keeps with its state: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s has mode %#o, want 0600", seed, fi.Mode().Perm())
	}
	content, err := os.ReadFile(seed)
	if err != nil {
		t.Fatal(err)
	}
	opt, err := nats.NkeyOptionFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	natsJetStreamWorks(t, url, opt)

	// The output names the file, never the seed in it.
	out := srv.output()
	if !strings.Contains(out, seed) {
		t.Fatalf("the server's log does not say where the client seed is (%s)", seed)
	}
	for _, line := range strings.Split(string(content), "\n") {
		if strings.HasPrefix(line, "SU") && strings.Contains(out, line) {
			t.Fatal("the client seed is in the server's output")
		}
	}

	// Kept with the cluster's state: after a restart the same seed opens it.
	srv.restart()
	again, err := os.ReadFile(seed)
	if err != nil || string(again) != string(content) {
		t.Fatalf("the client seed changed across a restart (%v)", err)
	}
	natsRefused(t, url, "no credentials, after a restart")
	natsJetStreamWorks(t, url, opt)
}

func TestNATSDevServerStaysOpen(t *testing.T) {
	srv := startDevServer(t, serverOpts{RootID: "root"})
	url := srv.natsURL()

	nc, err := natsConnect(url)
	if err != nil {
		t.Fatalf("a plain client on the dev server's NATS: %v", err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync(">")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("dev.hello", []byte("hi")); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := sub.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("subscribe > on the dev server's NATS: %v", err)
		}
		if m.Subject == "dev.hello" {
			break
		}
	}
	natsJetStreamWorks(t, url)

	if out := srv.output(); !strings.Contains(out, "The embedded NATS server on "+url+" takes no credentials") {
		t.Fatalf("the dev banner does not say that its NATS is open:\n%s", out)
	}
}
