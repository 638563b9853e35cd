package testutil

import "testing"

// The helper packages for tests stay out of the coffer binary.
func TestNotLinkedIntoCoffer(t *testing.T) {
	for _, dep := range Deps(t, "github.com/cofferhq/coffer/cmd/coffer") {
		switch dep {
		case "github.com/cofferhq/coffer/internal/testutil", "github.com/cofferhq/coffer/bus/bustest", "github.com/cofferhq/coffer/internal/script", "github.com/cofferhq/coffer/core/coretest",
			"github.com/cofferhq/coffer/engines/internal/enginetest":
			t.Errorf("cmd/coffer imports %s, a package for tests only", dep)
		}
	}
}
