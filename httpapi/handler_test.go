package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/rs/zerolog"

	"github.com/cofferhq/coffer/core"
	"github.com/cofferhq/coffer/httpapi"
	"github.com/cofferhq/coffer/storage/inmem"
)

// newServer runs the handler over a real core on in-memory storage.
func newServer(t *testing.T, opts httpapi.Options) (*httptest.Server, *core.Core) {
	t.Helper()
	c, err := core.New(context.Background(), core.Config{Physical: inmem.New(), StorageType: "inmem", ClusterName: "test"})
	if err != nil {
		t.Fatalf("core.New: %v", err)
	}
	srv := httptest.NewServer(httpapi.New(c, opts, zerolog.Nop()))
	t.Cleanup(func() {
		srv.Close()
		if err := c.Close(); err != nil {
			t.Errorf("close core: %v", err)
		}
	})
	return srv, c
}

func apiClient(t *testing.T, srv *httptest.Server, token string) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = srv.URL
	cfg.MaxRetries = 0
	cfg.Timeout = 10 * time.Second
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(token)
	return c
}

type raw struct {
	code   int
	header http.Header
	body   string
	errors []string
}

func do(t *testing.T, method, url string, header http.Header, body io.Reader) raw {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := raw{code: resp.StatusCode, header: resp.Header, body: string(b)}
	if resp.StatusCode >= 400 && len(b) > 0 {
		var e struct{ Errors []string }
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatalf("%d body is not Vault's error envelope: %q", resp.StatusCode, b)
		}
		r.errors = e.Errors
	}
	return r
}

func (r raw) want(t *testing.T, code int, substr string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("status %d, want %d: %s", r.code, code, r.body)
	}
	if substr == "" {
		return
	}
	for _, e := range r.errors {
		if strings.Contains(e, substr) {
			return
		}
	}
	t.Fatalf("errors %q do not mention %q", r.errors, substr)
}

// TestVaultClientDecodesEverySysEndpoint drives the whole seal lifecycle
// with vault/api, which fails on any response shape it cannot decode.
func TestVaultClientDecodesEverySysEndpoint(t *testing.T) {
	srv, _ := newServer(t, httpapi.Options{})
	c := apiClient(t, srv, "")

	if h, err := c.Sys().Health(); err != nil || h.Initialized || !h.Sealed {
		t.Fatalf("Health before init: %+v, %v", h, err)
	}
	res, err := c.Sys().Init(&api.InitRequest{SecretShares: 3, SecretThreshold: 2})
	if err != nil || len(res.Keys) != 3 || len(res.KeysB64) != 3 || res.RootToken == "" {
		t.Fatalf("Init: %+v, %v", res, err)
	}
	if res.RecoveryKeys != nil || res.RecoveryKeysB64 != nil {
		t.Fatalf("shamir init returned recovery keys: %+v", res)
	}
	if ok, err := c.Sys().InitStatus(); err != nil || !ok {
		t.Fatalf("InitStatus: %v, %v", ok, err)
	}
	if s, err := c.Sys().Unseal(res.Keys[0]); err != nil || s.Progress != 1 || !s.Sealed || s.Nonce == "" {
		t.Fatalf("Unseal 1: %+v, %v", s, err)
	}
	if s, err := c.Sys().ResetUnsealProcess(); err != nil || s.Progress != 0 {
		t.Fatalf("ResetUnsealProcess: %+v, %v", s, err)
	}
	if s, err := c.Sys().Unseal(res.KeysB64[1]); err != nil || s.Progress != 1 {
		t.Fatalf("Unseal 1 (base64) after reset: %+v, %v", s, err)
	}
	if s, err := c.Sys().Unseal(res.Keys[2]); err != nil || s.Sealed || s.T != 2 || s.N != 3 {
		t.Fatalf("Unseal 2: %+v, %v", s, err)
	}
	l, err := c.Sys().Leader()
	if err != nil || !l.IsSelf || l.ActiveTime.IsZero() {
		t.Fatalf("Leader: %+v, %v", l, err)
	}
	root := apiClient(t, srv, res.RootToken)
	if err := root.Sys().Rotate(); err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	ks, err := root.Sys().KeyStatus()
	if err != nil || ks.Term != 2 || ks.InstallTime.IsZero() {
		t.Fatalf("KeyStatus: %+v, %v", ks, err)
	}
	if err := root.Sys().Seal(); err != nil {
		t.Fatalf("Seal: %v", err)
	}
	if s, err := c.Sys().SealStatus(); err != nil || !s.Sealed {
		t.Fatalf("SealStatus after Seal: %+v, %v", s, err)
	}
}

func TestErrorsAndStatusCodes(t *testing.T) {
	srv, c := newServer(t, httpapi.Options{MaxRequestSize: 64})
	u := srv.URL + "/v1/"

	do(t, "GET", u+"sys/health", nil, nil).want(t, 501, "")
	do(t, "GET", u+"sys/health?uninitcode=200", nil, nil).want(t, 200, "")
	do(t, "GET", u+"sys/health?uninitcode=x", nil, nil).want(t, 400, "uninitcode")
	do(t, "GET", u+"sys/health?standbyok=maybe", nil, nil).want(t, 400, "standbyok")
	do(t, "GET", u+"sys/key-status", nil, nil).want(t, 503, "unseal")

	res, err := c.Initialize(context.Background(), core.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		t.Fatal(err)
	}
	do(t, "GET", u+"sys/health", nil, nil).want(t, 503, "")
	do(t, "GET", u+"sys/leader", nil, nil).want(t, 503, "sealed")
	do(t, "PUT", u+"sys/init", nil, strings.NewReader(`{"secret_shares":1,"secret_threshold":1}`)).want(t, 400, "already initialized")
	do(t, "PUT", u+"sys/init", nil, strings.NewReader(`{"pgp_keys":["x"]}`)).want(t, 400, "PGP")
	do(t, "PUT", u+"sys/unseal", nil, strings.NewReader(`{"key":"aa","migrate":true}`)).want(t, 400, "migration")
	do(t, "PUT", u+"sys/unseal", nil, strings.NewReader(`[1,2`)).want(t, 400, "not valid JSON")
	do(t, "PUT", u+"sys/unseal", nil, strings.NewReader(`{"key":"`+strings.Repeat("ab", 64)+`"}`)).want(t, 413, "max_request_size of 64 bytes")
	do(t, "PUT", u+"sys/unseal", nil, strings.NewReader(`{"key":"%%%"}`)).want(t, 400, "hex or base64")
	// A share of the wrong length reaches the threshold (1) and is refused.
	do(t, "PUT", u+"sys/unseal", nil, strings.NewReader(`{"key":"00112233"}`)).want(t, 400, "invalid key")

	if _, err := c.Unseal(context.Background(), res.Keys[0]); err != nil {
		t.Fatal(err)
	}
	do(t, "GET", u+"sys/health", nil, nil).want(t, 200, "")
	do(t, "HEAD", u+"sys/health?activecode=299", nil, nil).want(t, 299, "")
	do(t, "GET", u+"sys/key-status", nil, nil).want(t, 403, "permission denied")
	do(t, "PUT", u+"sys/rotate", http.Header{"Authorization": {"Bearer wrong"}}, nil).want(t, 403, "permission denied")
	do(t, "PUT", u+"sys/rotate", http.Header{"Authorization": {"Bearer " + res.RootToken}}, nil).want(t, 204, "")
	r := do(t, "GET", u+"sys/key-status", http.Header{"X-Vault-Token": {res.RootToken}}, nil)
	r.want(t, 200, "")
	var env struct {
		RequestID string         `json:"request_id"`
		Data      map[string]any `json:"data"`
		Term      int            `json:"term"`
	}
	if err := json.Unmarshal([]byte(r.body), &env); err != nil || env.RequestID == "" || env.Data["term"] != float64(2) || env.Term != 2 {
		t.Fatalf("key-status body %s (%v): want the envelope with data.term 2 and term 2 at the top", r.body, err)
	}

	do(t, "GET", u+"sys/mounts", nil, nil).want(t, 404, "sys/mounts")
	do(t, "GET", srv.URL+"/v2/sys/health", nil, nil).want(t, 404, "/v1/")
	m := do(t, "PATCH", u+"sys/init", nil, nil)
	m.want(t, 405, "GET or POST or PUT")
	if m.header.Get("Allow") != "GET, POST, PUT" {
		t.Fatalf("Allow %q", m.header.Get("Allow"))
	}
}

// TestLogicalHook checks that unknown paths reach Options.Logical with the
// body limit applied, and that sys table paths never do.
func TestLogicalHook(t *testing.T) {
	var got []string
	logical := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Method+" "+r.URL.Path)
		var body map[string]any
		if err := httpapi.DecodeJSON(r, &body); err != nil {
			httpapi.RespondError(w, r, err)
			return
		}
		httpapi.WriteJSON(w, r, http.StatusOK, httpapi.NewEnvelope(map[string]any{"token": httpapi.RequestToken(r), "body": body}))
	})
	srv, _ := newServer(t, httpapi.Options{MaxRequestSize: 32, Logical: logical})
	u := srv.URL + "/v1/"

	r := do(t, "PUT", u+"secret/app", http.Header{"X-Vault-Token": {"t1"}}, strings.NewReader(`{"a":"b"}`))
	r.want(t, 200, "")
	if !strings.Contains(r.body, `"token":"t1"`) || !strings.Contains(r.body, `"a":"b"`) {
		t.Fatalf("logical hook answer %s", r.body)
	}
	big := `{"a":"` + strings.Repeat("b", 64) + `"}`
	// With a Content-Length the limit answers before the hook; a streamed
	// body reaches the hook, whose DecodeJSON hits the limit.
	do(t, "PUT", u+"secret/app", nil, strings.NewReader(big)).want(t, 413, "max_request_size")
	do(t, "PUT", u+"secret/app", nil, io.MultiReader(strings.NewReader(big))).want(t, 413, "max_request_size")
	do(t, "PUT", u+"secret/app", nil, strings.NewReader(`{"a":`)).want(t, 400, "not valid JSON")
	do(t, "GET", u+"sys/seal-status", nil, nil).want(t, 200, "")
	do(t, "DELETE", u+"sys/seal-status", nil, nil).want(t, 405, "GET")
	if len(got) != 3 {
		t.Fatalf("logical hook saw %q, want the three secret/app requests that reach it", got)
	}
}

func TestRequestToken(t *testing.T) {
	cases := []struct {
		header http.Header
		want   string
	}{
		{http.Header{"X-Vault-Token": {"a"}}, "a"},
		{http.Header{"Authorization": {"Bearer b"}}, "b"},
		{http.Header{"Authorization": {"bearer  c "}}, "c"},
		{http.Header{"X-Vault-Token": {"a"}, "Authorization": {"Bearer b"}}, "a"},
		{http.Header{"Authorization": {"Basic Zm9v"}}, ""},
		{http.Header{}, ""},
	}
	for _, tc := range cases {
		r := httptest.NewRequest("GET", "/v1/sys/health", nil)
		r.Header = tc.header
		if got := httpapi.RequestToken(r); got != tc.want {
			t.Errorf("RequestToken(%v) = %q, want %q", tc.header, got, tc.want)
		}
	}
}
