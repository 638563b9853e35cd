package transit

import (
	"context"
	"encoding/base64"
	"testing"

	"github.com/cofferhq/coffer/engines/internal/enginetest"
	"github.com/cofferhq/coffer/logical"
	"github.com/cofferhq/coffer/storage/inmem"
)

const mount = "transit/"

// harness drives one backend over the real storage stack minus encryption:
// inmem wrapped in a logical.View.
type harness struct {
	t    testing.TB
	b    *Backend
	view *logical.View
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	view := logical.NewView(inmem.New(), "logical/0000/")
	lb, err := Factory(context.Background(), logical.BackendConfig{Storage: view, MountPoint: mount})
	if err != nil {
		t.Fatalf("Factory: %v", err)
	}
	return &harness{t: t, b: lb.(*Backend), view: view}
}

// target is the backend as the router reaches it at the mount, with
// requests that carry storage s.
func (h *harness) target(s logical.Storage) enginetest.Target {
	return enginetest.Target{Backend: h.b, Storage: s, MountPoint: mount, MountType: "transit"}
}

func (h *harness) reqWith(s logical.Storage, op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
	return h.target(s).Call(op, path, data)
}

func (h *harness) req(op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
	return h.reqWith(h.view, op, path, data)
}

// must runs a request that has to succeed (a batch answer with a status
// other than 200 fails too).
func (h *harness) must(op logical.Operation, path string, data map[string]any) *logical.Response {
	h.t.Helper()
	resp := h.target(h.view).Must(h.t, op, path, data)
	if resp != nil && resp.StatusCode != 0 {
		h.t.Fatalf("%s %s: status %d: %+v", op, path, resp.StatusCode, resp.Data)
	}
	return resp
}

// fails runs a request that has to fail with status code and a message
// containing want; it returns the error.
func (h *harness) fails(op logical.Operation, path string, data map[string]any, code int, want string) error {
	h.t.Helper()
	return h.target(h.view).Fails(h.t, op, path, data, code, want)
}

// createKey creates a key of type t.
func (h *harness) createKey(name, t string) *logical.Response {
	h.t.Helper()
	return h.must(wr, "keys/"+name, map[string]any{"type": t})
}

// encrypt encrypts plaintext with the key and returns the ciphertext.
func (h *harness) encrypt(name, plaintext string) string {
	h.t.Helper()
	resp := h.must(wr, "encrypt/"+name, map[string]any{"plaintext": b64(plaintext)})
	return str(h.t, resp, "ciphertext")
}

// decrypt returns the plaintext of ciphertext, decoded.
func (h *harness) decrypt(name, ciphertext string) string {
	h.t.Helper()
	resp := h.must(wr, "decrypt/"+name, map[string]any{"ciphertext": ciphertext})
	return unb64(h.t, str(h.t, resp, "plaintext"))
}

// raw reads a record straight from the view.
func (h *harness) raw(key string) map[string]any {
	h.t.Helper()
	return enginetest.Raw(h.t, h.view, key)
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func unb64(t testing.TB, s string) string {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("base64 %q: %v", s, err)
	}
	return string(b)
}

// str reads a string field of a response.
func str(t testing.TB, resp *logical.Response, field string) string {
	t.Helper()
	if resp == nil {
		t.Fatalf("no response, want field %s", field)
	}
	s, ok := resp.Data[field].(string)
	if !ok {
		t.Fatalf("field %s: %#v in %+v", field, resp.Data[field], resp.Data)
	}
	return s
}

// batchResults returns the batch_results of a response.
func batchResults(t testing.TB, resp *logical.Response) []map[string]any {
	t.Helper()
	list, ok := resp.Data["batch_results"].([]any)
	if !ok {
		t.Fatalf("batch_results: %#v", resp.Data)
	}
	out := make([]map[string]any, len(list))
	for i, it := range list {
		out[i] = it.(map[string]any)
	}
	return out
}

const (
	rd   = logical.ReadOperation
	wr   = logical.UpdateOperation
	cr   = logical.CreateOperation
	del  = logical.DeleteOperation
	list = logical.ListOperation
)
