package replication

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/inmem"
)

type testRecord struct {
	V     int    `json:"v"`
	Index uint64 `json:"index"`
}

func TestStateRecordRoundTripAndFormat(t *testing.T) {
	ctx := context.Background()
	b := inmem.New()
	r := StateRecord[testRecord]{Key: "core/replication/x", Version: 1, Name: "test state"}
	if got, err := r.Load(ctx, b); got != nil || err != nil {
		t.Fatalf("absent: %v, %v", got, err)
	}
	if err := r.Save(ctx, b, &testRecord{V: 1, Index: 7}); err != nil {
		t.Fatal(err)
	}
	// The bytes are T's JSON exactly: the disk format is T's.
	if e, _ := b.Get(ctx, r.Key); e == nil || string(e.Value) != `{"v":1,"index":7}` {
		t.Fatalf("stored %v", e)
	}
	got, err := r.Load(ctx, b)
	if err != nil || got == nil || *got != (testRecord{V: 1, Index: 7}) {
		t.Fatalf("load: %+v, %v", got, err)
	}
	op, err := r.Op(&testRecord{V: 1, Index: 9})
	if err != nil || op.Operation != storage.PutOperation || op.Entry.Key != r.Key || string(op.Entry.Value) != `{"v":1,"index":9}` {
		t.Fatalf("op: %+v, %v", op, err)
	}
}

func TestStateRecordRefusesOtherVersionsAndDamage(t *testing.T) {
	r := StateRecord[testRecord]{Key: "k", Version: 1}
	for _, tc := range []struct{ in, want string }{
		{`{"v":2,"index":"not a number"}`, "read k: version 2, this build knows 1"},
		{`{"index":3}`, "version 0"},
		{`{"v":1,"index":"x"}`, "read k: json"},
		{`not json`, "read k: "},
	} {
		if _, err := r.Decode([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Decode(%s) = %v, want %q", tc.in, err, tc.want)
		}
	}
}

type failingBackend struct{ storage.Backend }

var errDisk = errors.New("disk on fire")

func (failingBackend) Get(context.Context, string) (*storage.Entry, error) { return nil, errDisk }
func (failingBackend) Put(context.Context, *storage.Entry) error           { return errDisk }

func TestStateRecordWrapsStorageErrors(t *testing.T) {
	r := StateRecord[testRecord]{Key: "k", Version: 1, Name: "test state"}
	if _, err := r.Load(context.Background(), failingBackend{}); !errors.Is(err, errDisk) || !strings.HasPrefix(err.Error(), "read test state: ") {
		t.Fatalf("load: %v", err)
	}
	if err := r.Save(context.Background(), failingBackend{}, &testRecord{V: 1}); !errors.Is(err, errDisk) || !strings.HasPrefix(err.Error(), "write test state: ") {
		t.Fatalf("save: %v", err)
	}
}

func TestLagOf(t *testing.T) {
	now := time.Unix(2000, 0)
	commit := now.Add(-3 * time.Second).UnixNano()
	for _, tc := range []struct {
		lastRemote, lastWAL uint64
		commit              int64
		want                time.Duration
	}{
		{10, 10, commit, 0},                         // caught up: no lag, however old the last write
		{11, 10, commit, 0},                         // ahead of a stale heartbeat
		{9, 10, commit, 3 * time.Second},            // behind: the age of the newest entry applied
		{9, 10, 0, 0},                               // nothing applied yet: unknown
		{9, 10, now.Add(time.Second).UnixNano(), 0}, // a commit time ahead of this clock
	} {
		if got := LagOf(now, tc.lastRemote, tc.lastWAL, tc.commit); got != tc.want {
			t.Errorf("LagOf(remote %d, last %d) = %s, want %s", tc.lastRemote, tc.lastWAL, got, tc.want)
		}
	}
}
