package bus_test

// The embedded server's authentication and TLS (bus/auth.go): what a client
// without credentials gets, what the generated client seed opens, and a TLS
// handshake with a CA made here.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/bus"
	"github.com/cofferhq/coffer/bus/bustest"
	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/rs/zerolog"
)

// openSecured opens an embedded server with authentication (NoAuth off) on
// a random port, storing in dir, closed when the test ends.
func openSecured(t *testing.T, cfg bus.Config) *bus.Bus {
	t.Helper()
	cfg.Embedded = true
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.StoreDir == "" {
		cfg.StoreDir = t.TempDir()
	}
	b, err := bus.Open(testCtx(t), cfg, testLogger(t))
	if err != nil {
		t.Fatalf("open an embedded NATS with authentication: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// dialAuthErr connects a plain nats.go client with opts and asserts the
// server refuses it as unauthorized.
func dialAuthErr(t *testing.T, url, what string, opts ...nats.Option) {
	t.Helper()
	nc, err := nats.Connect(url, append([]nats.Option{nats.Timeout(5 * time.Second)}, opts...)...)
	if err == nil {
		nc.Close()
		t.Fatalf("%s: connected to %s, want an authorization violation", what, url)
	}
	if !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("%s: %v, want nats.ErrAuthorization", what, err)
	}
}

func TestEmbeddedRefusesClientsWithoutCredentials(t *testing.T) {
	b := openSecured(t, bus.Config{})
	if !b.Connected() {
		t.Fatal("the embedded server's own connection is not up")
	}
	url := b.ClientURL()
	dialAuthErr(t, url, "no credentials")
	dialAuthErr(t, url, "a user and password", nats.UserInfo("coffer", "coffer"))
	stranger, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := stranger.PublicKey()
	dialAuthErr(t, url, "an nkey the server never issued", nats.Nkey(pub, stranger.Sign))

	// Below nats.go: the protocol itself. The server announces that it
	// requires authentication and answers a CONNECT without credentials,
	// followed at once by a subscription to everything, with an
	// authorization error and a closed connection: no PONG, no message.
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(url, "nats://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	info, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(info, "INFO ") || !strings.Contains(info, `"auth_required":true`) {
		t.Fatalf("the server's INFO %q (%v) does not say auth_required", info, err)
	}
	if _, err := io.WriteString(conn, "CONNECT {\"verbose\":false,\"pedantic\":false}\r\nSUB > 1\r\nPUB coffer.x.rpc.activate 2\r\nhi\r\nPING\r\n"); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(r) // until the server closes the connection
	if !strings.Contains(string(rest), "-ERR 'Authorization Violation'") || strings.Contains(string(rest), "PONG") || strings.Contains(string(rest), "MSG ") {
		t.Fatalf("after an unauthenticated CONNECT and SUB >, the server sent %q: want only -ERR 'Authorization Violation' and a close", rest)
	}
}

func TestEmbeddedClientSeedOpensTheBus(t *testing.T) {
	dir := t.TempDir()
	a := openSecured(t, bus.Config{StoreDir: dir})
	seed := a.ClientSeedFile()
	if seed != filepath.Join(dir, bus.AuthDirName, bus.ClientSeedName) {
		t.Fatalf("ClientSeedFile = %q, want it in %s/%s", seed, dir, bus.AuthDirName)
	}
	for path, want := range map[string]os.FileMode{seed: 0o600, filepath.Dir(seed): 0o700} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Fatalf("%s has mode %#o, want %#o", path, fi.Mode().Perm(), want)
		}
	}
	content, err := os.ReadFile(seed)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(content, []byte("# coffer nkey seed v1\n")) || !bytes.Contains(content, []byte("# public key: "+a.ClientPublicKey()+"\n")) {
		t.Fatalf("seed file does not start with its version line and public key:\n%s", bytes.Split(content, []byte("\nSU"))[0])
	}

	// A secondary's connection: external mode with the copied seed. It sees
	// the embedded server's JetStream and its request/reply.
	ensureWAL(t, a, bus.StreamConfig{})
	publishN(t, a, "coffer.c1.wal", 1, 2)
	c, err := bus.Open(testCtx(t), bus.Config{URL: a.ClientURL(), NKeySeedFile: seed}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	testutil.Eventually(t, 10*time.Second, "the client with the seed connects", connected(c))
	if _, _, msgs, err := c.StreamState(testCtx(t), "COFFER_WAL_c1"); err != nil || msgs != 2 {
		t.Fatalf("the stream seen with the client seed: %d messages, %v", msgs, err)
	}
	if _, err := a.Serve("rpc", func(_ context.Context, d []byte) []byte { return d }); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Request(testCtx(t), "rpc", []byte("ping")); err != nil || string(got) != "ping" {
		t.Fatalf("request with the client seed: %q, %v", got, err)
	}
	// The nats CLI's way: the same file as an nkey option.
	opt, err := nats.NkeyOptionFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(a.ClientURL(), opt, nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatalf("plain nats.go client with the client seed: %v", err)
	}
	nc.Close()

	// The seed is kept with the store: a restart accepts the same copies.
	pub := a.ClientPublicKey()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	a2 := openSecured(t, bus.Config{StoreDir: dir})
	if a2.ClientPublicKey() != pub {
		t.Fatalf("client key after a restart %s, want the stored %s", a2.ClientPublicKey(), pub)
	}
	again, err := os.ReadFile(seed)
	if err != nil || !bytes.Equal(again, content) {
		t.Fatalf("the seed file changed across a restart (%v)", err)
	}
	nc, err = nats.Connect(a2.ClientURL(), opt, nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatalf("the copied seed after a restart: %v", err)
	}
	nc.Close()
}

func TestEmbeddedRefusesCredentialsOthersCanRead(t *testing.T) {
	dir := t.TempDir()
	a := openSecured(t, bus.Config{StoreDir: dir})
	seed := a.ClientSeedFile()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		mode os.FileMode
		want string
	}{
		{seed, 0o644, "chmod 600 " + seed},
		{filepath.Dir(seed), 0o755, "chmod 700 " + filepath.Dir(seed)},
	} {
		if err := os.Chmod(tc.path, tc.mode); err != nil {
			t.Fatal(err)
		}
		_, err := bus.Open(testCtx(t), bus.Config{Embedded: true, Listen: "127.0.0.1:0", StoreDir: dir}, testLogger(t))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("open with %s at mode %#o: %v, want an error saying %q", tc.path, tc.mode, err, tc.want)
		}
		if err := os.Chmod(tc.path, tc.mode&0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(seed, []byte("not a seed\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := bus.Open(testCtx(t), bus.Config{Embedded: true, Listen: "127.0.0.1:0", StoreDir: dir}, testLogger(t))
	if err == nil || !strings.Contains(err.Error(), "holds no nkey user seed") {
		t.Fatalf("open with a damaged seed file: %v", err)
	}
}

func TestEmbeddedNoAuthIsOpen(t *testing.T) {
	b := openSecured(t, bus.Config{NoAuth: true})
	if b.ClientSeedFile() != "" {
		t.Fatalf("an open server has a client seed file %q", b.ClientSeedFile())
	}
	nc, err := nats.Connect(b.ClientURL(), nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatalf("a dev-style open server refused a plain client: %v", err)
	}
	nc.Close()
}

func TestWrongCredentialsRetryAndLogOnce(t *testing.T) {
	serverLog := &testutil.SyncBuffer{}
	a, err := bus.Open(testCtx(t), bus.Config{Embedded: true, Listen: "127.0.0.1:0", StoreDir: t.TempDir()},
		zerolog.New(io.MultiWriter(serverLog, zerolog.NewTestWriter(t))))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()

	wrong, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	s, _ := wrong.Seed()
	file := filepath.Join(t.TempDir(), "old-client.nk")
	if err := os.WriteFile(file, append(s, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	clientLog := &testutil.SyncBuffer{}
	c, err := bus.Open(testCtx(t), bus.Config{URL: a.ClientURL(), NKeySeedFile: file},
		zerolog.New(io.MultiWriter(clientLog, zerolog.NewTestWriter(t))))
	if err != nil {
		t.Fatalf("open with credentials the server refuses should succeed and retry: %v", err)
	}
	defer c.Close()
	testutil.Eventually(t, 20*time.Second, "the server refuses the stale seed four times", func() error {
		if n := strings.Count(serverLog.String(), "authentication error"); n < 4 {
			return fmt.Errorf("%d refusals", n)
		}
		return nil
	})
	if c.Connected() || c.Conn().IsClosed() {
		t.Fatalf("after repeated refusals: connected %v, closed %v; want still retrying", c.Connected(), c.Conn().IsClosed())
	}
	if n := strings.Count(clientLog.String(), "NATS refused this server's credentials"); n != 1 {
		t.Fatalf("the refusal was logged %d times, want once", n)
	}
	if strings.Count(clientLog.String(), string(s)) != 0 || strings.Count(serverLog.String(), string(s)) != 0 {
		t.Fatal("a seed reached the log")
	}
}

func TestEmbeddedTLS(t *testing.T) {
	ca := bustest.NewCA(t)
	a := openSecured(t, bus.Config{TLSCertFile: ca.CertFile, TLSKeyFile: ca.KeyFile})
	url := a.ClientURL()
	if !strings.HasPrefix(url, "tls://127.0.0.1:") {
		t.Fatalf("ClientURL with TLS = %q, want tls://127.0.0.1:<port>", url)
	}
	// The server's own connection (pinned to its certificate) works.
	ensureWAL(t, a, bus.StreamConfig{})
	publishN(t, a, "coffer.c1.wal", 1, 1)

	// A secondary with the CA and the seed: a verified TLS handshake.
	c, err := bus.Open(testCtx(t), bus.Config{URL: url, NKeySeedFile: a.ClientSeedFile(), TLSCAFile: ca.CAFile}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	testutil.Eventually(t, 10*time.Second, "the TLS client with the CA and the seed connects", connected(c))
	if st, err := c.Conn().TLSConnectionState(); err != nil || !st.HandshakeComplete || len(st.VerifiedChains) == 0 {
		t.Fatalf("TLS state (%v): handshake complete %v, %d verified chains; want a verified handshake", err, st.HandshakeComplete, len(st.VerifiedChains))
	}
	if _, _, msgs, err := c.StreamState(testCtx(t), "COFFER_WAL_c1"); err != nil || msgs != 1 {
		t.Fatalf("the stream over TLS: %d messages, %v", msgs, err)
	}

	opt, err := nats.NkeyOptionFromSeed(a.ClientSeedFile())
	if err != nil {
		t.Fatal(err)
	}
	// Without the CA the server's certificate is not trusted.
	if nc, err := nats.Connect(url, opt, nats.Timeout(5*time.Second)); err == nil {
		nc.Close()
		t.Fatal("connected over TLS without trusting the test CA")
	} else if !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("TLS without the CA: %v, want a certificate error", err)
	}
	// TLS does not replace authentication.
	dialAuthErr(t, url, "TLS without credentials", nats.RootCAs(ca.CAFile))
	// Plain text is refused: the nats:// URL is upgraded or fails, never
	// spoken in clear.
	plain := "nats://" + strings.TrimPrefix(url, "tls://")
	nc, err := nats.Connect(plain, opt, nats.RootCAs(ca.CAFile), nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatalf("nats:// URL to a TLS server with the CA: %v", err)
	}
	if !nc.TLSRequired() {
		t.Fatal("the server does not require TLS")
	}
	if st, err := nc.TLSConnectionState(); err != nil || !st.HandshakeComplete {
		t.Fatalf("a nats:// URL connected without TLS (%v)", err)
	}
	nc.Close()
}

// FuzzParseSeed: the seed file reader never panics, and accepts only user
// seeds.
func FuzzParseSeed(f *testing.F) {
	kp, _ := nkeys.CreateUser()
	s, _ := kp.Seed()
	acc, _ := nkeys.CreateAccount()
	as, _ := acc.Seed()
	f.Add(append([]byte("# coffer nkey seed v1\n# public key: U\n"), s...))
	f.Add(as)
	f.Add([]byte("SU"))
	f.Add([]byte("-----BEGIN USER NKEY SEED-----\nSUAAA\n------END USER NKEY SEED------\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pub, err := bus.ParseUserSeedPublic(data)
		if err == nil && !nkeys.IsValidPublicUserKey(pub) {
			t.Fatalf("accepted a seed of public key %q, not a user", pub)
		}
	})
}
