package userpass

import (
	"context"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/cofferhq/coffer/engines/internal/enginetest"
	"github.com/cofferhq/coffer/logical"
	"github.com/cofferhq/coffer/storage/inmem"
)

const mount = "auth/userpass/"

// harness drives one backend over the real storage stack minus encryption:
// inmem wrapped in a logical.View.
type harness struct {
	t    *testing.T
	b    *Backend
	view *logical.View
	// remote is the RemoteAddr of the requests it sends.
	remote string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	view := logical.NewView(inmem.New(), "auth/0000/")
	lb, err := Factory(context.Background(), logical.BackendConfig{Storage: view, MountPoint: mount})
	if err != nil {
		t.Fatalf("Factory: %v", err)
	}
	b := lb.(*Backend)
	b.Cost = bcrypt.MinCost
	return &harness{t: t, b: b, view: view, remote: "127.0.0.1:51234"}
}

// target is the backend as the router reaches it at the mount, from the
// harness's remote address.
func (h *harness) target() enginetest.Target {
	return enginetest.Target{Backend: h.b, Storage: h.view, MountPoint: mount, MountType: "userpass", RemoteAddr: h.remote}
}

func (h *harness) req(op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
	return h.target().Call(op, path, data)
}

// must runs a request that has to succeed.
func (h *harness) must(op logical.Operation, path string, data map[string]any) *logical.Response {
	h.t.Helper()
	return h.target().Must(h.t, op, path, data)
}

// fails runs a request that has to fail with status code and a message
// containing want; it returns the error.
func (h *harness) fails(op logical.Operation, path string, data map[string]any, code int, want string) error {
	h.t.Helper()
	return h.target().Fails(h.t, op, path, data, code, want)
}

// login logs in and returns the Auth, failing the test otherwise.
func (h *harness) login(name, password string) *logical.Auth {
	h.t.Helper()
	resp := h.must(wr, "login/"+name, map[string]any{"password": password})
	if resp == nil || resp.Auth == nil {
		h.t.Fatalf("login %s: no Auth in %+v", name, resp)
	}
	return resp.Auth
}

func (h *harness) exists(path string) bool {
	h.t.Helper()
	return h.target().Exists(h.t, path)
}

// raw reads a record straight from the view.
func (h *harness) raw(key string) map[string]any {
	h.t.Helper()
	return enginetest.Raw(h.t, h.view, key)
}

// jsonEq compares two values by their JSON encodings, the way a client sees
// them.
var jsonEq = enginetest.JSONEq

const (
	rd   = logical.ReadOperation
	wr   = logical.UpdateOperation
	cr   = logical.CreateOperation
	del  = logical.DeleteOperation
	list = logical.ListOperation
)
