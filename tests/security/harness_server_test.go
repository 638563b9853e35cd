package security

// Coffer servers on free loopback ports: dev servers (`coffer server -dev`,
// unsealed, kv version 2 at secret/, the root token known) and config-file
// servers (`coffer server -config=FILE`), each described by the HCL file the
// harness writes into a directory of the test, and restartable on the same
// data and addresses.

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/hashicorp/vault/api"
)

// serverOpts describes the server a test wants. The zero value is an
// in-memory server with an open embedded NATS on a free port.
type serverOpts struct {
	// Name is the cluster_name (the mode's default when empty) and the
	// server's name in messages.
	Name string
	// RootID is a dev server's root token id; random when empty.
	RootID string
	// Bolt stores in a bolt file in the server's directory, so that the
	// server keeps its data across a restart; otherwise the mode's default
	// storage (in memory for a dev server).
	Bolt bool
	// SealKey, when set, adds seal "static" with a key file holding it.
	SealKey []byte
	// Listener holds extra lines of the listener "tcp" block, such as
	// `http_read_timeout = "2s"`.
	Listener string
	// NoNATS runs no embedded NATS server: the server has no bus and
	// replication cannot be enabled.
	NoNATS bool
	// NATSStore sets the embedded NATS's store_dir to <dir>/nats, so that it
	// keeps its streams across a restart (a non-dev server with bolt storage
	// does so without it).
	NATSStore bool
	// Bus holds extra lines of the bus block (credentials, TLS).
	Bus string
	// ExternalNATS, when set, is the URL of a NATS server the test runs:
	// the server connects to it instead of embedding one.
	ExternalNATS string
	// Replication holds the lines of a replication block, such as
	// `activation_wait = "0s"`.
	Replication string
}

// server is one coffer server: its directory, its config file, its
// addresses and the process running it.
type server struct {
	t        testing.TB
	name     string
	dev      bool
	dir      string
	cfgPath  string
	addr     string // the API's host:port, plain HTTP
	natsAddr string // its embedded NATS ("" without)
	rootID   string // the root token: a dev server's, or the one initialize got
	sealKey  []byte
	p        *proc
}

// startDevServer starts `coffer server -dev` with the config of o and waits
// until it is unsealed.
func startDevServer(t testing.TB, o serverOpts) *server {
	t.Helper()
	s := newServer(t, o, true)
	s.start()
	return s
}

// startConfigServer starts `coffer server -config=FILE` with the config of o
// and waits until it answers sys/health (uninitialized, sealed or not).
func startConfigServer(t testing.TB, o serverOpts) *server {
	t.Helper()
	s := newServer(t, o, false)
	s.start()
	return s
}

// newServer writes the config of o into a new directory of the test.
func newServer(t testing.TB, o serverOpts, dev bool) *server {
	t.Helper()
	s := &server{t: t, name: o.Name, dev: dev, dir: t.TempDir(), addr: testutil.FreeAddr(t), sealKey: o.SealKey}
	if s.name == "" {
		s.name = "coffer on " + s.addr
	}
	if dev {
		s.rootID = o.RootID
		if s.rootID == "" {
			s.rootID = "root-" + randomHex(t, 12)
		}
	}
	var b strings.Builder
	if o.Bolt {
		fmt.Fprintf(&b, "storage \"bolt\" {\n  path = %q\n}\n", filepath.Join(s.dir, "coffer.db"))
	}
	fmt.Fprintf(&b, "listener \"tcp\" {\n  address     = %q\n  tls_disable = true\n%s\n}\n", s.addr, o.Listener)
	fmt.Fprintf(&b, "api_addr = %q\n", "http://"+s.addr)
	if o.Name != "" {
		fmt.Fprintf(&b, "cluster_name = %q\n", o.Name)
	}
	if o.SealKey != nil {
		keyFile := filepath.Join(s.dir, "seal.key")
		if err := os.WriteFile(keyFile, o.SealKey, 0o600); err != nil {
			t.Fatalf("write the seal key: %v", err)
		}
		fmt.Fprintf(&b, "seal \"static\" {\n  key_file = %q\n}\n", keyFile)
	}
	switch {
	case o.ExternalNATS != "":
		fmt.Fprintf(&b, "bus {\n  embedded = false\n  url = %q\n%s\n}\n", o.ExternalNATS, o.Bus)
	case o.NoNATS:
		b.WriteString("bus {\n  embedded = false\n}\n")
	default:
		s.natsAddr = testutil.FreeAddr(t)
		fmt.Fprintf(&b, "bus {\n  embedded = true\n  listen   = %q\n", s.natsAddr)
		if o.NATSStore {
			fmt.Fprintf(&b, "  store_dir = %q\n", filepath.Join(s.dir, "nats"))
		}
		fmt.Fprintf(&b, "%s\n}\n", o.Bus)
	}
	if o.Replication != "" {
		fmt.Fprintf(&b, "replication {\n%s\n}\n", o.Replication)
	}
	s.cfgPath = filepath.Join(s.dir, "coffer.hcl")
	if err := os.WriteFile(s.cfgPath, []byte(b.String()), 0o600); err != nil {
		t.Fatalf("write the config: %v", err)
	}
	return s
}

// start runs the server and waits until it serves: a dev server unsealed,
// a config-file server answering at all.
func (s *server) start() {
	s.t.Helper()
	if s.dev {
		s.p = startProc(s.t, s.name, s.addr, http.StatusOK, "server", "-dev", "-dev-root-token-id="+s.rootID, "-config="+s.cfgPath)
		return
	}
	s.p = startProc(s.t, s.name, s.addr, 0, "server", "-config="+s.cfgPath)
}

// startAny runs the server and waits until it answers sys/health with any
// status: a dev server that stays sealed (an activation it resumes) too.
func (s *server) startAny() {
	s.t.Helper()
	args := []string{"server", "-config=" + s.cfgPath}
	if s.dev {
		args = []string{"server", "-dev", "-dev-root-token-id=" + s.rootID, "-config=" + s.cfgPath}
	}
	s.p = startProc(s.t, s.name, s.addr, 0, args...)
}

// restart stops the server (asserting a clean exit) and starts it again on
// the same data and addresses.
func (s *server) restart() {
	s.t.Helper()
	if code := s.p.stop(); code != 0 {
		s.t.Fatalf("%s exited %d on SIGTERM, want 0; output:\n%s", s.name, code, s.p.out.String())
	}
	s.start()
}

// output is what the server's current process printed so far.
func (s *server) output() string { return s.p.out.String() }

// natsURL is the client URL of the server's embedded NATS.
func (s *server) natsURL() string { return "nats://" + s.natsAddr }

// client returns a vault/api client of this server with token.
func (s *server) client(token string) *api.Client {
	s.t.Helper()
	return newClient(s.t, s.addr, token)
}

// rootClient returns a client of this server with its root token.
func (s *server) rootClient() *api.Client {
	s.t.Helper()
	return s.client(s.rootID)
}

// initialize runs sys/init on a config-file server with a static seal,
// waits until it is unsealed and active, and keeps the root token.
func (s *server) initialize() string {
	s.t.Helper()
	res, err := s.client("").Sys().Init(&api.InitRequest{RecoveryShares: 1, RecoveryThreshold: 1})
	if err != nil {
		s.t.Fatalf("sys/init on %s: %v", s.name, err)
	}
	waitHealth(s.t, s.addr, http.StatusOK)
	s.rootID = res.RootToken
	return s.rootID
}

// devUnsealKey is the unseal key a dev server printed in its banner.
func (s *server) devUnsealKey() []byte {
	s.t.Helper()
	for _, line := range strings.Split(s.output(), "\n") {
		if k, ok := strings.CutPrefix(strings.TrimSpace(line), "Unseal Key: "); ok {
			raw, err := base64.StdEncoding.DecodeString(k)
			if err != nil {
				s.t.Fatalf("unseal key %q: %v", k, err)
			}
			return raw
		}
	}
	s.t.Fatalf("no unseal key in the banner of %s", s.name)
	return nil
}
