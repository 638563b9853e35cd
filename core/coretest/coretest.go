// Package coretest starts real cores for the tests of the packages above
// core (httpapi, replmode). It is for tests only and must never be imported
// by non-test code (internal/testutil's TestNotLinkedIntoCoffer checks it).
package coretest

import (
	"context"
	"testing"

	"github.com/cofferhq/coffer/core"
	"github.com/cofferhq/coffer/storage/inmem"
	"github.com/rs/zerolog"
)

// Unsealed returns an initialized, unsealed core on in-memory storage
// (closed at cleanup) and its root token.
func Unsealed(t testing.TB) (*core.Core, string) {
	t.Helper()
	ctx := context.Background()
	c, err := core.New(ctx, core.Config{Physical: inmem.New(), StorageType: "inmem", ClusterName: "test", Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	res, err := c.Initialize(ctx, core.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Unseal(ctx, res.Keys[0]); err != nil {
		t.Fatal(err)
	}
	return c, res.RootToken
}
