package primary

import (
	"context"
	"testing"

	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/inmem"
)

// The state records' disk format: what a primary wrote stays readable, and is
// written back byte for byte.
func TestStateRecordsDiskFormat(t *testing.T) {
	ctx := context.Background()
	const stateJSON = `{"v":1,"cluster_id":"c1",` +
		`"signing_key":"BAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBA==",` +
		`"epoch":1,"keys":{"1":"AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM="},"secondaries":{` +
		`"dc2":{"state":"active","rpc_key":"AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=","activated_at":"2025-01-02T03:04:05Z"},` +
		`"dc3":{"state":"pending","jti":"j3","token_expires":"2025-01-02T03:34:05Z"},` +
		`"dc4":{"state":"pending","jti":"j4","token_expires":"2025-01-02T03:34:05Z","activation_secret":"BQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQU="},` +
		`"dc5":{"state":"active","jti":"j5","activated_by":"BgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgY=","rpc_key":"AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=","activated_at":"2025-01-02T03:04:05Z"}}}`
	const shippedJSON = `{"v":1,"index":7}`

	b := inmem.New()
	for k, v := range map[string]string{stateKey: stateJSON, shippedKey: shippedJSON} {
		if err := b.Put(ctx, &storage.Entry{Key: k, Value: []byte(v)}); err != nil {
			t.Fatal(err)
		}
	}
	s, err := loadState(ctx, b)
	if err != nil || s == nil {
		t.Fatalf("load state: %v, %v", s, err)
	}
	if s.ClusterID != "c1" || len(s.signer()) != 64 || s.Secondary["dc2"].State != SecondaryActive || s.Secondary["dc3"].JTI != "j3" ||
		len(s.Secondary["dc4"].Secret) != 32 || len(s.Secondary["dc5"].ActivatedBy) != 32 {
		t.Fatalf("state: %+v", s)
	}
	if r, ok, err := loadShipped(ctx, b); r.Index != 7 || r.Seq != 0 || !ok || err != nil {
		t.Fatalf("shipped: %+v %v %v", r, ok, err)
	}

	out := inmem.New()
	if err := saveState(ctx, out, s); err != nil {
		t.Fatal(err)
	}
	if err := saveShipped(ctx, out, 7, 0); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{stateKey: stateJSON, shippedKey: shippedJSON} {
		if e, _ := out.Get(ctx, k); e == nil || string(e.Value) != want {
			t.Fatalf("%s written back as %s", k, e.Value)
		}
	}
	if _, ok, err := loadShipped(ctx, inmem.New()); ok || err != nil {
		t.Fatalf("absent shipped: %v %v", ok, err)
	}

	// The stream sequence, when known, goes with the index.
	const withSeq = `{"v":1,"index":9,"seq":12}`
	if err := saveShipped(ctx, out, 9, 12); err != nil {
		t.Fatal(err)
	}
	if e, _ := out.Get(ctx, shippedKey); e == nil || string(e.Value) != withSeq {
		t.Fatalf("shipped with a sequence written as %s", e.Value)
	}
	if r, ok, err := loadShipped(ctx, out); r.Index != 9 || r.Seq != 12 || !ok || err != nil {
		t.Fatalf("shipped with a sequence: %+v %v %v", r, ok, err)
	}
}
