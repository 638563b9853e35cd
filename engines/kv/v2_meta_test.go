package kv

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cofferhq/coffer/logical"
	"github.com/cofferhq/coffer/storage"
)

func TestV2MetadataReadWrite(t *testing.T) {
	h := newHarness(t, "2")
	if _, err := h.req(rd, "metadata/app", nil); !isNotFound(err) {
		t.Fatalf("metadata of a missing key: %v, want ErrNotFound", err)
	}
	// A write naming no field changes nothing (as Vault).
	if resp := h.must(wr, "metadata/app", map[string]any{}); resp != nil || h.raw("metadata/app") != nil {
		t.Fatalf("empty metadata write answered %+v and stored %v", resp, h.raw("metadata/app"))
	}
	// Metadata can exist before any version.
	h.must(cr, "metadata/app", map[string]any{
		"max_versions": float64(5), "cas_required": "false", "delete_version_after": "30m",
		"custom_metadata": map[string]any{"owner": "ops", "tier": float64(1)},
	})
	jsonEq(t, "metadata before any version", h.must(rd, "metadata/app", nil).Data, map[string]any{
		"cas_required": false, "created_time": ts(t0), "current_version": 0,
		"custom_metadata":      map[string]any{"owner": "ops", "tier": "1"},
		"delete_version_after": "30m0s", "max_versions": 5, "oldest_version": 0,
		"updated_time": ts(t0), "versions": map[string]any{},
	})
	if _, err := h.req(rd, "data/app", nil); !isNotFound(err) {
		t.Fatalf("data read with metadata but no version: %v, want ErrNotFound", err)
	}

	h.now = t0.Add(time.Minute)
	h.must(wr, "data/app", map[string]any{"data": map[string]any{"a": "1"}})
	h.now = t0.Add(2 * time.Minute)
	h.must(wr, "data/app", map[string]any{"data": map[string]any{"a": "2"}})
	h.must(wr, "delete/app", map[string]any{"versions": []any{float64(1)}})

	jsonEq(t, "metadata", h.must(rd, "metadata/app", nil).Data, map[string]any{
		"cas_required": false, "created_time": ts(t0), "current_version": 2,
		"custom_metadata":      map[string]any{"owner": "ops", "tier": "1"},
		"delete_version_after": "30m0s", "max_versions": 5, "oldest_version": 0,
		"updated_time": ts(t0.Add(2 * time.Minute)),
		"versions": map[string]any{
			"1": map[string]any{"created_time": ts(t0.Add(time.Minute)), "deletion_time": ts(t0.Add(2 * time.Minute)), "destroyed": false},
			"2": map[string]any{"created_time": ts(t0.Add(2 * time.Minute)), "deletion_time": ts(t0.Add(32 * time.Minute)), "destroyed": false},
		},
	})
	// Data reads carry the key's custom metadata.
	cm := h.must(rd, "data/app", nil).Data["metadata"].(map[string]any)["custom_metadata"]
	jsonEq(t, "custom_metadata in a data read", cm, map[string]any{"owner": "ops", "tier": "1"})

	// A write replaces custom_metadata and keeps fields it does not name.
	h.must(wr, "metadata/app", map[string]any{"custom_metadata": map[string]any{"team": "x"}})
	md := h.must(rd, "metadata/app", nil).Data
	jsonEq(t, "replaced custom_metadata", md["custom_metadata"], map[string]any{"team": "x"})
	if md["max_versions"] != uint32(5) || md["current_version"] != uint64(2) {
		t.Fatalf("metadata write lost fields: %v", md)
	}
	// null resets (vault/api's PutMetadata sends it for "none").
	h.must(wr, "metadata/app", map[string]any{"custom_metadata": nil, "max_versions": nil})
	md = h.must(rd, "metadata/app", nil).Data
	if md["custom_metadata"] != nil && len(md["custom_metadata"].(map[string]string)) != 0 || md["max_versions"] != uint32(0) {
		t.Fatalf("null did not reset: %v", md)
	}
}

func TestV2MetadataPatch(t *testing.T) {
	h := newHarness(t, "2")
	h.fails(patch, "metadata/app", map[string]any{"max_versions": float64(3)}, 404, "write the key")
	h.must(wr, "metadata/app", map[string]any{
		"max_versions": float64(4), "cas_required": true, "delete_version_after": "1h",
		"custom_metadata": map[string]any{"a": "1", "b": "2"},
	})
	h.must(patch, "metadata/app", map[string]any{
		"cas_required": false, "custom_metadata": map[string]any{"a": nil, "c": "3"},
	})
	md := h.must(rd, "metadata/app", nil).Data
	jsonEq(t, "patched", map[string]any{
		"max_versions": md["max_versions"], "cas_required": md["cas_required"],
		"delete_version_after": md["delete_version_after"], "custom_metadata": md["custom_metadata"],
	}, map[string]any{
		"max_versions": 4, "cas_required": false, "delete_version_after": "1h0m0s",
		"custom_metadata": map[string]any{"b": "2", "c": "3"},
	})
	h.must(patch, "metadata/app", map[string]any{"delete_version_after": nil, "custom_metadata": nil})
	md = h.must(rd, "metadata/app", nil).Data
	if md["delete_version_after"] != "0s" || md["custom_metadata"] != nil && len(md["custom_metadata"].(map[string]string)) != 0 {
		t.Fatalf("null patch did not reset: %v", md)
	}
	h.fails(patch, "metadata/app", map[string]any{"max_versions": "many"}, 400, "max_versions")
}

func TestV2MetadataFieldErrors(t *testing.T) {
	h := newHarness(t, "2")
	many := map[string]any{}
	for i := 0; i < 65; i++ {
		many[fmt.Sprintf("k%d", i)] = "v"
	}
	for _, tc := range []struct {
		name string
		data map[string]any
		want string
	}{
		{"max_versions string", map[string]any{"max_versions": "abc"}, "max_versions: expected an integer"},
		{"max_versions negative", map[string]any{"max_versions": float64(-1)}, "max_versions: must be between 0"},
		{"max_versions fraction", map[string]any{"max_versions": 1.5}, "max_versions"},
		{"cas_required", map[string]any{"cas_required": "maybe"}, "cas_required: expected true or false"},
		{"delete_version_after", map[string]any{"delete_version_after": "soon"}, "delete_version_after: expected a duration"},
		{"custom_metadata string", map[string]any{"custom_metadata": "x"}, "custom_metadata: expected a JSON object"},
		{"custom_metadata nested", map[string]any{"custom_metadata": map[string]any{"a": map[string]any{}}}, "custom_metadata: value of \"a\" must be a string"},
		{"custom_metadata null value", map[string]any{"custom_metadata": map[string]any{"a": nil}}, "custom_metadata"},
		{"custom_metadata too many", map[string]any{"custom_metadata": many}, "at most 64 keys"},
		{"custom_metadata long key", map[string]any{"custom_metadata": map[string]any{strings.Repeat("k", 129): "v"}}, "len(key) <= 128"},
		{"custom_metadata long value", map[string]any{"custom_metadata": map[string]any{"k": strings.Repeat("v", 513)}}, "len(value) <= 512"},
		{"custom_metadata empty value", map[string]any{"custom_metadata": map[string]any{"k": ""}}, "len(value)"},
		{"custom_metadata unprintable", map[string]any{"custom_metadata": map[string]any{"k": "a\x01"}}, "unprintable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.fails(wr, "metadata/app", tc.data, 400, tc.want)
		})
	}
	if h.raw("metadata/app") != nil {
		t.Fatal("a refused metadata write stored something")
	}
}

func TestV2MetadataDeleteAndList(t *testing.T) {
	h := newHarness(t, "2")
	if _, err := h.req(list, "metadata/", nil); !isNotFound(err) {
		t.Fatalf("list of an empty mount: %v, want ErrNotFound", err)
	}
	for _, k := range []string{"app", "team/a", "team/b", "team/sub/c", "team"} {
		h.must(wr, "data/"+k, map[string]any{"data": map[string]any{"k": k}})
		h.must(wr, "data/"+k, map[string]any{"data": map[string]any{"k": k + "2"}})
	}
	h.must(wr, "destroy/app", map[string]any{"versions": []any{float64(1)}})
	for _, tc := range []struct {
		path string
		want []string
	}{
		{"metadata/", []string{"app", "team", "team/"}},
		{"metadata", []string{"app", "team", "team/"}},
		{"metadata/team/", []string{"a", "b", "sub/"}},
		{"metadata/team", []string{"a", "b", "sub/"}},
		{"metadata/team/sub/", []string{"c"}},
		{"metadata/nope/", nil},
	} {
		resp, err := h.req(list, tc.path, nil)
		if tc.want == nil {
			if !isNotFound(err) {
				t.Fatalf("list %s: %v, want ErrNotFound", tc.path, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("list %s: %v", tc.path, err)
		}
		jsonEq(t, "list "+tc.path, resp.Data, map[string]any{"keys": tc.want})
	}

	// A soft-deleted key is still listed; metadata delete removes it all.
	h.must(del, "data/team/a", nil)
	if resp := h.must(del, "metadata/app", nil); resp != nil {
		t.Fatalf("metadata delete answered %+v", resp)
	}
	h.must(del, "metadata/team/sub/c", nil)
	for _, k := range []string{"metadata/app", "versions/app/1", "versions/app/2", "metadata/team/sub/c", "versions/team/sub/c/2"} {
		if h.raw(k) != nil {
			t.Fatalf("%s survived metadata delete", k)
		}
	}
	if h.raw("versions/team/2") == nil {
		t.Fatal("metadata delete of team/sub/c touched key team")
	}
	jsonEq(t, "list after delete", h.must(list, "metadata/", nil).Data, map[string]any{"keys": []string{"team", "team/"}})
	jsonEq(t, "list after delete", h.must(list, "metadata/team/", nil).Data, map[string]any{"keys": []string{"a", "b"}})
	if _, err := h.req(rd, "data/app", nil); !isNotFound(err) {
		t.Fatalf("read after metadata delete: %v", err)
	}
	// The key starts over at version 1.
	if v := h.must(wr, "data/app", map[string]any{"data": map[string]any{}}).Data["version"]; v != uint64(1) {
		t.Fatalf("first version after metadata delete is %v, want 1", v)
	}
	h.must(del, "metadata/ghost", nil)
}

func TestV2Config(t *testing.T) {
	h := newHarness(t, "2")
	jsonEq(t, "default config", h.must(rd, "config", nil).Data, map[string]any{
		"cas_required": false, "delete_version_after": "0s", "max_versions": 0,
	})
	if resp := h.must(wr, "config", map[string]any{}); resp != nil || h.raw("config") != nil {
		t.Fatal("an empty config write stored something")
	}
	h.must(wr, "config", map[string]any{"max_versions": "7", "cas_required": true, "delete_version_after": float64(90)})
	h.must(wr, "config", map[string]any{"cas_required": false}) // other fields are kept
	jsonEq(t, "config", h.must(rd, "config", nil).Data, map[string]any{
		"cas_required": false, "delete_version_after": "1m30s", "max_versions": 7,
	})
	if rec := h.raw("config"); rec["v"] != float64(1) {
		t.Fatalf("config record %v has no \"v\":1", rec)
	}
	for _, tc := range []struct {
		data map[string]any
		want string
	}{
		{map[string]any{"max_versions": "abc"}, "max_versions"},
		{map[string]any{"max_versions": float64(-2)}, "max_versions"},
		{map[string]any{"cas_required": float64(2)}, "cas_required"},
		{map[string]any{"delete_version_after": map[string]any{}}, "delete_version_after"},
	} {
		h.fails(wr, "config", tc.data, 400, tc.want)
	}
}

func TestV2ExistenceCheck(t *testing.T) {
	h := newHarness(t, "2")
	h.must(wr, "data/live", map[string]any{"data": map[string]any{"a": "b"}})
	h.must(wr, "metadata/onlymeta", map[string]any{"max_versions": float64(2)})
	h.must(wr, "data/deleted", map[string]any{"data": map[string]any{"a": "b"}})
	h.must(del, "data/deleted", nil)
	for _, tc := range []struct {
		path string
		want bool
	}{
		{"config", true},
		{"data/live", true},
		{"data/missing", false},
		{"data/onlymeta", true},
		{"data/deleted", true}, // the key exists; a write is an update
		{"metadata/live", true},
		{"metadata/missing", false},
		{"subkeys/live", true},
		{"delete/missing", true},
		{"undelete/live", true},
		{"destroy/live", true},
		{"data/", false},
	} {
		if got := h.exists(tc.path); got != tc.want {
			t.Errorf("ExistenceCheck(%s) = %v, want %v", tc.path, got, tc.want)
		}
	}
	if _, err := h.b.ExistenceCheck(context.Background(), &logical.Request{Path: "bogus/x", Storage: h.view}); !errors.Is(err, logical.ErrUnsupportedPath) {
		t.Fatalf("ExistenceCheck of an unknown endpoint: %v", err)
	}

	v1 := newHarness(t, "1")
	v1.must(wr, "a/b", map[string]any{"x": "y"})
	for path, want := range map[string]bool{"a/b": true, "a": false, "": false, "c": false} {
		if got := v1.exists(path); got != want {
			t.Errorf("v1 ExistenceCheck(%q) = %v, want %v", path, got, want)
		}
	}
}

// recordingStorage passes everything to the real view, records how the
// backend writes, and can make transactions fail.
type recordingStorage struct {
	logical.Storage
	mu      sync.Mutex
	puts    int
	deletes int
	txns    [][]*storage.TxnOp
	fail    error
}

func (r *recordingStorage) Put(ctx context.Context, e *storage.Entry) error {
	r.mu.Lock()
	r.puts++
	r.mu.Unlock()
	return r.Storage.Put(ctx, e)
}

func (r *recordingStorage) Delete(ctx context.Context, k string) error {
	r.mu.Lock()
	r.deletes++
	r.mu.Unlock()
	return r.Storage.Delete(ctx, k)
}

func (r *recordingStorage) Transaction(ctx context.Context, ops []*storage.TxnOp) error {
	r.mu.Lock()
	r.txns = append(r.txns, ops)
	fail := r.fail
	r.mu.Unlock()
	if fail != nil {
		return fail
	}
	return r.Storage.Transaction(ctx, ops)
}

// TestV2WritesAreAtomic checks that every v2 change is one transaction: a
// version with its metadata (and the pruned versions), and that a failed
// transaction leaves nothing behind.
func TestV2WritesAreAtomic(t *testing.T) {
	h := newHarness(t, "2")
	rs := &recordingStorage{Storage: h.view}
	do := func(op logical.Operation, path string, data map[string]any) error {
		_, err := h.b.HandleRequest(context.Background(), &logical.Request{Operation: op, Path: path, Data: data, Storage: rs})
		return err
	}
	write := map[string]any{"data": map[string]any{"a": "b"}}
	if err := do(wr, "config", map[string]any{"max_versions": float64(2)}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := do(wr, "data/k", write); err != nil {
			t.Fatal(err)
		}
	}
	last := rs.txns[len(rs.txns)-1]
	keys := map[string]storage.Operation{}
	for _, op := range last {
		keys[op.Entry.Key] = op.Operation
	}
	want := map[string]storage.Operation{
		"versions/k/3": storage.PutOperation, "metadata/k": storage.PutOperation, "versions/k/1": storage.DeleteOperation,
	}
	if fmt.Sprint(keys) != fmt.Sprint(want) {
		t.Fatalf("third write's transaction %v, want %v", keys, want)
	}
	for _, step := range []struct {
		op   logical.Operation
		path string
		data map[string]any
	}{
		{patch, "data/k", write},
		{del, "data/k", nil},
		{wr, "undelete/k", map[string]any{"versions": []any{float64(4)}}},
		{wr, "destroy/k", map[string]any{"versions": []any{float64(3)}}},
		{wr, "metadata/k", map[string]any{"max_versions": float64(3)}},
		{patch, "metadata/k", map[string]any{"max_versions": float64(4)}},
		{del, "metadata/k", nil},
	} {
		if err := do(step.op, step.path, step.data); err != nil {
			t.Fatalf("%s %s: %v", step.op, step.path, err)
		}
	}
	if rs.puts != 0 || rs.deletes != 0 {
		t.Fatalf("v2 wrote outside transactions: %d puts, %d deletes", rs.puts, rs.deletes)
	}

	// A failed transaction: the error reaches the caller, storage is unchanged.
	if err := do(wr, "data/k", write); err != nil {
		t.Fatal(err)
	}
	before := h.raw("metadata/k")
	boom := errors.New("disk on fire")
	rs.fail = boom
	if err := do(wr, "data/k", write); !errors.Is(err, boom) {
		t.Fatalf("write with failing storage: %v, want %v", err, boom)
	}
	if h.raw("versions/k/2") != nil || fmt.Sprint(h.raw("metadata/k")) != fmt.Sprint(before) {
		t.Fatal("a failed write changed storage")
	}
}

// TestV2ConcurrentWrites checks the per-key locking: concurrent writers
// never lose a version, and of concurrent cas=0 creates exactly one wins.
func TestV2ConcurrentWrites(t *testing.T) {
	h := newHarness(t, "2")
	h.must(wr, "config", map[string]any{"max_versions": float64(100)})
	const n = 32
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := 0; i < n; i++ {
		wg.Add(2)
		go func(i int) {
			defer wg.Done()
			_, err := h.b.HandleRequest(context.Background(), &logical.Request{
				Operation: wr, Path: "data/shared", Storage: h.view,
				Data: map[string]any{"data": map[string]any{"i": float64(i)}},
			})
			errs <- err
		}(i)
		go func(i int) {
			defer wg.Done()
			_, err := h.b.HandleRequest(context.Background(), &logical.Request{
				Operation: wr, Path: "data/once", Storage: h.view,
				Data: map[string]any{"data": map[string]any{"i": float64(i)}, "options": map[string]any{"cas": float64(0)}},
			})
			errs <- err
		}(i)
	}
	wg.Wait()
	close(errs)
	failures := 0
	for err := range errs {
		if err != nil {
			if !strings.Contains(err.Error(), msgCASMismatch) {
				t.Fatalf("unexpected error: %v", err)
			}
			failures++
		}
	}
	if failures != n-1 {
		t.Fatalf("%d cas=0 writes failed, want %d (exactly one wins)", failures, n-1)
	}
	md := h.must(rd, "metadata/shared", nil).Data
	if md["current_version"] != uint64(n) || len(md["versions"].(map[string]any)) != n {
		t.Fatalf("after %d concurrent writes: current %v, %d versions", n, md["current_version"], len(md["versions"].(map[string]any)))
	}
	if v := h.must(rd, "metadata/once", nil).Data["current_version"]; v != uint64(1) {
		t.Fatalf("once has current_version %v, want 1", v)
	}
}
