package core_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/core"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/inmem"
	"github.com/rs/zerolog"
)

// snapshot is every key of b with its value.
func snapshot(t *testing.T, b storage.Backend) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := storage.Walk(context.Background(), b, "", "", func(k string) (bool, error) {
		e, err := b.Get(context.Background(), k)
		if err != nil || e == nil {
			return false, fmt.Errorf("get %s: %v", k, err)
		}
		out[k] = string(e.Value)
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A standby writes nothing, even on storage that would take its writes (the
// Consul fence aside): unsealing it where the active node has not yet
// written everything a first unseal writes (the audit salt) stores nothing;
// a request that would write is refused with ErrStandby; once activated it
// continues the stored log.
func TestStandbyWritesNothing(t *testing.T) {
	ctx := context.Background()
	b := inmem.New()
	// The other node's core; it must not close the shared storage.
	a, err := core.New(ctx, core.Config{Physical: struct{ storage.Transactional }{b}, StorageType: "inmem", Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	res, err := a.Initialize(ctx, core.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		t.Fatal(err)
	}
	last := a.WAL().LastIndex()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, b)

	s, err := core.New(ctx, core.Config{Physical: b, StorageType: "inmem", Standby: true, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Unseal(ctx, res.Keys[0]); err != nil {
		t.Fatalf("unseal the standby: %v", err)
	}
	_, err = s.HandleRequest(ctx, &core.Request{Operation: "update", Path: "sys/policies/acl/p", Token: res.RootToken,
		Data: map[string]any{"policy": `path "x" { capabilities = ["read"] }`}})
	if !errors.Is(err, core.ErrStandby) {
		t.Fatalf("a write on the standby: %v, want ErrStandby", err)
	}
	after := snapshot(t, b)
	for k, v := range after {
		if before[k] != v {
			t.Errorf("the standby wrote %s", k)
		}
	}
	if len(after) != len(before) {
		t.Errorf("the standby changed the key count: %d -> %d", len(before), len(after))
	}

	if err := s.Activate(ctx); err != nil {
		t.Fatalf("activate: %v", err)
	}
	if _, err := s.HandleRequest(ctx, &core.Request{Operation: "update", Path: "sys/policies/acl/p", Token: res.RootToken,
		Data: map[string]any{"policy": `path "x" { capabilities = ["read"] }`}}); err != nil {
		t.Fatalf("a write once active: %v", err)
	}
	if got := s.WAL().LastIndex(); got <= last {
		t.Fatalf("the activated node's last WAL index %d, want past the stored %d", got, last)
	}
	s.Deactivate()
	_, err = s.HandleRequest(ctx, &core.Request{Operation: "delete", Path: "sys/policies/acl/p", Token: res.RootToken})
	if !errors.Is(err, core.ErrStandby) || !strings.Contains(err.Error(), "standby") {
		t.Fatalf("a write after Deactivate: %v, want ErrStandby", err)
	}
}
