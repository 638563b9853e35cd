package kv

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cofferhq/coffer/engines/internal/enginetest"
	"github.com/cofferhq/coffer/logical"
	"github.com/cofferhq/coffer/storage/inmem"
)

// t0 is the injected clock's start.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)

// harness drives one backend over the real storage stack minus encryption:
// inmem wrapped in a logical.View.
type harness struct {
	t     testing.TB
	b     logical.Backend
	store *inmem.Backend
	view  *logical.View
	now   time.Time
}

func newHarness(t testing.TB, version string) *harness {
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

// target is the backend as the router reaches it at secret/.
func (h *harness) target() enginetest.Target {
	return enginetest.Target{Backend: h.b, Storage: h.view, MountPoint: "secret/", MountType: "kv"}
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
