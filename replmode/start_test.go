package replmode

import (
	"context"
	"testing"

	"github.com/cofferhq/coffer/core/coretest"
	"github.com/cofferhq/coffer/storage"
)

// While the stored primary role retries its start (NATS down at unseal),
// the WAL collector may truncate nothing past what was shipped: the shipped
// index it reads is the stored one, not "no shipper".
func TestShippedIndexWhileStarting(t *testing.T) {
	ctx := context.Background()
	c, _ := coretest.Unsealed(t)
	m := New(c, Config{})
	m.mode, m.starting = Primary, &retry{cancel: func() {}, done: make(chan struct{})}
	if idx, ok := m.ShippedIndex(); !ok || idx != 0 {
		t.Fatalf("starting primary, nothing stored: shipped %d, %v; want 0, true", idx, ok)
	}
	if err := c.Barrier().Put(ctx, &storage.Entry{Key: primaryPrefix + "shipped", Value: []byte(`{"v":1,"index":42}`)}); err != nil {
		t.Fatal(err)
	}
	if idx, ok := m.ShippedIndex(); !ok || idx != 42 {
		t.Fatalf("starting primary: shipped %d, %v; want the stored 42", idx, ok)
	}
	close(m.starting.done)
	m.Stop()
	if _, ok := m.ShippedIndex(); ok {
		t.Fatal("a stopped layer reports a shipped index")
	}
	if _, err := m.livePrimary(OpSecondaryToken); err == nil {
		t.Fatal("a secondary token from a stopped layer")
	}
}
