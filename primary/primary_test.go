package primary

import (
	"context"
	"testing"

	"github.com/cofferhq/coffer/bus/bustest"
	"github.com/cofferhq/coffer/logical"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/inmem"
	"github.com/cofferhq/coffer/wal"
	"github.com/rs/zerolog"
)

func TestMakeBatchKeepsReplicatedOpsAndTheRange(t *testing.T) {
	p := &Primary{cfg: Config{ClusterID: "c"}, st: &persisted{}}
	big := make([]byte, maxBatchBytes/2)
	entries := []*wal.Entry{
		{Index: 7, Ops: []wal.Op{{Kind: storage.PutOperation, Class: wal.Local, Key: "sys/token/x", Value: []byte("t")}}},
		{Index: 8, Ops: []wal.Op{{Kind: storage.PutOperation, Class: wal.Replicated, Key: "a", Value: big}, {Kind: storage.PutOperation, Class: wal.Local, Key: "sys/expire/y"}}},
		{Index: 9, Ops: []wal.Op{{Kind: storage.DeleteOperation, Class: wal.Replicated, Key: "b"}}},
		{Index: 10, Ops: []wal.Op{{Kind: storage.PutOperation, Class: wal.Replicated, Key: "c", Value: big}}},
	}
	b := p.makeBatch(entries)
	if b.First != 7 || b.Last != 9 || len(b.Entries) != 2 || b.Entries[0].Index != 8 || len(b.Entries[0].Ops) != 1 || b.Entries[1].Index != 9 {
		t.Fatalf("batch %d-%d with %d entries: %+v", b.First, b.Last, len(b.Entries), b.Entries)
	}
	only := p.makeBatch(entries[:1])
	if only.First != 7 || only.Last != 7 || len(only.Entries) != 0 {
		t.Fatalf("local-only batch %d-%d with %d entries", only.First, only.Last, len(only.Entries))
	}
	// With DR on, the local ops go into the DR section, in index order.
	p.st.DR = true
	dr := p.makeBatch(entries)
	if len(dr.DREntries) != 2 || dr.DREntries[0].Index != 7 || dr.DREntries[1].Index != 8 || dr.DREntries[1].Ops[0].Key != "sys/expire/y" {
		t.Fatalf("DR entries %+v", dr.DREntries)
	}
	for _, e := range dr.Entries {
		for _, op := range e.Ops {
			if op.Class != wal.Replicated {
				t.Fatalf("a local op in the main section: %+v", op)
			}
		}
	}
}

// A failed enable (the stream cannot be created: the bus is closed) leaves no
// state behind, so enable can be retried once NATS is back.
func TestEnableFailureCanBeRetried(t *testing.T) {
	ctx := context.Background()
	raw := inmem.New()
	log, err := wal.Open(ctx, raw, wal.Options{}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = log.Close() })
	cfg := Config{
		ClusterID: "dc1", APIAddr: "http://dc1:8200", WAL: log, Raw: raw,
		State:   logical.NewView(raw, "core/replication/primary/"),
		RootKey: func() ([]byte, error) { return make([]byte, 32), nil },
		Logger:  zerolog.Nop(),
	}
	dead := bustest.Start(t)
	if err := dead.Close(); err != nil {
		t.Fatal(err)
	}
	cfg.Bus = dead
	if _, err := Enable(ctx, cfg); err == nil {
		t.Fatal("enable on a closed bus succeeded")
	}
	if names, _ := raw.List(ctx, "core/replication/primary/"); len(names) != 0 {
		t.Fatalf("a failed enable left state behind: %v", names)
	}
	cfg.Bus = bustest.Start(t)
	p, err := Enable(ctx, cfg)
	if err != nil {
		t.Fatalf("enable after a failed attempt: %v", err)
	}
	p.Stop()
}
