package tests

// Talking to a running server: vault/api clients, raw HTTP exchanges for what
// vault/api hides, assertions on error responses, readers of decoded JSON, and
// kv-v2 and userpass shortcuts.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/hashicorp/vault/api"
)

// client returns a vault/api client for addr with token (may be empty).
// Retries are off so that a refused request fails at once and visibly.
func client(t testing.TB, addr, token string) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = "http://" + addr
	cfg.MaxRetries = 0
	cfg.Timeout = 10 * time.Second
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatalf("vault api client: %v", err)
	}
	c.SetToken(token) // overrides any VAULT_TOKEN in the environment
	return c
}

// withToken returns a copy of c that sends token.
func withToken(t *testing.T, c *api.Client, token string) *api.Client {
	t.Helper()
	cc, err := c.Clone()
	if err != nil {
		t.Fatalf("clone client: %v", err)
	}
	cc.SetToken(token)
	return cc
}

// statusOf returns the HTTP status of a vault/api error (0 when err is not a
// response error).
func statusOf(err error) int {
	var re *api.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

// responseError asserts err is a vault/api ResponseError with code and an
// errors[] message containing substr (case-insensitive).
func responseError(t *testing.T, err error, code int, substr string) {
	t.Helper()
	var re *api.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("want a %d response error, got %T: %v", code, err, err)
	}
	if re.StatusCode != code {
		t.Fatalf("status %d, want %d (errors %q)", re.StatusCode, code, re.Errors)
	}
	if !containsFold(re.Errors, substr) {
		t.Fatalf("errors %q do not mention %q", re.Errors, substr)
	}
}

// refused asserts err is a response error with status code whose errors
// mention substr (when substr is not empty).
func refused(t *testing.T, what string, err error, code int, substr string) {
	t.Helper()
	var re *api.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("%s: want a %d response error, got %T: %v", what, code, err, err)
	}
	if re.StatusCode != code {
		t.Fatalf("%s: status %d, want %d (errors %q)", what, re.StatusCode, code, re.Errors)
	}
	if substr != "" && !containsFold(re.Errors, substr) {
		t.Fatalf("%s: errors %q do not mention %q", what, re.Errors, substr)
	}
}

func containsFold(msgs []string, substr string) bool {
	for _, m := range msgs {
		if strings.Contains(strings.ToLower(m), strings.ToLower(substr)) {
			return true
		}
	}
	return false
}

// rawResponse is a plain HTTP exchange, for what vault/api hides (status
// codes of sys/health, bodies that are not JSON, methods it never sends).
type rawResponse struct {
	code   int
	header http.Header
	body   []byte
	errors []string
}

func doRaw(t *testing.T, method, url, token string, body io.Reader) rawResponse {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	r := rawResponse{code: resp.StatusCode, header: resp.Header, body: b}
	if resp.StatusCode >= 400 && len(b) > 0 {
		var e struct {
			Errors []string `json:"errors"`
		}
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatalf("%s %s: %d with a body that is not Vault's error envelope: %q", method, url, resp.StatusCode, b)
		}
		r.errors = e.Errors
	}
	return r
}

// expectError asserts a raw response is code with a message mentioning substr.
func (r rawResponse) expectError(t *testing.T, code int, substr string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("status %d, want %d (body %q)", r.code, code, r.body)
	}
	if len(r.errors) == 0 || !containsFold(r.errors, substr) {
		t.Fatalf("errors %q should mention %q", r.errors, substr)
	}
}

// rawJSON sends body (marshalled unless it is a string) to /v1/path on c's
// server with c's token.
func rawJSON(t *testing.T, c *api.Client, method, path string, body any) rawResponse {
	t.Helper()
	var rd *bytes.Reader
	switch b := body.(type) {
	case nil:
		rd = bytes.NewReader(nil)
	case string:
		rd = bytes.NewReader([]byte(b))
	default:
		js, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(js)
	}
	return doRaw(t, method, strings.TrimSuffix(c.Address(), "/")+"/v1/"+path, c.Token(), rd)
}

// envelope decodes a raw response body as Vault's envelope.
func (r rawResponse) envelope(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(r.body))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		t.Fatalf("body is not JSON (status %d): %v: %q", r.code, err, r.body)
	}
	return m
}

// mapAt walks nested maps of a decoded JSON value.
func mapAt(v any, keys ...string) (any, bool) {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[k]; !ok {
			return nil, false
		}
	}
	return v, true
}

// str returns a JSON value as a string ("" for nil).
func str(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

// strs reads a JSON list of strings.
func strs(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, e := range l {
		out = append(out, fmt.Sprint(e))
	}
	return out
}

// entries returns a JSON array of objects.
func entries(v any) []map[string]any {
	arr, _ := v.([]any)
	var out []map[string]any
	for _, e := range arr {
		if m, ok := e.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// num reads a JSON number (json.Number, float64 or numeric string) as int64.
func num(t *testing.T, what string, v any) int64 {
	t.Helper()
	n, err := strconv.ParseInt(fmt.Sprint(v), 10, 64)
	if err != nil {
		t.Fatalf("%s: %v (%T) is not an integer", what, v, v)
	}
	return n
}

func ptr[T any](v T) *T { return &v }

// kvData reads the current version of key from the kv-v2 mount.
func kvData(c *api.Client, mount, key string) (map[string]any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := c.KVv2(mount).Get(ctx, key)
	if err != nil {
		return nil, err
	}
	return s.Data, nil
}

// kvPut writes data to key on the kv-v2 mount and fails the test on error.
func kvPut(t *testing.T, c *api.Client, mount, key string, data map[string]any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.KVv2(mount).Put(ctx, key, data); err != nil {
		t.Fatalf("kv put %s/%s on %s: %v", mount, key, c.Address(), err)
	}
}

// kvHas reports nil when key on mount has field "v" equal to want.
func kvHas(c *api.Client, mount, key, want string) error {
	d, err := kvData(c, mount, key)
	if err != nil {
		return err
	}
	if got := str(d["v"]); got != want {
		return fmt.Errorf("%s/%s: v=%q, want %q", mount, key, got, want)
	}
	return nil
}

// waitKV waits until key on mount has v=want on c's server.
func waitKV(t *testing.T, c *api.Client, mount, key, want string, timeout time.Duration) {
	t.Helper()
	testutil.Eventually(t, timeout, fmt.Sprintf("%s/%s = %q on %s", mount, key, want, c.Address()), func() error {
		return kvHas(c, mount, key, want)
	})
}

// kvKeys lists the keys of the kv-v2 mount's metadata root.
func kvKeys(t *testing.T, c *api.Client, mount string) []string {
	t.Helper()
	s, err := c.Logical().List(mount + "/metadata")
	if err != nil {
		t.Fatalf("list %s/metadata on %s: %v", mount, c.Address(), err)
	}
	var keys []string
	if s != nil {
		keys = strs(s.Data["keys"])
	}
	slices.Sort(keys)
	return keys
}

// mountPaths lists the secret-engine mount paths of c's server.
func mountPaths(t *testing.T, c *api.Client) map[string]*api.MountOutput {
	t.Helper()
	m, err := c.Sys().ListMounts()
	if err != nil {
		t.Fatalf("sys/mounts on %s: %v", c.Address(), err)
	}
	return m
}

// userpassLogin logs in with userpass at mount path and returns a client
// carrying the new token.
func userpassLogin(t *testing.T, addr, user, pass string) (*api.Client, error) {
	t.Helper()
	c := client(t, addr, "")
	s, err := c.Logical().Write("auth/userpass/login/"+user, map[string]any{"password": pass})
	if err != nil {
		return nil, err
	}
	if s == nil || s.Auth == nil || s.Auth.ClientToken == "" {
		return nil, fmt.Errorf("userpass login on %s: no auth.client_token", addr)
	}
	c.SetToken(s.Auth.ClientToken)
	return c, nil
}
