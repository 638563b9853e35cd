package chaos

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
)

// proc is one process of the campaign (a coffer server or a nats-server)
// that the faults kill, freeze and start again; its output accumulates over
// every start.
type proc struct {
	t    testing.TB
	name string
	bin  string
	args []string
	// ready is waited for after every start (nil: nothing).
	ready func() error
	out   *testutil.SyncBuffer

	cmd  *exec.Cmd
	done chan struct{}
}

func newProc(t testing.TB, name, bin string, args []string, ready func() error) *proc {
	p := &proc{t: t, name: name, bin: bin, args: args, ready: ready, out: &testutil.SyncBuffer{}}
	t.Cleanup(func() {
		if p.running() {
			p.signal(syscall.SIGCONT)
			p.signal(syscall.SIGKILL)
			<-p.done
		}
	})
	return p
}

// start runs the process and waits (bounded) until it is ready.
func (p *proc) start() {
	p.t.Helper()
	fmt.Fprintf(p.out, "--- start %s\n", time.Now().Format(time.RFC3339Nano))
	p.cmd = exec.Command(p.bin, p.args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		p.t.Fatalf("start %s: %v", p.name, err)
	}
	done := make(chan struct{})
	p.done = done
	cmd := p.cmd
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	if p.ready != nil {
		testutil.Eventually(p.t, 60*time.Second, p.name+" ready", func() error {
			if !p.running() {
				return errors.New("exited")
			}
			return p.ready()
		})
	}
}

func (p *proc) running() bool {
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *proc) signal(sig syscall.Signal) {
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(sig)
	}
}

// kill sends SIGKILL and waits for the exit.
func (p *proc) kill() {
	if !p.running() {
		return
	}
	p.signal(syscall.SIGCONT) // a frozen process dies only once it runs
	p.signal(syscall.SIGKILL)
	<-p.done
	fmt.Fprintf(p.out, "--- killed %s\n", time.Now().Format(time.RFC3339Nano))
}

// healthy is a ready check: the API answers sys/health with 200.
func healthy(addr string) func() error {
	hc := &http.Client{Timeout: 2 * time.Second}
	return func() error {
		resp, err := hc.Get("http://" + addr + "/v1/sys/health")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("sys/health %d", resp.StatusCode)
		}
		return nil
	}
}

// writeFile writes data to path or fails the test.
func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
