package httpapi_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/cofferhq/coffer/core"
	"github.com/cofferhq/coffer/core/coretest"
	"github.com/cofferhq/coffer/httpapi"
	"github.com/cofferhq/coffer/internal/testutil"
)

// newAPI is the whole /v1/ handler (sys table and logical handler) over an
// initialized, unsealed core with userpass at auth/userpass/; it returns
// the handler and the root token. Tests call ServeHTTP directly, so they can
// count what the handler reads of a body.
func newAPI(t *testing.T, opts httpapi.Options) (http.Handler, string) {
	t.Helper()
	ctx := context.Background()
	c, root := coretest.Unsealed(t)
	if err := c.EnableMount(ctx, &core.MountEntry{Table: core.AuthTable, Path: "userpass/", Type: "userpass"}); err != nil {
		t.Fatal(err)
	}
	if err := c.EnableMount(ctx, &core.MountEntry{Table: core.SecretTable, Path: "secret/", Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatal(err)
	}
	opts.Logical = httpapi.NewLogical(c, zerolog.Nop())
	return httpapi.New(c, opts, zerolog.Nop()), root
}

// countingBody is a request body that counts the bytes the handler reads.
type countingBody struct {
	r    io.Reader
	read atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.read.Add(int64(n))
	return n, err
}

func (b *countingBody) Close() error { return nil }

func zerosJSON(n int) string {
	return `{"a":[` + strings.Repeat("0,", n/2-8) + `0]}`
}

// serveBody sends a body of size bytes, declared (Content-Length) or not
// (chunked), and returns the response and how much of the body was read.
func serveBody(h http.Handler, method, path, token string, body string, declared bool) (*httptest.ResponseRecorder, int64) {
	cb := &countingBody{r: strings.NewReader(body)}
	req := httptest.NewRequest(method, path, nil)
	req.Body = cb
	req.ContentLength = -1
	if declared {
		req.ContentLength = int64(len(body))
	}
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec, cb.read.Load()
}

// The body of a request core refuses is not read at all; a request served
// without a token has its body read up to the cap, no further (finding 4).
func TestUnauthenticatedBodiesAreNotReadPastTheCap(t *testing.T) {
	const capBytes = 1 << 10
	h, root := newAPI(t, httpapi.Options{MaxUnauthenticatedRequestSize: capBytes})
	big := zerosJSON(1 << 20)
	for _, declared := range []bool{true, false} {
		for _, tok := range []string{"", "not-a-token"} {
			rec, read := serveBody(h, "PUT", "/v1/secret/data/app", tok, big, declared)
			if rec.Code != http.StatusForbidden || read != 0 {
				t.Errorf("PUT secret/data/app, token %q, declared %v: %d after reading %d bytes; want 403 without reading", tok, declared, rec.Code, read)
			}
			if rec.Header().Get("Connection") != "close" {
				t.Errorf("the answer to a request whose body was not read does not close the connection")
			}
		}
		for _, p := range append([]string{"/v1/auth/userpass/login/bob", "/v1/sys/wrapping/lookup", "/v1/sys/unseal", "/v1/sys/init", "/v1/sys/generate-root/attempt", "/v1/sys/generate-root/update"}, drPaths...) {
			rec, read := serveBody(h, "PUT", p, "", big, declared)
			if rec.Code != http.StatusRequestEntityTooLarge || read > capBytes+1 {
				t.Errorf("PUT %s without a token, declared %v: %d after reading %d bytes; want 413 after at most %d", p, declared, rec.Code, read, capBytes+1)
			}
			if !strings.Contains(rec.Body.String(), "max_unauthenticated_request_size") {
				t.Errorf("PUT %s: the 413 does not name the setting: %s", p, rec.Body)
			}
		}
	}
	// With a valid token the body may be as large as max_request_size.
	rec, read := serveBody(h, "PUT", "/v1/secret/data/app", root, `{"data":{"blob":"`+strings.Repeat("x", 200<<10)+`"}}`, false)
	if rec.Code != http.StatusOK || read < 200<<10 {
		t.Fatalf("authenticated 200 KiB write: %d after reading %d bytes: %s", rec.Code, read, rec.Body)
	}
	// A login that fits is served.
	if rec, _ := serveBody(h, "PUT", "/v1/auth/userpass/login/bob", "", `{"password":"x"}`, true); rec.Code == http.StatusRequestEntityTooLarge || rec.Code == http.StatusServiceUnavailable {
		t.Fatalf("small login: %d %s", rec.Code, rec.Body)
	}
}

// pipeRequest starts a request whose body arrives through a pipe and
// returns once the handler is reading it.
func pipeRequest(t *testing.T, h http.Handler, path, token string, wg *sync.WaitGroup) (*io.PipeWriter, *httptest.ResponseRecorder) {
	t.Helper()
	pr, pw := io.Pipe()
	req := httptest.NewRequest("PUT", path, nil)
	req.Body, req.ContentLength = pr, -1
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	rec := httptest.NewRecorder()
	wg.Go(func() { h.ServeHTTP(rec, req) })
	if _, err := pw.Write([]byte(`{"password":`)); err != nil { // returns once the handler reads
		t.Fatal(err)
	}
	return pw, rec
}

// At most max_unauthenticated_requests requests without a valid token are
// served at once; one more gets a 503 with Retry-After at once, while
// requests with a valid token and the status reads are not held back.
func TestUnauthenticatedConcurrencyLimit(t *testing.T) {
	h, root := newAPI(t, httpapi.Options{MaxUnauthenticatedRequests: 2})
	var wg sync.WaitGroup
	pw1, rec1 := pipeRequest(t, h, "/v1/auth/userpass/login/bob", "", &wg)
	pw2, _ := pipeRequest(t, h, "/v1/sys/unseal", "", &wg)

	for _, p := range append([]string{"/v1/auth/userpass/login/alice", "/v1/sys/unseal", "/v1/sys/wrapping/lookup", "/v1/sys/generate-root/attempt", "/v1/sys/generate-root/update"}, drPaths...) {
		rec, _ := serveBody(h, "PUT", p, "", `{"password":"x"}`, true)
		if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" || !strings.Contains(rec.Body.String(), "max_unauthenticated_requests") {
			t.Fatalf("PUT %s with both slots taken: %d %q %s; want 503 with Retry-After naming the setting", p, rec.Code, rec.Header().Get("Retry-After"), rec.Body)
		}
	}
	if rec, _ := serveBody(h, "PUT", "/v1/secret/data/app", root, `{"data":{"a":"b"}}`, true); rec.Code != http.StatusOK {
		t.Fatalf("authenticated write with the slots taken: %d %s", rec.Code, rec.Body)
	}
	for _, p := range []string{"/v1/sys/generate-root/attempt", drAttempt} {
		if rec, _ := serveBody(h, "DELETE", p, "", "", true); rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("DELETE %s with both slots taken: %d %s; want 503: cancelling is a token-less change of state", p, rec.Code, rec.Body)
		}
	}
	// The DR attempt's status reads from memory: no slot (this core is no
	// DR secondary, so it answers 400, not 503).
	if rec, _ := serveBody(h, "GET", drAttempt, "", "", true); rec.Code != http.StatusBadRequest {
		t.Fatalf("GET %s with the slots taken: %d %s; want the 400 of a cluster that is not a DR secondary", drAttempt, rec.Code, rec.Body)
	}
	for _, p := range []string{"/v1/sys/health", "/v1/sys/seal-status", "/v1/sys/init", "/v1/sys/generate-root/attempt"} {
		if rec, _ := serveBody(h, "GET", p, "", "", true); rec.Code != http.StatusOK {
			t.Fatalf("GET %s with the slots taken: %d %s", p, rec.Code, rec.Body)
		}
	}
	// A token-less request core refuses costs no slot and is refused as usual.
	if rec, _ := serveBody(h, "PUT", "/v1/secret/data/app", "", `{}`, true); rec.Code != http.StatusForbidden {
		t.Fatalf("token-less write with the slots taken: %d, want 403", rec.Code)
	}

	_, _ = pw1.Write([]byte(`"x"}`))
	_ = pw1.Close()
	_ = pw2.CloseWithError(errors.New("client went away"))
	wg.Wait()
	if rec1.Code == http.StatusServiceUnavailable {
		t.Fatalf("the first login: %d %s", rec1.Code, rec1.Body)
	}
	testutil.Eventually(t, 5*time.Second, "a slot is free again", func() error {
		rec, _ := serveBody(h, "PUT", "/v1/auth/userpass/login/alice", "", `{"password":"x"}`, true)
		if rec.Code == http.StatusServiceUnavailable {
			return errors.New(rec.Body.String())
		}
		return nil
	})
}

// timeoutReader fails like a connection whose read deadline passed.
type timeoutReader struct{}

func (timeoutReader) Read([]byte) (int, error) { return 0, timeoutErr{} }

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestBodyReadTimeoutIs408(t *testing.T) {
	h, root := newAPI(t, httpapi.Options{})
	req := httptest.NewRequest("PUT", "/v1/secret/data/app", io.MultiReader(bytes.NewReader([]byte(`{"data":`)), timeoutReader{}))
	req.Header.Set("X-Vault-Token", root)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestTimeout || !strings.Contains(rec.Body.String(), "http_read_timeout") {
		t.Fatalf("a body cut by the read deadline: %d %s; want 408 naming http_read_timeout", rec.Code, rec.Body)
	}
}

// Paths are refused or normalized before the sys table and the logical
// handler see them (findings 3 and 5).
func TestPathsAreNormalizedFirst(t *testing.T) {
	h, root := newAPI(t, httpapi.Options{})
	for _, p := range []string{"/v1/secret/data/%FF%FE", "/v1/secret/data/a%00b", "/v1/secret/data/../../sys/seal"} {
		req := httptest.NewRequest("PUT", "/v1/x", strings.NewReader(`{"data":{"a":"b"}}`))
		req.URL.Path = mustUnescape(t, p)
		req.Header.Set("X-Vault-Token", root)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusBadRequest {
			t.Errorf("PUT %s: %d %s, want 400", p, rec.Code, rec.Body)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/v1//sys/seal-status/", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET //sys/seal-status/: %d %s", rec.Code, rec.Body)
	}
}

func mustUnescape(t *testing.T, p string) string {
	t.Helper()
	u, err := url.PathUnescape(p)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// A body within the size cap but holding more JSON values than a request
// without a token needs is refused as it streams in, before it is decoded.
func TestUnauthenticatedJSONValuesAreBounded(t *testing.T) {
	h, root := newAPI(t, httpapi.Options{})
	many := `{"password":"x","junk":[` + strings.Repeat("0,", 2000) + `0]}`
	for _, p := range []string{"/v1/auth/userpass/login/bob", "/v1/sys/unseal"} {
		rec, read := serveBody(h, "PUT", p, "", many, true)
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "JSON values") {
			t.Errorf("PUT %s with %d values: %d %s; want 400 about the values", p, 2000, rec.Code, rec.Body)
		}
		if read >= int64(len(many)) {
			t.Errorf("PUT %s: the whole body was read (%d bytes)", p, read)
		}
	}
	// With a token, the same body is just data.
	if rec, _ := serveBody(h, "PUT", "/v1/secret/data/app", root, `{"data":`+many+`}`, true); rec.Code != http.StatusOK {
		t.Fatalf("authenticated write of the same body: %d %s", rec.Code, rec.Body)
	}
}
