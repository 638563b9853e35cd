// Package chaos is Coffer's fault campaign (docs/reliability.md): a
// replication set of real processes (a primary, a performance secondary and
// a DR secondary, each `coffer server` on bolt, on a three-node NATS
// cluster of nats-server processes) takes writes through vault/api while a
// seeded schedule of faults hits it; a checker then holds the history of
// every acknowledged operation against what the clusters hold.
//
// `go test ./tests/chaos` runs the short campaign (make test); `make chaos`
// runs the long one (COFFER_CHAOS_ROUNDS, COFFER_CHAOS_SEED).
package chaos

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// The binaries TestMain builds for every test: coffer and nats-server (the
// version in go.mod).
var cofferBin, natsBin string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "coffer-chaos-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	cofferBin, natsBin = filepath.Join(dir, "coffer"), filepath.Join(dir, "nats-server")
	for out, pkg := range map[string]string{cofferBin: "./cmd/coffer", natsBin: "github.com/nats-io/nats-server/v2"} {
		build := exec.Command("go", "build", "-o", out, pkg)
		build.Dir = "../.." // the module root
		if b, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "chaos: go build %s: %v\n%s", pkg, err, b)
			return 1
		}
	}
	return m.Run()
}
