package replmode

import "testing"

// While the stored primary role retries its start (NATS down at unseal),
// the WAL collector may truncate nothing past what was shipped: the shipped
// index it reads is 0 until the shipper runs, not "no shipper".
func TestShippedIndexWhileStarting(t *testing.T) {
	m := &Manager{mode: Primary, starting: &retry{cancel: func() {}, done: make(chan struct{})}}
	if idx, ok := m.ShippedIndex(); !ok || idx != 0 {
		t.Fatalf("starting primary: shipped %d, %v; want 0, true", idx, ok)
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
