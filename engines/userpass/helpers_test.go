package userpass

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

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

func (h *harness) req(op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
	h.t.Helper()
	return h.b.HandleRequest(context.Background(), &logical.Request{
		Operation: op, Path: path, Data: data, Storage: h.view,
		MountPoint: mount, MountType: "userpass", RemoteAddr: h.remote,
	})
}

// must runs a request that has to succeed.
func (h *harness) must(op logical.Operation, path string, data map[string]any) *logical.Response {
	h.t.Helper()
	resp, err := h.req(op, path, data)
	if err != nil {
		h.t.Fatalf("%s %s: %v", op, path, err)
	}
	return resp
}

// fails runs a request that has to fail with status code and a message
// containing want; it returns the error.
func (h *harness) fails(op logical.Operation, path string, data map[string]any, code int, want string) error {
	h.t.Helper()
	resp, err := h.req(op, path, data)
	if err == nil {
		h.t.Fatalf("%s %s: succeeded with %+v, want error %d %q", op, path, resp, code, want)
	}
	if got := logical.StatusCode(err); got != code {
		h.t.Fatalf("%s %s: status %d (%v), want %d", op, path, got, err, code)
	}
	if !strings.Contains(err.Error(), want) {
		h.t.Fatalf("%s %s: error %q does not mention %q", op, path, err, want)
	}
	return err
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
	ok, err := h.b.ExistenceCheck(context.Background(), &logical.Request{Path: path, Storage: h.view})
	if err != nil {
		h.t.Fatalf("ExistenceCheck %s: %v", path, err)
	}
	return ok
}

// raw reads a record straight from the view.
func (h *harness) raw(key string) map[string]any {
	h.t.Helper()
	e, err := h.view.Get(context.Background(), key)
	if err != nil {
		h.t.Fatalf("get %s: %v", key, err)
	}
	if e == nil {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(e.Value, &m); err != nil {
		h.t.Fatalf("decode %s: %v", key, err)
	}
	return m
}

// jsonEq compares two values by their JSON encodings, the way a client sees
// them.
func jsonEq(t *testing.T, what string, got, want any) {
	t.Helper()
	g, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	w, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	var gv, wv any
	_ = json.Unmarshal(g, &gv)
	_ = json.Unmarshal(w, &wv)
	if !reflect.DeepEqual(gv, wv) {
		t.Fatalf("%s:\n got  %s\n want %s", what, g, w)
	}
}

const (
	rd   = logical.ReadOperation
	wr   = logical.UpdateOperation
	cr   = logical.CreateOperation
	del  = logical.DeleteOperation
	list = logical.ListOperation
)
