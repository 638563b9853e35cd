package security

// One coffer process: started with arguments, waited for until
// /v1/sys/health answers, stopped by SIGTERM (SIGKILL past a deadline) or
// killed with SIGKILL, its output kept and logged when the test fails.

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
)

// procOutput collects a process's output from its copying goroutines.
type procOutput struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (o *procOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

func (o *procOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// proc is one running coffer process.
type proc struct {
	t    testing.TB
	name string // for messages
	cmd  *exec.Cmd
	out  *procOutput
	done chan struct{}
	err  error // the exit, set before done is closed
}

// startProc runs coffer with args and waits until addr answers sys/health
// with wantHealth (with any status when 0), failing at once if the process
// exits. When the test fails its output is logged; at cleanup a process
// still running is stopped.
func startProc(t testing.TB, name, addr string, wantHealth int, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, out: &procOutput{}, done: make(chan struct{})}
	p.cmd = exec.Command(cofferBin, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s (coffer %v): %v", name, args, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("output of %s (coffer %v):\n%s", name, args, p.out.String())
		}
		p.end()
	})
	testutil.Eventually(t, startTimeout, fmt.Sprintf("%s answers sys/health on %s", name, addr), func() error {
		select {
		case <-p.done:
			t.Fatalf("%s exited before serving (%v); output:\n%s", name, p.err, p.out.String())
		default:
		}
		return healthIs(addr, wantHealth)
	})
	return p
}

// healthIs reports nil when addr answers sys/health with want (any status
// when 0).
func healthIs(addr string, want int) error {
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + addr + "/v1/sys/health")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if want != 0 && resp.StatusCode != want {
		return fmt.Errorf("sys/health answered %d, want %d", resp.StatusCode, want)
	}
	return nil
}

// waitHealth waits until addr answers sys/health with want.
func waitHealth(t testing.TB, addr string, want int) {
	t.Helper()
	testutil.Eventually(t, startTimeout, fmt.Sprintf("sys/health on %s answers %d", addr, want), func() error {
		return healthIs(addr, want)
	})
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits for the exit, failing the test when it takes
// longer than stopTimeout; it returns the exit code.
func (p *proc) stop() int {
	p.t.Helper()
	if !p.exited() {
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			p.t.Fatalf("SIGTERM %s: %v", p.name, err)
		}
	}
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		p.kill()
		p.t.Fatalf("%s did not exit within %s of SIGTERM; output:\n%s", p.name, stopTimeout, p.out.String())
	}
	return p.cmd.ProcessState.ExitCode()
}

// kill ends the process with SIGKILL (kill -9: no shutdown at all) and
// waits for the exit.
func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// signal sends sig (SIGSTOP, SIGCONT) to the running process.
func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v to %s: %v", sig, p.name, err)
	}
}

// end stops the process if it still runs (cleanup only): SIGTERM, then
// SIGKILL past stopTimeout, which is an error of the test.
func (p *proc) end() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		p.kill()
		p.t.Errorf("%s did not exit within %s of SIGTERM: killed", p.name, stopTimeout)
	}
}
