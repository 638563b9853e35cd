package core

import (
	"strings"
	"testing"

	"github.com/cofferhq/coffer/internal/testutil"
)

// Core never touches NATS: it asks the replication layer through the
// Replication interface. Neither bus nor any nats-io package may be among
// its dependencies.
func TestCoreImportsNoBus(t *testing.T) {
	for _, dep := range testutil.Deps(t, "github.com/cofferhq/coffer/core") {
		if dep == "github.com/cofferhq/coffer/bus" || strings.HasPrefix(dep, "github.com/nats-io/") {
			t.Errorf("core depends on %s: core must never touch NATS (ask the replication layer instead)", dep)
		}
	}
}
