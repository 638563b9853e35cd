package secondary

import (
	"context"
	"testing"

	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/inmem"
)

// The state records' disk format: what a secondary wrote stays readable, and
// is written back byte for byte.
func TestStateRecordsDiskFormat(t *testing.T) {
	ctx := context.Background()
	const secretJSON = `{"v":1,"primary_cluster_id":"c1","secondary_id":"dc2","primary_api_addr":"http://127.0.0.1:8200",` +
		`"bus_url":"nats://127.0.0.1:4222","signing_public_key":"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=",` +
		`"rpc_key":"AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=","stream":"COFFER_WAL_c1","subject":"coffer.c1.wal",` +
		`"epoch":2,"keys":{"1":"AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM=","2":"AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI="}}`
	const positionJSON = `{"v":1,"last_remote_wal":42}`

	b := inmem.New()
	if err := b.Put(ctx, &storage.Entry{Key: secretKey, Value: []byte(secretJSON)}); err != nil {
		t.Fatal(err)
	}
	sec, err := loadSecret(ctx, b)
	if err != nil || sec == nil {
		t.Fatalf("load secret: %v, %v", sec, err)
	}
	if sec.SecondaryID != "dc2" || sec.Epoch != 2 || sec.key(1)[0] != 3 || len(sec.pub()) != 32 || sec.Stream != "COFFER_WAL_c1" {
		t.Fatalf("secret: %+v", sec)
	}
	out := inmem.New()
	if err := saveSecret(ctx, out, sec); err != nil {
		t.Fatal(err)
	}
	if e, _ := out.Get(ctx, secretKey); e == nil || string(e.Value) != secretJSON {
		t.Fatalf("secret written back as %s", e.Value)
	}

	if op := positionOp(DefaultStateKey, 42, 0); op.Entry.Key != DefaultStateKey || string(op.Entry.Value) != positionJSON {
		t.Fatalf("position op %s = %s", op.Entry.Key, op.Entry.Value)
	}
	if err := b.Put(ctx, &storage.Entry{Key: DefaultStateKey, Value: []byte(positionJSON)}); err != nil {
		t.Fatal(err)
	}
	if last, _, err := loadPosition(ctx, b, DefaultStateKey); last != 42 || err != nil {
		t.Fatalf("load position: %d, %v", last, err)
	}
	if last, _, err := loadPosition(ctx, b, "core/replication/secondary/absent"); last != 0 || err != nil {
		t.Fatalf("absent position: %d, %v", last, err)
	}
}
