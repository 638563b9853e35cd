package tests

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"
)

// Helpers of the logical-layer suite (logical_e2e_test.go, bench_e2e_test.go).

// devServer starts `coffer server -dev` with the root token "root" on free
// ports and returns it with a root client once it serves.
func devServer(t *testing.T) (*proc, *api.Client) {
	t.Helper()
	addr := freeAddr(t)
	p := startProc(t, addr, "server", "-dev", "-dev-root-token-id=root",
		"-dev-listen-address="+addr, "-dev-nats-listen="+freeAddr(t))
	waitHealthCode(t, addr, 200)
	return p, client(t, addr, "root")
}

// staticServer starts a config-file server (bolt storage, static seal),
// initializes it, mounts kv version 2 at secret/ and returns the node, the
// process and the root token.
func staticServer(t *testing.T) (*node, *proc, string) {
	t.Helper()
	n := newNode(t, serverConfig{StaticKey: randomBytes(t, 32)})
	p := n.start()
	res, err := client(t, n.addr, "").Sys().Init(&api.InitRequest{RecoveryShares: 1, RecoveryThreshold: 1})
	if err != nil {
		t.Fatalf("sys/init with the static seal: %v", err)
	}
	waitHealthCode(t, n.addr, 200)
	root := client(t, n.addr, res.RootToken)
	if err := root.Sys().Mount("secret", &api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatalf("mount kv-v2 at secret/: %v", err)
	}
	return n, p, res.RootToken
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
