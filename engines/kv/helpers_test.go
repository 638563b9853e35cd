package kv

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/logical"
	"github.com/cofferhq/coffer/storage/inmem"
)

// t0 is the injected clock's start.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)

// harness drives one backend over the real storage stack minus encryption:
// inmem wrapped in a logical.View.
type harness struct {
	t     *testing.T
	b     logical.Backend
	store *inmem.Backend
	view  *logical.View
	now   time.Time
}

func newHarness(t *testing.T, version string) *harness {
	t.Helper()
	store := inmem.New()
	h := &harness{t: t, store: store, view: logical.NewView(store, "logical/0000/"), now: t0}
	b, err := Factory(context.Background(), logical.BackendConfig{
		Storage: h.view, Options: map[string]string{"version": version}, MountPoint: "secret/",
	})
	if err != nil {
		t.Fatalf("Factory: %v", err)
	}
	if v2, ok := b.(*V2); ok {
		v2.Now = func() time.Time { return h.now }
	}
	h.b = b
	return h
}

func (h *harness) req(op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
	h.t.Helper()
	return h.b.HandleRequest(context.Background(), &logical.Request{
		Operation: op, Path: path, Data: data, Storage: h.view, MountPoint: "secret/", MountType: "kv",
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
// containing want.
func (h *harness) fails(op logical.Operation, path string, data map[string]any, code int, want string) {
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

func isNotFound(err error) bool { return errors.Is(err, logical.ErrNotFound) }

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

const (
	rd    = logical.ReadOperation
	wr    = logical.UpdateOperation
	cr    = logical.CreateOperation
	patch = logical.PatchOperation
	del   = logical.DeleteOperation
	list  = logical.ListOperation
)

func opOf(s string) logical.Operation { return logical.Operation(s) }
