package kv

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/storage"
)

// A version record is framed by hand (versionOp): it must be what
// json.Marshal makes of versionRecord, byte for byte, whatever the data.
func TestVersionRecordIsWhatMarshalWrites(t *testing.T) {
	for _, data := range []map[string]any{
		{},
		{"pw": "hunter2"},
		{"html": "<script>&</script>", "quote": `"\`, "line": "a\nb\tc", "ctl": "\u0001\u2028\u2029"},
		{"unicode": "clé 秘密 🔑", "n": 1.5e300, "i": -7, "t": true, "nil": nil},
		{"nested": map[string]any{"list": []any{1, "two", map[string]any{"three": 3}}, "empty": []any{}}},
		{"big": strings.Repeat("x", 70_000)},
	} {
		raw, err := json.Marshal(data)
		if err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(versionRecord{V: recordVersion, Data: raw})
		if err != nil {
			t.Fatal(err)
		}
		op := versionOp("a/b", 7, raw)
		if op.Operation != storage.PutOperation || op.Entry.Key != "versions/a/b/7" {
			t.Fatalf("op %v on %q, want a put on versions/a/b/7", op.Operation, op.Entry.Key)
		}
		if !bytes.Equal(op.Entry.Value, want) {
			t.Fatalf("record\n%.200s\nwant\n%.200s", op.Entry.Value, want)
		}
		var rec versionRecord
		if err := decodeRecord(op.Entry.Key, op.Entry.Value, &rec, &rec.V); err != nil {
			t.Fatalf("the record does not read back: %v", err)
		}
	}
}

// The existence check asks whether the metadata record is there, not what
// it holds: a damaged record still "exists" (the write needs update, not
// create), and the write itself reports the damage, naming the record.
func TestV2ExistenceCheckOfADamagedRecord(t *testing.T) {
	h := newHarness(t, "2")
	if h.exists("data/app") {
		t.Fatal("a key never written exists")
	}
	h.must(cr, "data/app", map[string]any{"data": map[string]any{"pw": "one"}})
	if !h.exists("data/app") || !h.exists("metadata/app") || !h.exists("subkeys/app") {
		t.Fatal("a written key does not exist")
	}
	if err := h.view.Put(context.Background(), &storage.Entry{Key: "metadata/app", Value: []byte("{not json")}); err != nil {
		t.Fatal(err)
	}
	if !h.exists("data/app") {
		t.Fatal("a key whose metadata record is damaged reads as absent: a write would need create, not update")
	}
	h.fails(wr, "data/app", map[string]any{"data": map[string]any{"pw": "two"}}, 500, `decode "metadata/app"`)
}

// BenchmarkV2DataWrite is one KV v2 write of a 1 KiB value to a key with
// ten versions, through the backend on inmem (no HTTP, no encryption): the
// existence check, the request's data, the metadata and both records.
func BenchmarkV2DataWrite(b *testing.B) {
	h := newHarness(b, "2")
	data := map[string]any{"data": map[string]any{"v": strings.Repeat("k", 1366)}}
	for range 10 {
		h.must(cr, "data/app", data)
	}
	tg := h.target()
	b.ReportAllocs()
	for b.Loop() {
		if !tg.Exists(b, "data/app") {
			b.Fatal("the key written does not exist")
		}
		if _, err := tg.Call(wr, "data/app", data); err != nil {
			b.Fatal(err)
		}
	}
}
