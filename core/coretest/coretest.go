// Package coretest starts real cores for the tests of the packages above
// core (httpapi, replmode). It is for tests only and must never be imported
// by non-test code (internal/testutil's TestNotLinkedIntoCoffer checks it).
package coretest

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/cofferhq/coffer/core"
	"github.com/cofferhq/coffer/core/rootgen"
	"github.com/cofferhq/coffer/forwarder"
	"github.com/cofferhq/coffer/logical"
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

// UnsealedShamir returns an initialized, unsealed core on in-memory storage
// with 3 unseal key shares, threshold 2 (closed at cleanup), its root token
// and the shares.
func UnsealedShamir(t testing.TB) (*core.Core, string, [][]byte) {
	t.Helper()
	ctx := context.Background()
	c, err := core.New(ctx, core.Config{Physical: inmem.New(), StorageType: "inmem", ClusterName: "test", Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	res, err := c.Initialize(ctx, core.InitRequest{SecretShares: 3, SecretThreshold: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range res.Keys[:2] {
		if _, err := c.Unseal(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	return c, res.RootToken, res.Keys
}

// Replication is a core.Replication that does what a core without one does,
// reporting the modes set with SetMode and SetDRMode ("disabled" until
// then). Its zero value is ready: attach it with c.SetReplication, e.g. to
// make a core a DR secondary for the DR operation token endpoints and
// CheckDROperationToken without a DR replication set.
type Replication struct {
	mode, dr atomic.Pointer[string]
}

var _ core.Replication = (*Replication)(nil)

// SetMode sets the performance mode Mode reports.
func (r *Replication) SetMode(m string) { r.mode.Store(&m) }

// SetDRMode sets the DR mode DRMode reports.
func (r *Replication) SetDRMode(m string) { r.dr.Store(&m) }

func load(p *atomic.Pointer[string]) string {
	if m := p.Load(); m != nil {
		return *m
	}
	return core.ModeDisabled
}

func (r *Replication) Start(context.Context) error { return nil }
func (r *Replication) Stop()                       {}
func (r *Replication) Mode() string                { return load(&r.mode) }
func (r *Replication) DRMode() string              { return load(&r.dr) }
func (r *Replication) HandleRequest(context.Context, *logical.Request, string) (*logical.Response, error) {
	return nil, logical.InvalidRequest("coretest.Replication serves no sys/replication/* request")
}
func (r *Replication) Forwarder() *forwarder.Client     { return nil }
func (r *Replication) Position() (string, uint64, bool) { return "", 0, false }
func (r *Replication) PrimaryAPIAddr() string           { return "" }
func (r *Replication) ShippedIndex() (uint64, bool)     { return 0, false }
func (r *Replication) Status() map[string]any           { return map[string]any{"mode": r.Mode()} }
func (r *Replication) WriteRefusal() error              { return nil }
func (r *Replication) ActivationPending() bool          { return false }
func (r *Replication) HandleSealed(context.Context, *logical.Request, string) (*logical.Response, error) {
	return nil, core.ErrSealed
}

// DROperationToken runs a whole DR operation token generation on c (whose
// replication layer must report DR mode "secondary") with shares, as key
// holders would, and returns the decoded token.
func DROperationToken(t testing.TB, c *core.Core, shares [][]byte) string {
	t.Helper()
	ctx := context.Background()
	g := c.DROperationTokenGeneration()
	st, err := g.Start(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var up *core.GenerationStatus
	for _, s := range shares {
		if up, err = g.Update(ctx, s, st.Nonce); err != nil {
			t.Fatal(err)
		}
	}
	if up == nil || !up.Complete {
		t.Fatalf("DR operation token generation not complete after %d shares: %+v", len(shares), up)
	}
	tok, err := rootgen.Decode(up.EncodedToken, st.OTP)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
