package tests

// End-to-end tests of the operator CLI commands (status, operator init,
// operator unseal) against a config-file server.

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/internal/testutil"
)

var (
	sealedTrue  = regexp.MustCompile(`(?m)^Sealed\s+true$`)
	sealedFalse = regexp.MustCompile(`(?m)^Sealed\s+false$`)
)

func TestCLI(t *testing.T) {
	t.Parallel()
	n := newNode(t, serverConfig{})
	n.start()

	code, out, errOut := runCLI(t, n.addr, "", "", "status")
	if code != 2 || !sealedTrue.MatchString(out) {
		t.Fatalf("status before init: exit %d, want 2 (sealed); stdout:\n%s\nstderr:\n%s", code, out, errOut)
	}

	code, out, errOut = runCLI(t, n.addr, "", "", "operator", "init", "-key-shares=3", "-key-threshold=2", "-format=json")
	if code != 0 {
		t.Fatalf("operator init: exit %d; stderr:\n%s", code, errOut)
	}
	var init struct {
		KeysB64   []string `json:"unseal_keys_b64"`
		KeysHex   []string `json:"unseal_keys_hex"`
		Shares    int      `json:"unseal_shares"`
		Threshold int      `json:"unseal_threshold"`
		RootToken string   `json:"root_token"`
	}
	if err := json.Unmarshal([]byte(out), &init); err != nil {
		t.Fatalf("operator init -format=json printed something that is not JSON: %v\n%s", err, out)
	}
	if len(init.KeysB64) != 3 || len(init.KeysHex) != 3 || init.Shares != 3 || init.Threshold != 2 || init.RootToken == "" {
		t.Fatalf("operator init JSON: %+v", init)
	}

	code, out, _ = runCLI(t, n.addr, "", "", "status")
	if code != 2 || !regexp.MustCompile(`(?m)^Unseal Progress\s+0/2$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^Total Shares\s+3$`).MatchString(out) {
		t.Fatalf("status after init: exit %d, want 2 with progress 0/2 of 3 shares:\n%s", code, out)
	}

	code, out, errOut = runCLI(t, n.addr, "", "", "operator", "unseal", init.KeysB64[0])
	if code != 0 || !regexp.MustCompile(`(?m)^Unseal Progress\s+1/2$`).MatchString(out) {
		t.Fatalf("operator unseal KEY: exit %d, want 0 with progress 1/2:\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = runCLI(t, n.addr, "", "", "operator", "unseal", "-reset")
	if code != 0 || !regexp.MustCompile(`(?m)^Unseal Progress\s+0/2$`).MatchString(out) {
		t.Fatalf("operator unseal -reset: exit %d, want 0 with progress 0/2:\n%s\n%s", code, out, errOut)
	}
	runCLI(t, n.addr, "", "", "operator", "unseal", init.KeysHex[2])
	code, out, errOut = runCLI(t, n.addr, "", init.KeysB64[1]+"\n", "operator", "unseal") // key from stdin
	if code != 0 || !sealedFalse.MatchString(out) {
		t.Fatalf("operator unseal from stdin: exit %d, want 0 and unsealed:\n%s\n%s", code, out, errOut)
	}

	code, out, _ = runCLI(t, n.addr, "", "", "status")
	for _, want := range []string{`Seal Type\s+shamir`, `Initialized\s+true`, `Sealed\s+false`, `Cluster Name\s+dc1`, `Storage Type\s+bolt`, `HA Enabled\s+false`} {
		if !regexp.MustCompile(`(?m)^` + want + `$`).MatchString(out) {
			t.Fatalf("status when unsealed lacks %q:\n%s", want, out)
		}
	}
	if code != 0 {
		t.Fatalf("status when unsealed: exit %d, want 0", code)
	}
	code, out, _ = runCLI(t, n.addr, "", "", "status", "-format=json")
	var st map[string]any
	if err := json.Unmarshal([]byte(out), &st); err != nil || code != 0 || st["sealed"] != false || st["initialized"] != true {
		t.Fatalf("status -format=json: exit %d, %v:\n%s", code, err, out)
	}

	code, out, _ = runCLI(t, n.addr, init.RootToken, "", "operator", "rotate")
	if code != 0 || !regexp.MustCompile(`(?m)^Key Term\s+2$`).MatchString(out) {
		t.Fatalf("operator rotate: exit %d, want 0 and key term 2:\n%s", code, out)
	}

	code, _, errOut = runCLI(t, n.addr, "", "", "operator", "seal")
	if code != 2 || !strings.Contains(errOut, "permission denied") {
		t.Fatalf("operator seal without a token: exit %d, want 2 (a failed API call, as the vault CLI) with permission denied:\n%s", code, errOut)
	}
	code, out, errOut = runCLI(t, n.addr, init.RootToken, "", "operator", "seal")
	if code != 0 {
		t.Fatalf("operator seal: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, out, _ = runCLI(t, n.addr, "", "", "status"); code != 2 || !sealedTrue.MatchString(out) {
		t.Fatalf("status after seal: exit %d, want 2:\n%s", code, out)
	}

	// Nothing listening: an error, exit 1.
	if code, _, errOut = runCLI(t, testutil.FreeAddr(t), "", "", "status"); code != 1 || errOut == "" {
		t.Fatalf("status against a closed port: exit %d, want 1 with a message; stderr %q", code, errOut)
	}
	// Usage errors: exit 1, as the vault CLI.
	if code, _, _ = runCLI(t, n.addr, "", "", "status", "-format=xml"); code != 1 {
		t.Fatalf("status -format=xml: exit %d, want 1", code)
	}
	if code, out, _ = runCLI(t, n.addr, "", "", "version"); code != 0 || !strings.HasPrefix(out, "Coffer v") {
		t.Fatalf("version: exit %d, %q", code, out)
	}
}

func TestCLIInitTable(t *testing.T) {
	t.Parallel()
	n := newNode(t, serverConfig{})
	n.start()
	code, out, errOut := runCLI(t, n.addr, "", "", "operator", "init")
	if code != 0 {
		t.Fatalf("operator init: exit %d\n%s", code, errOut)
	}
	for i := 1; i <= 5; i++ {
		if !regexp.MustCompile(fmt.Sprintf(`(?m)^Unseal Key %d: \S+$`, i)).MatchString(out) {
			t.Fatalf("operator init output lacks Unseal Key %d:\n%s", i, out)
		}
	}
	m := regexp.MustCompile(`(?m)^Initial Root Token: (\S+)$`).FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "key threshold of 3") {
		t.Fatalf("operator init output lacks the root token or the threshold:\n%s", out)
	}
}
