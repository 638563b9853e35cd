package security

// The harness of the HTTP attack tests (http_*_test.go): the coffer binary,
// built once per test process, dev servers on free ports with listener
// settings of the test's choosing, a root client, tokens holding a policy,
// raw HTTP and raw TCP clients, and the server process's memory.
//
// Every name here starts with httpAttack: other topics share the package.

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/hashicorp/vault/api"
)

// Deadlines of the harness: they bound a failure, a passing run never waits
// for them.
const (
	httpAttackStartTimeout = 30 * time.Second
	httpAttackStopTimeout  = 30 * time.Second
)

// httpAttackBinEnv names a prebuilt coffer binary to attack instead of
// building this tree's (to measure another build, such as main's).
const httpAttackBinEnv = "SEC_HTTP_COFFER_BIN"

var httpAttackBuild struct {
	once sync.Once
	path string
	err  error
}

// httpAttackBinary returns the coffer binary, building ./cmd/coffer once per
// test process into a directory named after the process; directories left
// by processes that no longer run are removed first.
func httpAttackBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(httpAttackBinEnv); p != "" {
		return p
	}
	httpAttackBuild.once.Do(func() {
		stale, _ := filepath.Glob(filepath.Join(os.TempDir(), "coffer-sec-http-*"))
		for _, d := range stale {
			pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(d), "coffer-sec-http-"))
			if err == nil && pid != os.Getpid() && syscall.Kill(pid, 0) != nil {
				_ = os.RemoveAll(d)
			}
		}
		dir := filepath.Join(os.TempDir(), fmt.Sprintf("coffer-sec-http-%d", os.Getpid()))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			httpAttackBuild.err = err
			return
		}
		httpAttackBuild.path = filepath.Join(dir, "coffer")
		build := exec.Command("go", "build", "-o", httpAttackBuild.path, "./cmd/coffer")
		build.Dir = "../.." // the module root
		if out, err := build.CombinedOutput(); err != nil {
			httpAttackBuild.err = fmt.Errorf("go build ./cmd/coffer: %v\n%s", err, out)
		}
	})
	if httpAttackBuild.err != nil {
		t.Fatal(httpAttackBuild.err)
	}
	return httpAttackBuild.path
}

func httpAttackFreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

func httpAttackRandom(t testing.TB) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// httpAttackOutput collects a process's output from its copying goroutines.
type httpAttackOutput struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (o *httpAttackOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

func (o *httpAttackOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// httpAttackServer is one `coffer server -dev` process: in memory, unsealed,
// kv version 2 at secret/, the root token known.
type httpAttackServer struct {
	t    testing.TB
	addr string
	root string
	cmd  *exec.Cmd
	out  *httpAttackOutput
	done chan struct{}
}

// httpAttackServerOpts describes the server a test wants.
type httpAttackServerOpts struct {
	// Listener holds extra lines of the listener "tcp" block, such as
	// `http_read_timeout = "2s"`.
	Listener string
	// NATS runs the embedded NATS server (on a free port): replication can
	// then be enabled. Without it the server has no bus.
	NATS bool
}

// httpAttackStart starts a dev server and waits until it serves.
func httpAttackStart(t testing.TB, o httpAttackServerOpts) *httpAttackServer {
	t.Helper()
	s := &httpAttackServer{t: t, addr: httpAttackFreeAddr(t), root: httpAttackRandom(t), out: &httpAttackOutput{}, done: make(chan struct{})}
	cfg := "listener \"tcp\" {\n" + o.Listener + "\n}\n"
	if !o.NATS {
		cfg += "bus {\n  embedded = false\n}\n"
	}
	cfgPath := filepath.Join(t.TempDir(), "extra.hcl")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s.cmd = exec.Command(httpAttackBinary(t), "server", "-dev", "-dev-root-token-id="+s.root,
		"-dev-listen-address="+s.addr, "-dev-nats-listen="+httpAttackFreeAddr(t), "-config="+cfgPath)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start coffer: %v", err)
	}
	go func() {
		_ = s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("coffer output:\n%s", s.out.String())
		}
		s.stop()
	})
	hc := &http.Client{Timeout: 2 * time.Second}
	testutil.Eventually(t, httpAttackStartTimeout, "the dev server serves on "+s.addr, func() error {
		select {
		case <-s.done:
			t.Fatalf("coffer exited before serving; output:\n%s", s.out.String())
		default:
		}
		resp, err := hc.Get("http://" + s.addr + "/v1/sys/health")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("sys/health %d", resp.StatusCode)
		}
		return nil
	})
	return s
}

func (s *httpAttackServer) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(httpAttackStopTimeout):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// client returns a vault/api client with token, without retries.
func (s *httpAttackServer) client(token string) *api.Client {
	s.t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = "http://" + s.addr
	cfg.MaxRetries = 0
	cfg.Timeout = 30 * time.Second
	c, err := api.NewClient(cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	c.SetToken(token)
	return c
}

// tokenWithPolicy writes policy under name (as root) and returns a new
// token holding only it.
func (s *httpAttackServer) tokenWithPolicy(name, policy string) string {
	s.t.Helper()
	root := s.client(s.root)
	if err := root.Sys().PutPolicy(name, policy); err != nil {
		s.t.Fatalf("write policy %s: %v", name, err)
	}
	sec, err := root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{name}, NoDefaultPolicy: true})
	if err != nil {
		s.t.Fatalf("create a token with policy %s: %v", name, err)
	}
	return sec.Auth.ClientToken
}

// httpAttackResponse is a response as raw HTTP sees it.
type httpAttackResponse struct {
	code int
	body string
}

// raw sends one request with net/http, the path exactly as given (escapes,
// "//", "/./" and trailing slashes included).
func (s *httpAttackServer) raw(method, path, token string, body io.Reader) httpAttackResponse {
	s.t.Helper()
	req, err := http.NewRequest(method, "http://"+s.addr+path, body)
	if err != nil {
		s.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return httpAttackResponse{code: resp.StatusCode, body: string(b)}
}

// rssKiB is the server process's resident set (VmRSS) and its peak (VmHWM).
func (s *httpAttackServer) rssKiB() (rss, peak int64) {
	s.t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		s.t.Fatalf("read the server's /proc status: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		n, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = n
		case "VmHWM:":
			peak = n
		}
	}
	return rss, peak
}

// httpAttackConn is a raw TCP connection to the server on which a test
// writes a request by hand and reads the answer with a deadline.
type httpAttackConn struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

func (s *httpAttackServer) dial() *httpAttackConn {
	s.t.Helper()
	c, err := net.DialTimeout("tcp", s.addr, 5*time.Second)
	if err != nil {
		s.t.Fatalf("dial %s: %v", s.addr, err)
	}
	s.t.Cleanup(func() { _ = c.Close() })
	return &httpAttackConn{t: s.t, c: c, br: bufio.NewReader(c)}
}

// headers writes a request line and headers; the body follows with write.
func (h *httpAttackConn) headers(method, path string, hdr map[string]string) {
	h.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: coffer\r\n", method, path)
	for k, v := range hdr {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	b.WriteString("\r\n")
	h.write([]byte(b.String()))
}

func (h *httpAttackConn) write(p []byte) {
	h.t.Helper()
	_ = h.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := h.c.Write(p); err != nil {
		h.t.Fatalf("write %d bytes: %v", len(p), err)
	}
}

// chunk writes p as one chunk of a chunked body.
func (h *httpAttackConn) chunk(p []byte) {
	h.t.Helper()
	h.write(fmt.Appendf(nil, "%x\r\n%s\r\n", len(p), p))
}

// response reads one response, failing the test if none arrives by
// deadline.
func (h *httpAttackConn) response(deadline time.Time) httpAttackResponse {
	h.t.Helper()
	_ = h.c.SetReadDeadline(deadline)
	resp, err := http.ReadResponse(h.br, nil)
	if err != nil {
		h.t.Fatalf("no response by the deadline: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return httpAttackResponse{code: resp.StatusCode, body: string(b)}
}

// closedBy reports whether the server closed the connection by deadline:
// reading gets EOF (or a reset) rather than a timeout.
func (h *httpAttackConn) closedBy(deadline time.Time) error {
	_ = h.c.SetReadDeadline(deadline)
	_, err := io.Copy(io.Discard, h.br)
	var ne net.Error
	switch {
	case err == nil, errors.Is(err, syscall.ECONNRESET):
		return nil
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("the connection was still open at the deadline")
	default:
		return err
	}
}
