package core

import (
	"os/exec"
	"strings"
	"testing"
)

// Core never touches NATS: it asks the replication layer through the
// Replication interface. Neither bus nor any nats-io package may be among
// its dependencies.
func TestCoreImportsNoBus(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool on PATH")
	}
	out, err := exec.Command(goTool, "list", "-deps", "github.com/cofferhq/coffer/core").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep == "github.com/cofferhq/coffer/bus" || strings.HasPrefix(dep, "github.com/nats-io/") {
			t.Errorf("core depends on %s: core must never touch NATS (ask the replication layer instead)", dep)
		}
	}
}
