package security

// What only the HTTP attack tests (http_*_test.go) need of a server: raw
// HTTP requests with the path exactly as written, raw TCP connections on
// which a test writes a request by hand, and the server process's memory.
// The servers themselves come from harness_server_test.go.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// httpAttackResponse is a response as raw HTTP sees it.
type httpAttackResponse struct {
	code int
	body string
}

// raw sends one request with net/http, the path exactly as given (escapes,
// "//", "/./" and trailing slashes included).
func (s *server) raw(method, path, token string, body io.Reader) httpAttackResponse {
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
func (s *server) rssKiB() (rss, peak int64) {
	s.t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.p.cmd.Process.Pid))
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

func (s *server) dial() *httpAttackConn {
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

// answered reports whether the server has sent anything on the connection
// yet (it waits a millisecond).
func (h *httpAttackConn) answered() bool {
	_ = h.c.SetReadDeadline(time.Now().Add(time.Millisecond))
	_, err := h.br.Peek(1)
	return err == nil
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
