package tests

// The end-to-end suite: every test runs the coffer binary that TestMain builds
// once, as real processes on loopback ports, and drives it with
// github.com/hashicorp/vault/api, raw HTTP, the coffer CLI and NATS clients.
// The helpers live in the *_harness_test.go files, one topic each.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// cofferBin is the coffer binary TestMain builds once for every test.
var cofferBin string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "coffer-e2e-bin-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: temp dir: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	cofferBin = filepath.Join(dir, "coffer")
	build := exec.Command("go", "build", "-o", cofferBin, "./cmd/coffer")
	build.Dir = ".." // the module root: tests run in their package directory
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/coffer failed: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// Deadlines for conditions the tests wait on. Generous: they bound a
// failure, a passing run never waits for them.
const (
	startTimeout = 30 * time.Second
	stopTimeout  = 30 * time.Second
	waitTimeout  = 20 * time.Second
)
