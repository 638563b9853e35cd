package tests

// Running the coffer CLI (the built binary, as a user would) and checking what
// it prints.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
)

// runCLI runs the coffer CLI against addr with token and returns its exit
// code, stdout and stderr. VAULT_* from the test's environment are replaced.
func runCLI(t *testing.T, addr, token, stdin string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, cofferBin, args...)
	env := []string{}
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "VAULT_") {
			env = append(env, e)
		}
	}
	env = append(env, "VAULT_ADDR=http://"+addr, "VAULT_MAX_RETRIES=0")
	if token != "" {
		env = append(env, "VAULT_TOKEN="+token)
	}
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run coffer %v: %v", args, err)
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

// cliDevServer starts a dev server and returns its address. HOME points at
// a fresh directory so that ~/.vault-token is the test's own.
func cliDevServer(t *testing.T) string {
	t.Helper()
	t.Setenv("HOME", t.TempDir())
	addr := testutil.FreeAddr(t)
	startProc(t, addr, "server", "-dev", "-dev-root-token-id=root",
		"-dev-listen-address="+addr, "-dev-nats-listen="+testutil.FreeAddr(t))
	waitHealthCode(t, addr, 200)
	return addr
}

// cliOK runs the CLI and fails the test unless it exits 0.
func cliOK(t *testing.T, addr, token, stdin string, args ...string) string {
	t.Helper()
	code, out, errOut := runCLI(t, addr, token, stdin, args...)
	if code != 0 {
		t.Fatalf("coffer %s: exit %d, want 0\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// cliFail runs the CLI, expects exit code want and returns stderr.
func cliFail(t *testing.T, addr, token, stdin string, want int, args ...string) string {
	t.Helper()
	code, out, errOut := runCLI(t, addr, token, stdin, args...)
	if code != want {
		t.Fatalf("coffer %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, want, out, errOut)
	}
	return errOut
}

func cliContains(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Fatalf("%s lacks %q:\n%s", what, w, got)
		}
	}
}

// cliTableValue returns the Value column of key in a Key/Value table.
func cliTableValue(t *testing.T, out, key string) string {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(key) + `\s{2,}(.*)$`)
	m := re.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no %q row in:\n%s", key, out)
	}
	return strings.TrimSpace(m[1])
}

func cliDecode(t *testing.T, out string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("output is not JSON (%v):\n%s", err, out)
	}
}
