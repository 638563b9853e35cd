package security

// The attack tests of docs/security.md: each runs real coffer processes
// (the binary TestMain builds once) and attacks them over HTTP, raw TCP and
// NATS. The harness is shared by every topic and split by job:
//
//   - harness_main_test.go: the binary, the deadlines, free ports, random bytes;
//   - harness_proc_test.go: one coffer process (start, health, stop, kill);
//   - harness_server_test.go: dev and config-file servers built on it;
//   - harness_client_test.go: vault/api clients, tokens, kv and data snapshots;
//   - harness_repl_test.go: replication status, its recorder, enable and activate.
//
// What only one topic needs stays in that topic's <topic>_harness_test.go
// (the bus attacker, rpc's attacker, the NATS CA, raw HTTP connections).

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// binEnv names a prebuilt coffer binary to attack instead of building this
// tree's (to measure another build, such as main's, with the benchmark).
const binEnv = "SEC_COFFER_BIN"

// cofferBin is the coffer binary every test runs.
var cofferBin string

// Deadlines of the harness. Generous: they bound a failure, a passing run
// never waits for them.
const (
	startTimeout = 60 * time.Second
	// stopTimeout is longer than the server's own 30 s shutdown grace.
	stopTimeout = 45 * time.Second
	// replTimeout bounds a wait that may cross a restart, a reconnect, a
	// merkle sync or a delay an attacker caused.
	replTimeout = 60 * time.Second
	// activateTimeout is the HTTP timeout of secondary/enable.
	activateTimeout = 2 * time.Minute
)

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

// buildAndRun builds ./cmd/coffer into a temp dir (unless binEnv names a
// binary), runs the tests and removes the dir.
func buildAndRun(m *testing.M) int {
	if p := os.Getenv(binEnv); p != "" {
		cofferBin = p
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "coffer-security-bin-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "security: temp dir: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	cofferBin = filepath.Join(dir, "coffer")
	build := exec.Command("go", "build", "-o", cofferBin, "./cmd/coffer")
	build.Dir = filepath.Join("..", "..") // the module root: tests run in their package directory
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "security: go build ./cmd/coffer failed: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// randomBytes returns n random bytes.
func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// randomHex returns n random bytes in hex.
func randomHex(t testing.TB, n int) string {
	t.Helper()
	return hex.EncodeToString(randomBytes(t, n))
}
