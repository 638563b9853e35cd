package security

// Finding 4 of issue 11: requests without a valid token were not bounded.
// The body (up to 32 MiB) was decoded before authentication, only the header
// read had a timeout (a stalled body held its connection for good), and any
// number of them were served at once.

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/hashicorp/vault/api"
)

// httpAttackZeros is n bytes (n >= 9) of the JSON body that made the audit
// log explode: {"a":[0,0,...,0]}.
func httpAttackZeros(n int) []byte {
	b := make([]byte, 0, n)
	b = append(b, `{"a":[0`...)
	for len(b)+4 <= n-2 {
		b = append(b, ',', '0')
	}
	b = append(b, `]}`...)
	for len(b) < n {
		b = append(b, ' ')
	}
	return b
}

// A 1 MiB request without a valid token gets its answer while most of its
// body has not even been sent: the server reads nothing of a body core
// refuses, and no more than max_unauthenticated_request_size of a body it
// serves without a token.
func TestHTTPAttackLargeTokenlessBody(t *testing.T) {
	s := startDevServer(t, serverOpts{NoNATS: true})
	if err := s.rootClient().Sys().EnableAuthWithOptions("userpass", &api.EnableAuthOptions{Type: "userpass"}); err != nil {
		t.Fatal(err)
	}
	const mib = 1 << 20
	const capBytes = 64 << 10 // the default max_unauthenticated_request_size
	body := httpAttackZeros(mib)
	deadline := func() time.Time { return time.Now().Add(15 * time.Second) }

	// Declared 1 MiB to a path that needs a token: 403 after the first 64 KiB
	// were sent (the rest never is), with no token and with a made-up one.
	for _, tok := range []string{"", "hvs.made-up"} {
		c := s.dial()
		hdr := map[string]string{"Content-Length": fmt.Sprint(mib), "Content-Type": "application/json"}
		if tok != "" {
			hdr["X-Vault-Token"] = tok
		}
		c.headers("PUT", "/v1/secret/data/app", hdr)
		c.write(body[:capBytes])
		if r := c.response(deadline()); r.code != http.StatusForbidden {
			t.Fatalf("1 MiB PUT secret/data/app, token %q: %d %s; want 403", tok, r.code, r.body)
		}
		if err := c.closedBy(deadline()); err != nil {
			t.Fatalf("after refusing an unread body: %v", err)
		}
	}

	// Chunked, so the size is unknown: refused before a byte of body is sent.
	c := s.dial()
	c.headers("PUT", "/v1/secret/data/app", map[string]string{"Transfer-Encoding": "chunked"})
	if r := c.response(deadline()); r.code != http.StatusForbidden {
		t.Fatalf("chunked PUT secret/data/app without a token: %d %s; want 403", r.code, r.body)
	}

	// Paths served without a token read the body up to the cap, then answer
	// 413 without waiting for the rest; a body of many values is refused
	// once it has more than a request without a token needs.
	long := []byte(`{"password":"` + strings.Repeat("x", mib) + `"}`)
	for _, p := range []string{"/v1/auth/userpass/login/bob", "/v1/sys/unseal", "/v1/sys/wrapping/lookup"} {
		c := s.dial()
		c.headers("PUT", p, map[string]string{"Transfer-Encoding": "chunked"})
		for off := 0; off < capBytes+4096; off += 4096 {
			c.chunk(long[off : off+4096])
		}
		r := c.response(deadline())
		if r.code != http.StatusRequestEntityTooLarge || !strings.Contains(r.body, "max_unauthenticated_request_size") {
			t.Fatalf("chunked 1 MiB PUT %s without a token: %d %s; want 413 naming max_unauthenticated_request_size", p, r.code, r.body)
		}
		c = s.dial()
		c.headers("PUT", p, map[string]string{"Transfer-Encoding": "chunked"})
		c.chunk(body[:16<<10])
		if r := c.response(deadline()); r.code != http.StatusBadRequest || !strings.Contains(r.body, "JSON values") {
			t.Fatalf("chunked [0,0,...] PUT %s without a token: %d %s; want 400 about the number of values", p, r.code, r.body)
		}
		c = s.dial()
		c.headers("PUT", p, map[string]string{"Content-Length": fmt.Sprint(mib)})
		if r := c.response(deadline()); r.code != http.StatusRequestEntityTooLarge {
			t.Fatalf("declared 1 MiB PUT %s without a token: %d %s; want 413 before the body", p, r.code, r.body)
		}
	}

	// With a valid token, max_request_size applies: 1 MiB is fine.
	sec := fmt.Sprintf(`{"data":{"blob":%q}}`, strings.Repeat("x", mib))
	if r := s.raw("PUT", "/v1/secret/data/big", s.rootID, strings.NewReader(sec)); r.code != http.StatusOK {
		t.Fatalf("authenticated 1 MiB write: %d %s", r.code, r.body)
	}
}

// A connection that stalls its body (or its headers) is closed within the
// configured read timeout, authenticated or not.
func TestHTTPAttackStalledBodyIsCut(t *testing.T) {
	const readTimeout, headerTimeout, margin = 2 * time.Second, time.Second, 3 * time.Second
	s := startDevServer(t, serverOpts{NoNATS: true, Listener: `
  http_read_timeout        = "2s"
  http_read_header_timeout = "1s"`})
	if err := s.rootClient().Sys().EnableAuthWithOptions("userpass", &api.EnableAuthOptions{Type: "userpass"}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, path, token string
	}{
		{"authenticated write", "/v1/secret/data/app", s.rootID},
		{"token-less login", "/v1/auth/userpass/login/bob", ""},
		{"token-less unseal", "/v1/sys/unseal", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := s.dial()
			start := time.Now()
			hdr := map[string]string{"Content-Length": "1000"}
			if tc.token != "" {
				hdr["X-Vault-Token"] = tc.token
			}
			c.headers("PUT", tc.path, hdr)
			c.write([]byte(`{"data":`)) // and nothing more
			if err := c.closedBy(start.Add(readTimeout + margin)); err != nil {
				t.Fatalf("a body stalled after 8 bytes, http_read_timeout 2s: %v after %s", err, time.Since(start).Round(time.Millisecond))
			}
		})
	}
	t.Run("stalled headers", func(t *testing.T) {
		c := s.dial()
		start := time.Now()
		c.write([]byte("PUT /v1/sys/unseal HTTP/1.1\r\nHost: coffer\r\n")) // no end of headers
		if err := c.closedBy(start.Add(headerTimeout + margin)); err != nil {
			t.Fatalf("headers stalled, http_read_header_timeout 1s: %v", err)
		}
	})
}

// At most max_unauthenticated_requests requests without a valid token are
// served at once; the next one gets a 503 with Retry-After at once, while
// requests with a valid token and sys/health go on.
func TestHTTPAttackUnauthenticatedConcurrency(t *testing.T) {
	const limit = 4
	s := startDevServer(t, serverOpts{NoNATS: true, Listener: fmt.Sprintf("  max_unauthenticated_requests = %d", limit)})
	hold := func() *httpAttackConn {
		c := s.dial()
		c.headers("PUT", "/v1/sys/unseal", map[string]string{"Transfer-Encoding": "chunked"})
		c.chunk([]byte(`{"key":`)) // and the rest never comes
		return c
	}
	held := make([]*httpAttackConn, limit)
	for i := range held {
		held[i] = hold()
	}
	probe := func() httpAttackResponse {
		return s.raw("PUT", "/v1/sys/unseal", "", strings.NewReader(`{"reset":true}`))
	}
	testutil.Eventually(t, 10*time.Second, "a token-less request is refused while the slots are held", func() error {
		// A held request whose headers the server read while a probe held a
		// slot was refused itself: hold another in its place.
		for i, c := range held {
			if c.answered() {
				held[i] = hold()
			}
		}
		if r := probe(); r.code != http.StatusServiceUnavailable {
			return fmt.Errorf("sys/unseal answered %d %s", r.code, r.body)
		}
		return nil
	})
	req, _ := http.NewRequest("PUT", "http://"+s.addr+"/v1/sys/unseal", bytes.NewReader([]byte(`{"reset":true}`)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("over the limit: %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// Root token generation is served without a token too: its writes wait
	// for a slot like sys/unseal, its status read does not.
	for _, m := range []struct{ method, path, body string }{
		{"PUT", "/v1/sys/generate-root/attempt", `{}`},
		{"PUT", "/v1/sys/generate-root/update", `{"key":"00","nonce":"x"}`},
		{"DELETE", "/v1/sys/generate-root/attempt", ``},
	} {
		if r := s.raw(m.method, m.path, "", strings.NewReader(m.body)); r.code != http.StatusServiceUnavailable {
			t.Fatalf("%s %s while the slots are held: %d %s; want 503", m.method, m.path, r.code, r.body)
		}
	}
	if r := s.raw("GET", "/v1/sys/generate-root/attempt", "", nil); r.code != http.StatusOK {
		t.Fatalf("GET sys/generate-root/attempt while the slots are held: %d %s; want 200", r.code, r.body)
	}
	if _, err := s.rootClient().Logical().Write("secret/data/app", map[string]any{"data": map[string]any{"v": "1"}}); err != nil {
		t.Fatalf("an authenticated write while the slots are held: %v", err)
	}
	if h, err := s.client("").Sys().Health(); err != nil || h.Sealed {
		t.Fatalf("sys/health while the slots are held: %+v %v", h, err)
	}
	if r := s.raw("PUT", "/v1/secret/data/app", "", strings.NewReader(`{}`)); r.code != http.StatusForbidden {
		t.Fatalf("a token-less write while the slots are held: %d, want 403 (refusing costs no slot)", r.code)
	}
	for _, c := range held {
		_ = c.c.Close()
	}
	testutil.Eventually(t, 10*time.Second, "the slots are free once their clients left", func() error {
		if r := probe(); r.code == http.StatusServiceUnavailable {
			return errors.New(r.body)
		}
		return nil
	})
}
