package replmode

import (
	"context"

	"github.com/cofferhq/coffer/forwarder"
	"github.com/cofferhq/coffer/replication"
	"github.com/cofferhq/coffer/storage"
)

// Forwarding state, under the barrier (class ignored: never shipped):
//
//	core/replication/forward/seq               a secondary's sequence reservation {"v":1,"reserved":N}
//	core/replication/forward/window/<id>       a primary's admitted numbers of secondary <id> (forwarder.Window)
//
// An activation wipes the secondary's reservation, so the primary forgets a
// secondary's window when it issues that id a new activation token (a
// request of the old activation cannot be replayed anyway: its RPC key died
// with it).
const (
	forwardSeqKey    = "core/replication/forward/seq"
	forwardWindowPre = "core/replication/forward/window/"
)

type seqRec struct {
	V        int    `json:"v"`
	Reserved uint64 `json:"reserved"`
}

var seqRecord = replication.StateRecord[seqRec]{Key: forwardSeqKey, Version: 1, Name: "forwarding sequence"}

// seqStore keeps a secondary's reservation.
type seqStore struct{ b storage.Backend }

func (s seqStore) Load(ctx context.Context) (uint64, error) {
	r, err := seqRecord.Load(ctx, s.b)
	if err != nil || r == nil {
		return 0, err
	}
	return r.Reserved, nil
}

func (s seqStore) Save(ctx context.Context, n uint64) error {
	return seqRecord.Save(ctx, s.b, &seqRec{V: 1, Reserved: n})
}

func windowRecord(secondaryID string) replication.StateRecord[forwarder.Window] {
	return replication.StateRecord[forwarder.Window]{Key: forwardWindowPre + secondaryID, Version: forwarder.WindowVersion, Name: "forwarding window of " + secondaryID}
}

// windowStore keeps a primary's windows.
type windowStore struct{ b storage.Backend }

func (w windowStore) Load(ctx context.Context, secondaryID string) (*forwarder.Window, error) {
	return windowRecord(secondaryID).Load(ctx, w.b)
}

func (w windowStore) Save(ctx context.Context, secondaryID string, win *forwarder.Window) error {
	return windowRecord(secondaryID).Save(ctx, w.b, win)
}

func (w windowStore) forget(ctx context.Context, secondaryID string) error {
	return w.b.Delete(ctx, forwardWindowPre+secondaryID)
}
