package enginetest

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/logical"
)

// Target is a backend as a request reaches it through the router: the
// storage the request carries, the mount it arrives on and the address of
// the client sending it ("" for none).
type Target struct {
	Backend    logical.Backend
	Storage    logical.Storage
	MountPoint string
	MountType  string
	RemoteAddr string
}

// Call sends the backend one request of op on path with data.
func (tg Target) Call(op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
	return tg.Backend.HandleRequest(context.Background(), &logical.Request{
		Operation: op, Path: path, Data: data, Storage: tg.Storage,
		MountPoint: tg.MountPoint, MountType: tg.MountType, RemoteAddr: tg.RemoteAddr,
	})
}

// Must sends a request that has to succeed and returns its response.
func (tg Target) Must(t testing.TB, op logical.Operation, path string, data map[string]any) *logical.Response {
	t.Helper()
	resp, err := tg.Call(op, path, data)
	return Must(t, resp, err, what(op, path))
}

// Fails sends a request that has to fail with status code and a message
// containing want, and returns the error.
func (tg Target) Fails(t testing.TB, op logical.Operation, path string, data map[string]any, code int, want string) error {
	t.Helper()
	resp, err := tg.Call(op, path, data)
	return Fails(t, resp, err, code, want, what(op, path))
}

// Exists runs the backend's ExistenceCheck on path, with a request that
// carries only the path and the storage.
func (tg Target) Exists(t testing.TB, path string) bool {
	t.Helper()
	ok, err := tg.Backend.ExistenceCheck(context.Background(), &logical.Request{Path: path, Storage: tg.Storage})
	if err != nil {
		t.Fatalf("ExistenceCheck %s: %v", path, err)
	}
	return ok
}

// what names a request in failure messages: "<op> <path>".
func what(op logical.Operation, path string) string { return string(op) + " " + path }

// Must fails the test unless err is nil, saying what failed, and returns
// resp.
func Must(t testing.TB, resp *logical.Response, err error, what string) *logical.Response {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return resp
}

// Fails fails the test unless err is an error of status code (as
// logical.StatusCode maps it) whose message contains want, saying what
// failed; it returns err.
func Fails(t testing.TB, resp *logical.Response, err error, code int, want, what string) error {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: succeeded with %+v, want error %d %q", what, resp, code, want)
	}
	if got := logical.StatusCode(err); got != code {
		t.Fatalf("%s: status %d (%v), want %d", what, got, err, code)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("%s: error %q does not mention %q", what, err, want)
	}
	return err
}

// JSONEq compares two values by their JSON encodings, the way a client sees
// them, and fails the test with what when they differ.
func JSONEq(t testing.TB, what string, got, want any) {
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

// Raw reads the record at key straight from s, decoded from JSON; nil when
// there is none.
func Raw(t testing.TB, s logical.Storage, key string) map[string]any {
	t.Helper()
	e, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	if e == nil {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(e.Value, &m); err != nil {
		t.Fatalf("decode %s: %v", key, err)
	}
	return m
}

// Route is one row of a ServedLocally table: a write, and whether the
// cluster that receives it serves it.
type Route struct {
	Op    logical.Operation
	Path  string
	Local bool
}

// ServedLocally checks b.ServedLocally against each route, with requests
// that carry no storage: ServedLocally must not read it.
func ServedLocally(t testing.TB, b logical.ClusterLocal, routes []Route) {
	t.Helper()
	for _, r := range routes {
		if got := b.ServedLocally(&logical.Request{Operation: r.Op, Path: r.Path}); got != r.Local {
			t.Errorf("ServedLocally(%s %s) = %v, want %v", r.Op, r.Path, got, r.Local)
		}
	}
}
