package testutil

import (
	"os/exec"
	"strings"
	"testing"
)

// The helper packages for tests stay out of the coffer binary.
func TestNotLinkedIntoCoffer(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool on PATH")
	}
	out, err := exec.Command(goTool, "list", "-deps", "github.com/cofferhq/coffer/cmd/coffer").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		switch dep {
		case "github.com/cofferhq/coffer/internal/testutil", "github.com/cofferhq/coffer/bus/bustest", "github.com/cofferhq/coffer/internal/script":
			t.Errorf("cmd/coffer imports %s, a package for tests only", dep)
		}
	}
}
