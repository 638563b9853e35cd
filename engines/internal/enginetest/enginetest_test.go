package enginetest

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/logical"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/inmem"
)

// fakeTB records the first failure; Fatalf ends its goroutine like
// testing.T's does.
type fakeTB struct {
	testing.TB
	msg string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (f *fakeTB) Errorf(format string, args ...any) {
	if f.msg == "" {
		f.msg = fmt.Sprintf(format, args...)
	}
}

// failure runs fn against a fakeTB on its own goroutine and returns the
// failure it recorded, "" for none.
func failure(fn func(t testing.TB)) string {
	f := &fakeTB{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	return f.msg
}

// echo answers a read of "ok" with the request's mount and address, and
// anything else with ErrNotFound; it exists at "here" only.
type echo struct{}

func (echo) HandleRequest(_ context.Context, req *logical.Request) (*logical.Response, error) {
	if req.Path != "ok" {
		return nil, fmt.Errorf("%w: nothing at %s", logical.ErrNotFound, req.Path)
	}
	return &logical.Response{Data: map[string]any{
		"mount": req.MountPoint, "type": req.MountType, "remote": req.RemoteAddr, "op": string(req.Operation),
	}}, nil
}

func (echo) ExistenceCheck(_ context.Context, req *logical.Request) (bool, error) {
	return req.Path == "here" && req.Storage != nil, nil
}

func TestTarget(t *testing.T) {
	tg := Target{Backend: echo{}, Storage: inmem.New(), MountPoint: "m/", MountType: "echo", RemoteAddr: "10.0.0.1:1"}
	JSONEq(t, "echo", tg.Must(t, logical.ReadOperation, "ok", nil).Data,
		map[string]any{"mount": "m/", "type": "echo", "remote": "10.0.0.1:1", "op": "read"})
	if err := tg.Fails(t, logical.ReadOperation, "nope", nil, 404, "nothing at nope"); !strings.Contains(err.Error(), "not found") {
		t.Fatalf("Fails returned %v", err)
	}
	if !tg.Exists(t, "here") || tg.Exists(t, "there") {
		t.Fatal("Exists")
	}
	for _, c := range []struct {
		fn   func(t testing.TB)
		want string
	}{
		{func(t testing.TB) { tg.Must(t, logical.ReadOperation, "nope", nil) }, "read nope: not found: nothing at nope"},
		{func(t testing.TB) { tg.Fails(t, logical.ReadOperation, "ok", nil, 404, "x") }, "read ok: succeeded with"},
		{func(t testing.TB) { tg.Fails(t, logical.ReadOperation, "nope", nil, 400, "x") }, "read nope: status 404 (not found: nothing at nope), want 400"},
		{func(t testing.TB) { tg.Fails(t, logical.ReadOperation, "nope", nil, 404, "x") }, `read nope: error "not found: nothing at nope" does not mention "x"`},
		{func(t testing.TB) { JSONEq(t, "n", []string{"a"}, []any{"b"}) }, "n:\n got  [\"a\"]\n want [\"b\"]"},
		{func(t testing.TB) { JSONEq(t, "n", []string{"a"}, []any{"a"}) }, ""},
		{func(t testing.TB) { JSONEq(t, "n", map[string]int{"a": 1}, map[string]any{"a": 1.0}) }, ""},
	} {
		if got := failure(c.fn); (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("failure %q, want %q", got, c.want)
		}
	}
}

func TestRaw(t *testing.T) {
	s := inmem.New()
	ctx := context.Background()
	if err := s.Put(ctx, &storage.Entry{Key: "k", Value: []byte(`{"a":1}`)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, &storage.Entry{Key: "bad", Value: []byte(`{`)}); err != nil {
		t.Fatal(err)
	}
	JSONEq(t, "k", Raw(t, s, "k"), map[string]any{"a": 1})
	if m := Raw(t, s, "none"); m != nil {
		t.Fatalf("Raw of a missing key: %v", m)
	}
	if got := failure(func(t testing.TB) { Raw(t, s, "bad") }); !strings.HasPrefix(got, "decode bad: ") {
		t.Fatalf("failure %q", got)
	}
}

type local map[string]bool

func (l local) ServedLocally(req *logical.Request) bool { return l[req.Path] }
func (local) LocalStoragePrefixes() []string            { return nil }

func TestServedLocally(t *testing.T) {
	l := local{"a": true}
	ServedLocally(t, l, []Route{{Op: logical.UpdateOperation, Path: "a", Local: true}, {Op: logical.UpdateOperation, Path: "b"}})
	got := failure(func(t testing.TB) {
		ServedLocally(t, l, []Route{{Op: logical.UpdateOperation, Path: "b", Local: true}})
	})
	if got != "ServedLocally(update b) = false, want true" {
		t.Fatalf("failure %q", got)
	}
}
