package core

import (
	"context"
	"errors"
	"testing"

	"github.com/cofferhq/coffer/logical"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/inmem"
)

// The storage of a request a backend serves on a secondary refuses every
// write outside the backend's local prefixes, before writing anything, so
// that the router forwards the request instead.
func TestLocalOnlyStorageRefusesReplicatedWritesWholly(t *testing.T) {
	ctx := context.Background()
	view := logical.NewView(inmem.New(), "auth/0000/")
	s := &localOnly{Storage: view, local: []string{"secret_id/"}, mount: "auth/approle/"}

	if err := s.Put(ctx, &storage.Entry{Key: "secret_id/a", Value: []byte("1")}); err != nil {
		t.Fatalf("a local write: %v", err)
	}
	if err := s.Put(ctx, &storage.Entry{Key: "role/web", Value: []byte("1")}); !errors.Is(err, logical.ErrReadOnly) {
		t.Fatalf("a replicated write: %v, want ErrReadOnly", err)
	}
	if err := s.Delete(ctx, "role/web"); !errors.Is(err, logical.ErrReadOnly) {
		t.Fatalf("a replicated delete: %v, want ErrReadOnly", err)
	}
	err := s.Transaction(ctx, []*storage.TxnOp{
		{Operation: storage.PutOperation, Entry: &storage.Entry{Key: "secret_id/b", Value: []byte("2")}},
		{Operation: storage.PutOperation, Entry: &storage.Entry{Key: "role_id/x", Value: []byte("3")}},
	})
	if !errors.Is(err, logical.ErrReadOnly) {
		t.Fatalf("a transaction touching a replicated key: %v, want ErrReadOnly", err)
	}
	if e, _ := view.Get(ctx, "secret_id/b"); e != nil {
		t.Fatal("the refused transaction wrote its local key")
	}
	if e, _ := view.Get(ctx, "secret_id/a"); e == nil {
		t.Fatal("the local write is missing")
	}
}

// A backend that serves writes locally keeps its local prefixes out of
// replication (the WAL classifier), and loses them with its mount.
func TestRouterClassifiesClusterLocalPrefixes(t *testing.T) {
	r := newRouter()
	e := &MountEntry{Table: AuthTable, Path: "approle/", Type: "approle", UUID: "u1"}
	mb := &mountedBackend{entry: e, backend: localBackend{}}
	r.add(mb)
	if !r.isLocalKey(e.StoragePrefix() + "secret_id/x") {
		t.Fatal("a secret id key is not local")
	}
	if r.isLocalKey(e.StoragePrefix() + "role/web") {
		t.Fatal("a role key is local")
	}
	r.remove(e.RoutePath())
	if r.isLocalKey(e.StoragePrefix() + "secret_id/x") {
		t.Fatal("the prefix outlived its mount")
	}
}

type localBackend struct{}

func (localBackend) HandleRequest(context.Context, *logical.Request) (*logical.Response, error) {
	return nil, nil
}
func (localBackend) ExistenceCheck(context.Context, *logical.Request) (bool, error) {
	return false, nil
}
func (localBackend) ServedLocally(*logical.Request) bool { return true }
func (localBackend) LocalStoragePrefixes() []string      { return []string{"secret_id/"} }
