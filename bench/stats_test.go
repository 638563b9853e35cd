package bench

import (
	"fmt"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
)

func TestDist(t *testing.T) {
	var s Sample
	if d := s.Dist(); d.N != 0 || d.String() != "no samples" {
		t.Fatalf("empty: %+v %q", d, d.String())
	}
	for i := 100; i >= 1; i-- {
		s.Add(time.Duration(i) * time.Millisecond)
	}
	d := s.Dist()
	if d.N != 100 || d.P50 != 51*time.Millisecond || d.P90 != 91*time.Millisecond || d.P99 != 100*time.Millisecond || d.Max != 100*time.Millisecond {
		t.Fatalf("Dist of 1..100 ms = %+v", d)
	}
	if got := d.String(); got != "p50 51.00ms p90 91.00ms p99 100.00ms max 100.00ms (n=100)" {
		t.Fatalf("String = %q", got)
	}
}

func TestProcessCPU(t *testing.T) {
	d, err := ProcessCPU(1)
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	if d < 0 {
		t.Fatalf("CPU of pid 1 = %s", d)
	}
	if _, err := ProcessCPU(1 << 30); err == nil {
		t.Fatal("CPU of a process that does not exist: no error")
	}
}

// ProcessStopped sees a SIGSTOP and a SIGCONT (the catch-up's freeze is
// checked with it).
func TestProcessStopped(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	state := func(want bool) {
		t.Helper()
		testutil.Eventually(t, 5*time.Second, fmt.Sprintf("stopped = %v", want), func() error {
			got, err := ProcessStopped(cmd.Process.Pid)
			if err != nil {
				return err
			}
			if got != want {
				return fmt.Errorf("stopped = %v", got)
			}
			return nil
		})
	}
	state(false)
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	state(true)
	if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	state(false)
}
