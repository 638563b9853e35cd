package tests

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/cofferhq/coffer/internal/testutil"
)

// `coffer replication status -watch=200ms` redraws the status in place
// (home the cursor, clear, draw) until interrupted, then exits 0; the
// secondaries' table carries the lag in entries and in time.
func TestCLIReplicationStatusWatch(t *testing.T) {
	t.Parallel()
	rp := fwdPairT(t)
	cmd := exec.Command(cofferBin, "replication", "status", "-watch=200ms")
	cmd.Env = append(os.Environ(), "VAULT_ADDR=http://"+rp.p.addr, "VAULT_TOKEN=root", "VAULT_MAX_RETRIES=0")
	out := &testutil.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	testutil.Eventually(t, waitTimeout, "three frames showing dc2 with its lag", func() error {
		s := out.String()
		frames := strings.Split(s, "\x1b[H\x1b[2J")
		if len(frames) < 4 {
			return fmt.Errorf("%d frames so far", len(frames)-1)
		}
		last := frames[len(frames)-2] // a whole frame
		if !strings.Contains(last, "primary") || !strings.Contains(last, "dc2") || !strings.Contains(last, "Lag (time)") {
			return fmt.Errorf("frame:\n%s", last)
		}
		return nil
	})
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("coffer replication status -watch after SIGINT: %v\n%s", err, out.String())
	}
	if code, _, errOut := runCLI(t, rp.p.addr, "root", "", "replication", "status", "-watch=10ms"); code != 1 || !strings.Contains(errOut, "at least 100ms") {
		t.Fatalf("-watch=10ms: exit %d, %q", code, errOut)
	}
}
