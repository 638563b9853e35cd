package approle

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cofferhq/coffer/engines/internal/enginetest"
	"github.com/cofferhq/coffer/logical"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/inmem"
)

const mount = "auth/approle/"

// harness drives one backend over the real storage stack minus encryption:
// inmem wrapped in a logical.View, seen through a recorder of the keys
// written. A harness is one cluster.
type harness struct {
	t    *testing.T
	b    *Backend
	view *logical.View
	// store is what requests see: the view, or a secondary's view that
	// refuses writes to replicated keys.
	store logical.Storage
	rec   *recorder
	// remote is the RemoteAddr of the requests it sends.
	remote string
	// clock is the backend's time; tests move it.
	clock time.Time
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	view := logical.NewView(inmem.New(), "auth/0000/")
	lb, err := Factory(context.Background(), logical.BackendConfig{Storage: view, MountPoint: mount})
	if err != nil {
		t.Fatalf("Factory: %v", err)
	}
	h := &harness{t: t, b: lb.(*Backend), view: view, remote: "127.0.0.1:51234",
		clock: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	h.rec = &recorder{Storage: view}
	h.store = h.rec
	h.b.now = func() time.Time { return h.clock }
	return h
}

// newSecondary returns a second cluster: its own backend and storage, with
// a copy of this cluster's replicated keys, whose storage refuses writes to
// replicated keys with logical.ErrReadOnly, as a performance secondary's
// does for requests it serves locally.
func (h *harness) newSecondary() *harness {
	h.t.Helper()
	s := newHarness(h.t)
	h.replicateTo(s)
	s.rec.Storage = &secondaryStorage{Storage: s.view, local: s.b.LocalStoragePrefixes()}
	return s
}

// replicateTo copies this cluster's replicated keys to s, and deletes
// those s has that this one no longer has, as performance replication does.
func (h *harness) replicateTo(s *harness) {
	h.t.Helper()
	ctx := context.Background()
	local := h.b.LocalStoragePrefixes()
	want := map[string]bool{}
	err := storage.Walk(ctx, h.view, "", "", func(key string) (bool, error) {
		if underAny(key, local) {
			return true, nil
		}
		want[key] = true
		e, err := h.view.Get(ctx, key)
		if err != nil {
			return false, err
		}
		return true, s.view.Put(ctx, e)
	})
	if err != nil {
		h.t.Fatalf("replicate: %v", err)
	}
	for _, key := range s.keys() {
		if !underAny(key, local) && !want[key] {
			if err := s.view.Delete(ctx, key); err != nil {
				h.t.Fatal(err)
			}
		}
	}
}

func underAny(key string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// keys lists every key of the cluster's view.
func (h *harness) keys() []string {
	h.t.Helper()
	var out []string
	err := storage.Walk(context.Background(), h.view, "", "", func(key string) (bool, error) {
		out = append(out, key)
		return true, nil
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

// target is the backend as the router reaches it at the mount, over the
// storage requests see, from the harness's remote address.
func (h *harness) target() enginetest.Target {
	return enginetest.Target{Backend: h.b, Storage: h.store, MountPoint: mount, MountType: "approle", RemoteAddr: h.remote}
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

// role creates a role with data and returns its role_id.
func (h *harness) role(name string, data map[string]any) string {
	h.t.Helper()
	h.must(wr, "role/"+name, data)
	return h.must(rd, "role/"+name+"/role-id", nil).Data["role_id"].(string)
}

// secret generates a secret id of role name and returns the response data.
func (h *harness) secret(name string, data map[string]any) map[string]any {
	h.t.Helper()
	resp := h.must(wr, "role/"+name+"/secret-id", data)
	if resp == nil || resp.Data["secret_id"] == "" {
		h.t.Fatalf("generate for %s: %+v", name, resp)
	}
	return resp.Data
}

// login logs in and returns the Auth, failing the test otherwise.
func (h *harness) login(roleID, secretID string) *logical.Auth {
	h.t.Helper()
	resp := h.must(wr, "login", map[string]any{"role_id": roleID, "secret_id": secretID})
	if resp == nil || resp.Auth == nil {
		h.t.Fatalf("login: no Auth in %+v", resp)
	}
	return resp.Auth
}

// refused checks a login is refused with the one answer to bad credentials,
// and that the error never shows the secret id.
func (h *harness) refused(roleID, secretID string) {
	h.t.Helper()
	err := h.fails(wr, "login", map[string]any{"role_id": roleID, "secret_id": secretID}, 400, "invalid role or secret ID")
	if err.Error() != "invalid role or secret ID" {
		h.t.Fatalf("login error %q: want exactly Vault's message", err)
	}
}

// jsonEq compares two values by their JSON encodings, the way a client sees
// them.
var jsonEq = enginetest.JSONEq

// recorder records the keys written through it.
type recorder struct {
	logical.Storage
	mu      sync.Mutex
	written []string
}

func (r *recorder) note(keys ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.written = append(r.written, keys...)
}

// reset returns the keys written so far and forgets them.
func (r *recorder) reset() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.written
	r.written = nil
	return out
}

func (r *recorder) Put(ctx context.Context, e *storage.Entry) error {
	r.note(e.Key)
	return r.Storage.Put(ctx, e)
}

func (r *recorder) Delete(ctx context.Context, key string) error {
	r.note(key)
	return r.Storage.Delete(ctx, key)
}

func (r *recorder) Transaction(ctx context.Context, ops []*storage.TxnOp) error {
	for _, op := range ops {
		r.note(op.Entry.Key)
	}
	return r.Storage.Transaction(ctx, ops)
}

// secondaryStorage refuses writes outside the local prefixes, as the
// storage of a request served locally on a performance secondary does.
type secondaryStorage struct {
	logical.Storage
	local []string
}

func (s *secondaryStorage) check(keys ...string) error {
	for _, k := range keys {
		if !underAny(k, s.local) {
			return logical.ErrReadOnly
		}
	}
	return nil
}

func (s *secondaryStorage) Put(ctx context.Context, e *storage.Entry) error {
	if err := s.check(e.Key); err != nil {
		return err
	}
	return s.Storage.Put(ctx, e)
}

func (s *secondaryStorage) Delete(ctx context.Context, key string) error {
	if err := s.check(key); err != nil {
		return err
	}
	return s.Storage.Delete(ctx, key)
}

func (s *secondaryStorage) Transaction(ctx context.Context, ops []*storage.TxnOp) error {
	for _, op := range ops {
		if err := s.check(op.Entry.Key); err != nil {
			return err
		}
	}
	return s.Storage.Transaction(ctx, ops)
}

const (
	rd   = logical.ReadOperation
	wr   = logical.UpdateOperation
	cr   = logical.CreateOperation
	del  = logical.DeleteOperation
	list = logical.ListOperation
)
