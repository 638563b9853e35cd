package tokens

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/cofferhq/coffer/logical"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/inmem"
)

// Where the harness keeps the batch token keys, outside the store's
// sys/token/ view, as core does.
const (
	testBatchSigningKeyPath = "core/local-token-batch-signing-key"
	testBatchPublicKeyPath  = "core/token-batch-pub"
)

// t0 is the injected clock's start.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// harness is a store over the real storage stack minus encryption: inmem
// wrapped in the sys/token/ view the core gives it.
type harness struct {
	t     *testing.T
	ctx   context.Context
	clock *testutil.Clock
	mem   *inmem.Backend
	view  *logical.View
	s     *Store
	b     logical.Backend
	root  string
}

func newHarness(t *testing.T, opts Options) *harness {
	t.Helper()
	mem := inmem.New()
	return newHarnessOn(t, mem, logical.NewView(mem, "sys/token/"), testutil.NewClock(t0), opts)
}

func newHarnessOn(t *testing.T, mem *inmem.Backend, view *logical.View, c *testutil.Clock, opts Options) *harness {
	t.Helper()
	opts.Now = c.Now
	if opts.BatchKeyStorage == nil {
		opts.BatchKeyStorage, opts.BatchSigningKeyPath, opts.BatchPublicKeyPath = mem, testBatchSigningKeyPath, testBatchPublicKeyPath
	}
	s := New(view, opts, zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel))
	t.Cleanup(s.Stop)
	h := &harness{t: t, ctx: context.Background(), clock: c, mem: mem, view: view, s: s, b: s.Backend()}
	root, err := s.CreateRoot(h.ctx, "")
	if err != nil {
		t.Fatalf("CreateRoot: %v", err)
	}
	h.root = root.ID
	return h
}

// create stores e and fails the test on error.
func (h *harness) create(e *Entry) *Entry {
	h.t.Helper()
	if err := h.s.Create(h.ctx, e); err != nil {
		h.t.Fatalf("Create: %v", err)
	}
	return e
}

// child creates a child of parent with policies.
func (h *harness) child(parent string, policies ...string) *Entry {
	h.t.Helper()
	return h.create(&Entry{Parent: parent, Policies: policies, Renewable: true})
}

func (h *harness) lookup(id string) *Entry {
	h.t.Helper()
	e, err := h.s.Lookup(h.ctx, id)
	if err != nil {
		h.t.Fatalf("Lookup: %v", err)
	}
	return e
}

// stored reports whether the token's record is in storage, read directly.
func (h *harness) stored(id string) bool {
	h.t.Helper()
	key, err := h.s.hash(h.ctx, id)
	if err != nil {
		h.t.Fatal(err)
	}
	e, err := h.mem.Get(h.ctx, "sys/token/id/"+key)
	if err != nil {
		h.t.Fatal(err)
	}
	return e != nil
}

// keys lists every storage key under sys/token/<prefix>, recursively.
func (h *harness) keys(prefix string) []string {
	h.t.Helper()
	var out []string
	if err := storage.Walk(h.ctx, h.mem, "sys/token/"+prefix, "", func(k string) (bool, error) {
		out = append(out, k)
		return true, nil
	}); err != nil {
		h.t.Fatal(err)
	}
	return out
}

// req sends a request to the backend as the holder of token.
func (h *harness) req(token string, op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
	h.t.Helper()
	return h.b.HandleRequest(h.ctx, &logical.Request{
		Operation: op, Path: path, Data: data, ClientToken: token, MountPoint: "auth/token/", MountType: "token",
	})
}

// must sends a request that has to succeed.
func (h *harness) must(token string, op logical.Operation, path string, data map[string]any) *logical.Response {
	h.t.Helper()
	resp, err := h.req(token, op, path, data)
	if err != nil {
		h.t.Fatalf("%s %s: %v", op, path, err)
	}
	return resp
}

// fails sends a request that has to fail with status code and a message
// containing msg.
func (h *harness) fails(token string, op logical.Operation, path string, data map[string]any, code int, msg string) {
	h.t.Helper()
	_, err := h.req(token, op, path, data)
	if err == nil {
		h.t.Fatalf("%s %s: succeeded, want %d %q", op, path, code, msg)
	}
	if got := logical.StatusCode(err); got != code || !strings.Contains(err.Error(), msg) {
		h.t.Fatalf("%s %s: got %d %q, want %d containing %q", op, path, got, err, code, msg)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, what, func() error {
		if !cond() {
			return errors.New("not yet")
		}
		return nil
	})
}

func isErr(err, target error) bool { return errors.Is(err, target) }
