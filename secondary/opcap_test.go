package secondary_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/cofferhq/coffer/bus"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/wal"
)

// A secondary whose storage takes few operations per transaction (Consul
// takes 128; here 6, so a WAL write holds 4) applies batches of many
// entries, a full sync and deletions in writes cut under the cap, and
// converges: nothing is refused, nothing split inside an entry.
func TestSecondaryUnderAnOpCap(t *testing.T) {
	b := embeddedBus(t)
	ps := startPrimary(t, b, "dc1", bus.StreamConfig{})
	for i := range 40 {
		ps.put(t, fmt.Sprintf("logical/cap/before/%02d", i), "v")
	}
	ss := newSecondarySideOn(t, "dc2", newClusterWith(t, wal.Options{MaxOps: 6}))
	ss.activate(t, ps.token(t, "dc2"))
	converge(t, ps, ss)
	// Concurrent writes on the primary: its batches hold many entries.
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				key := fmt.Sprintf("logical/cap/after/%d/%02d", w, i)
				if err := ps.wal.Put(context.Background(), &storage.Entry{Key: key, Value: []byte("x")}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	converge(t, ps, ss)
}
