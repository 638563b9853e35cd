package tests

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// hvac, the Python client of Vault (Debian's python3-hvac, installed by
// scripts/hvac.sh, which make test runs and passes as COFFERTEST_HVAC_PYTHON),
// drives the calls its documentation shows for transit, AppRole and token
// roles (testdata/hvac_calls.py) against a dev server.
func TestHVACDocumentedCalls(t *testing.T) {
	t.Parallel()
	py := os.Getenv("COFFERTEST_HVAC_PYTHON")
	if py == "" {
		t.Skip("COFFERTEST_HVAC_PYTHON is not set: run make test, or set it to the output of scripts/hvac.sh")
	}
	p, _ := devServer(t)
	cmd := exec.Command(py, "testdata/hvac_calls.py")
	cmd.Env = append(os.Environ(), "VAULT_ADDR=http://"+p.addr, "VAULT_TOKEN=root")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "hvac: all calls passed") {
		t.Fatalf("hvac_calls.py: %v\n%s", err, out)
	}
}
