package replmode

import (
	"context"
	"testing"

	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/inmem"
)

// The stored mode keeps the bytes earlier builds wrote (core wrote this
// record before replmode existed): a restarted server finds its role.
func TestStateBytes(t *testing.T) {
	ctx := context.Background()
	b := inmem.New()
	old := `{"v":1,"mode":"secondary","secondary_id":"dc2","primary_cluster_addr":"nats://p:4222","primary_api_addr":"http://p:8200"}`
	if err := b.Put(ctx, &storage.Entry{Key: "core/replication/mode", Value: []byte(old)}); err != nil {
		t.Fatal(err)
	}
	st, ok, err := loadState(ctx, b)
	if err != nil || !ok || st.Mode != "secondary" || st.SecondaryID != "dc2" || st.PrimaryAPIAddr != "http://p:8200" {
		t.Fatalf("load: %+v %v %v", st, ok, err)
	}
	if err := saveState(ctx, b, st); err != nil {
		t.Fatal(err)
	}
	e, _ := b.Get(ctx, "core/replication/mode")
	if string(e.Value) != old {
		t.Fatalf("saved %s, want %s", e.Value, old)
	}
	if err := b.Put(ctx, &storage.Entry{Key: "core/replication/mode", Value: []byte(`{"v":2,"mode":"primary"}`)}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := loadState(ctx, b); err == nil {
		t.Fatal("a newer record was read")
	}
	if err := deleteState(ctx, b); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := loadState(ctx, b); ok || err != nil {
		t.Fatalf("after delete: %v %v", ok, err)
	}
}
