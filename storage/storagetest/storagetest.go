package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/cofferhq/coffer/storage"
)

// Factory returns a new, empty backend for one subtest. It must register the
// backend's cleanup (Close, removal of files) with t.Cleanup; the suite may
// Close the backend itself first, so Close has to be idempotent.
type Factory func(t *testing.T) storage.Backend

// Run checks the storage contract on fresh backends made by newBackend, one
// per subtest.
func Run(t *testing.T, newBackend Factory) {
	t.Helper()
	subtests := []struct {
		name string
		fn   func(t *testing.T, b storage.Backend)
	}{
		{"GetMissing", testGetMissing},
		{"PutGet", testPutGet},
		{"Overwrite", testOverwrite},
		{"EmptyAndNilValues", testEmptyValues},
		{"BinaryValues", testBinaryValues},
		{"LargeValue", testLargeValue},
		{"KeyShapes", testKeyShapes},
		{"Delete", testDelete},
		{"InvalidKeys", testInvalidKeys},
		{"ValuesAreCopies", testValuesAreCopies},
		{"ListEmpty", testListEmpty},
		{"ListOneLevel", testListOneLevel},
		{"ListPrefixWithoutSlash", testListPrefixWithoutSlash},
		{"ListAfterDelete", testListAfterDelete},
		{"WalkInByteOrder", testWalkInByteOrder},
		{"CancelledContext", testCancelledContext},
		{"ConcurrentPuts", testConcurrentPuts},
		{"TransactionMixed", transactional(testTransactionMixed)},
		{"TransactionLaterOpWins", transactional(testTransactionLaterOpWins)},
		{"TransactionEmpty", transactional(testTransactionEmpty)},
		{"TransactionInvalidAppliesNothing", transactional(testTransactionInvalid)},
		{"TransactionValuesAreCopies", transactional(testTransactionCopies)},
		{"TransactionCancelledContext", transactional(testTransactionCancelled)},
		{"ConcurrentTransactions", transactional(testConcurrentTransactions)},
		{"Close", testClose},
	}
	for _, st := range subtests {
		t.Run(st.name, func(t *testing.T) {
			b := newBackend(t)
			if b == nil {
				t.Fatal("factory returned a nil backend")
			}
			st.fn(t, b)
		})
	}
}

func transactional(fn func(t *testing.T, b storage.Transactional)) func(*testing.T, storage.Backend) {
	return func(t *testing.T, b storage.Backend) {
		tb, ok := b.(storage.Transactional)
		if !ok {
			t.Skipf("%T is not storage.Transactional", b)
		}
		fn(t, tb)
	}
}

// --- helpers ---

func put(t *testing.T, b storage.Backend, key string, value []byte) {
	t.Helper()
	if err := b.Put(context.Background(), &storage.Entry{Key: key, Value: value}); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

func get(t *testing.T, b storage.Backend, key string) *storage.Entry {
	t.Helper()
	e, err := b.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	if e != nil && e.Key != key {
		t.Fatalf("Get(%q) returned an entry with key %q", key, e.Key)
	}
	return e
}

func wantValue(t *testing.T, b storage.Backend, key string, want []byte) {
	t.Helper()
	e := get(t, b, key)
	if e == nil {
		t.Fatalf("Get(%q) = nil, want value %q", key, want)
	}
	if !bytes.Equal(e.Value, want) {
		t.Fatalf("Get(%q) = %q, want %q", key, e.Value, want)
	}
}

func wantMissing(t *testing.T, b storage.Backend, key string) {
	t.Helper()
	if e := get(t, b, key); e != nil {
		t.Fatalf("Get(%q) = %q, want missing", key, e.Value)
	}
}

func list(t *testing.T, b storage.Backend, prefix string) []string {
	t.Helper()
	names, err := b.List(context.Background(), prefix)
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return names
}

func wantList(t *testing.T, b storage.Backend, prefix string, want ...string) {
	t.Helper()
	got := list(t, b, prefix)
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !slices.Equal(got, want) {
		t.Fatalf("List(%q) = %q, want %q", prefix, got, want)
	}
}

func txn(t *testing.T, b storage.Transactional, ops ...*storage.TxnOp) {
	t.Helper()
	if err := b.Transaction(context.Background(), ops); err != nil {
		t.Fatalf("Transaction: %v", err)
	}
}

func putOp(key, value string) *storage.TxnOp {
	return &storage.TxnOp{Operation: storage.PutOperation, Entry: &storage.Entry{Key: key, Value: []byte(value)}}
}

func delOp(key string) *storage.TxnOp {
	return &storage.TxnOp{Operation: storage.DeleteOperation, Entry: &storage.Entry{Key: key}}
}

// --- single-key behaviour ---

func testGetMissing(t *testing.T, b storage.Backend) {
	wantMissing(t, b, "missing")
	put(t, b, "a/b", []byte("x"))
	// Neither a folder nor a sibling prefix is a key.
	wantMissing(t, b, "a")
	wantMissing(t, b, "a/")
	wantMissing(t, b, "a/b/c")
	wantMissing(t, b, "a/bc")
}

func testPutGet(t *testing.T, b storage.Backend) {
	put(t, b, "foo", []byte("bar"))
	wantValue(t, b, "foo", []byte("bar"))
	put(t, b, "foo/bar/baz", []byte("deep"))
	wantValue(t, b, "foo/bar/baz", []byte("deep"))
	wantValue(t, b, "foo", []byte("bar"))
}

func testOverwrite(t *testing.T, b storage.Backend) {
	put(t, b, "k", []byte("first, and longer than the second"))
	put(t, b, "k", []byte("second"))
	wantValue(t, b, "k", []byte("second"))
	wantList(t, b, "", "k")
}

func testEmptyValues(t *testing.T, b storage.Backend) {
	put(t, b, "empty", []byte{})
	put(t, b, "nil", nil)
	for _, k := range []string{"empty", "nil"} {
		e := get(t, b, k)
		if e == nil {
			t.Fatalf("Get(%q) = nil: a key stored with an empty value must exist", k)
		}
		if len(e.Value) != 0 {
			t.Fatalf("Get(%q) = %q, want empty", k, e.Value)
		}
	}
	wantList(t, b, "", "empty", "nil")
}

func testBinaryValues(t *testing.T, b storage.Backend) {
	all := make([]byte, 0, 512)
	for i := range 256 {
		all = append(all, byte(i))
	}
	for i := 255; i >= 0; i-- {
		all = append(all, byte(i))
	}
	values := map[string][]byte{
		"bin/all-bytes": all,
		"bin/nul":       {0},
		"bin/nuls":      {0, 0, 0, 0},
		"bin/ff":        {0xff, 0xfe, 0x00, 0x80},
		"bin/not-utf8":  {0xc3, 0x28, 0xa0, 0xa1},
	}
	for k, v := range values {
		put(t, b, k, v)
	}
	for k, v := range values {
		wantValue(t, b, k, v)
	}
}

func testLargeValue(t *testing.T, b storage.Backend) {
	v := make([]byte, 1<<20)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range v {
		v[i] = byte(r.UintN(256))
	}
	put(t, b, "large", v)
	wantValue(t, b, "large", v)
}

func testKeyShapes(t *testing.T, b storage.Backend) {
	keys := []string{
		"with space",
		"ünïcødé/ключ",
		"dots.and-dashes_and~tildes",
		"sys/token/id/" + strings.Repeat("h", 64),
		strings.Repeat("deep/", 20) + "leaf",
		"\xff\xfe",
		"%2F/escaped",
	}
	for i, k := range keys {
		put(t, b, k, []byte(fmt.Sprint(i)))
	}
	for i, k := range keys {
		wantValue(t, b, k, []byte(fmt.Sprint(i)))
	}
}

func testDelete(t *testing.T, b storage.Backend) {
	ctx := context.Background()
	if err := b.Delete(ctx, "never-written"); err != nil {
		t.Fatalf("Delete of a missing key: %v, want nil", err)
	}
	put(t, b, "a", []byte("1"))
	put(t, b, "a/b", []byte("2"))
	put(t, b, "ab", []byte("3"))
	if err := b.Delete(ctx, "a"); err != nil {
		t.Fatalf("Delete(a): %v", err)
	}
	wantMissing(t, b, "a")
	wantValue(t, b, "a/b", []byte("2"))
	wantValue(t, b, "ab", []byte("3"))
	if err := b.Delete(ctx, "a"); err != nil {
		t.Fatalf("second Delete(a): %v, want nil", err)
	}
	// Deleting a folder name deletes nothing.
	if err := b.Delete(ctx, "a/"); err != nil {
		t.Fatalf("Delete(a/): %v", err)
	}
	wantValue(t, b, "a/b", []byte("2"))
	// A deleted key can be written again.
	put(t, b, "a", []byte("again"))
	wantValue(t, b, "a", []byte("again"))
}

func testInvalidKeys(t *testing.T, b storage.Backend) {
	ctx := context.Background()
	for _, k := range []string{"", "nul\x00inside", "\x00"} {
		if _, err := b.Get(ctx, k); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("Get(%q) error = %v, want ErrInvalidKey", k, err)
		}
		if err := b.Put(ctx, &storage.Entry{Key: k, Value: []byte("v")}); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("Put(%q) error = %v, want ErrInvalidKey", k, err)
		}
		if err := b.Delete(ctx, k); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("Delete(%q) error = %v, want ErrInvalidKey", k, err)
		}
	}
	if err := b.Put(ctx, nil); err == nil {
		t.Errorf("Put(nil) succeeded, want an error")
	}
	wantList(t, b, "")
}

func testValuesAreCopies(t *testing.T, b storage.Backend) {
	v := []byte("original")
	put(t, b, "k", v)
	copy(v, "XXXXXXXX")
	wantValue(t, b, "k", []byte("original"))

	e := get(t, b, "k")
	copy(e.Value, "YYYYYYYY")
	wantValue(t, b, "k", []byte("original"))

	// Two reads do not share memory either.
	e1, e2 := get(t, b, "k"), get(t, b, "k")
	e1.Value[0] = 'Z'
	if e2.Value[0] != 'o' {
		t.Fatalf("two Gets share their value: mutating one changed the other to %q", e2.Value)
	}

	names := list(t, b, "")
	names[0] = "mutated"
	wantList(t, b, "", "k")
}

// --- List ---

func testListEmpty(t *testing.T, b storage.Backend) {
	wantList(t, b, "")
	wantList(t, b, "a/")
	wantList(t, b, "a")
}

// listKeys holds keys whose names sort around '/': '-' (0x2d) and '.' (0x2e)
// sort before it, '0' (0x30) right after it. A backend that skips a folder by
// seeking, or that sorts before cutting names, trips over them.
var listKeys = []string{
	"a",
	"a/b",
	"a/c/d",
	"a/c/e/f",
	"a/c0",
	"b-x",
	"b.x",
	"b/c",
	"b/c/d",
	"b0",
	"b0/z",
	"c",
	"c/",
}

func testListOneLevel(t *testing.T, b storage.Backend) {
	// Write in reverse so no backend gets sorted input for free.
	for i := len(listKeys) - 1; i >= 0; i-- {
		put(t, b, listKeys[i], []byte(listKeys[i]))
	}
	wantList(t, b, "", "a", "a/", "b-x", "b.x", "b/", "b0", "b0/", "c", "c/")
	wantList(t, b, "a/", "b", "c/", "c0")
	wantList(t, b, "a/c/", "d", "e/")
	wantList(t, b, "a/c/e/", "f")
	wantList(t, b, "b/", "c", "c/")
	wantList(t, b, "b0/", "z")
	wantList(t, b, "b/c/", "d")
	// "c/" is a key; listing under it holds nothing, since the key itself is not a name.
	wantList(t, b, "c/")
	wantList(t, b, "nothing/")
	wantList(t, b, "a/b/")

	for _, prefix := range []string{"", "a/", "b/", "a/c/"} {
		names := list(t, b, prefix)
		if !sort.StringsAreSorted(names) {
			t.Errorf("List(%q) = %q is not sorted", prefix, names)
		}
		if len(slices.Compact(slices.Clone(names))) != len(names) {
			t.Errorf("List(%q) = %q holds duplicates", prefix, names)
		}
	}
}

func testListPrefixWithoutSlash(t *testing.T, b storage.Backend) {
	for _, k := range listKeys {
		put(t, b, k, []byte(k))
	}
	// The prefix is a plain string prefix, as in Vault's physical backends.
	wantList(t, b, "b", "-x", ".x", "/", "0", "0/")
	wantList(t, b, "a/c", "/", "0")
	wantList(t, b, "a/b")
	wantList(t, b, "a/c/e", "/")
	wantList(t, b, "zz")
}

func testListAfterDelete(t *testing.T, b storage.Backend) {
	ctx := context.Background()
	put(t, b, "f/x/1", []byte("1"))
	put(t, b, "f/x/2", []byte("2"))
	put(t, b, "f/y", []byte("3"))
	wantList(t, b, "f/", "x/", "y")
	if err := b.Delete(ctx, "f/x/1"); err != nil {
		t.Fatal(err)
	}
	wantList(t, b, "f/", "x/", "y")
	if err := b.Delete(ctx, "f/x/2"); err != nil {
		t.Fatal(err)
	}
	wantList(t, b, "f/", "y")
	if err := b.Delete(ctx, "f/y"); err != nil {
		t.Fatal(err)
	}
	wantList(t, b, "f/")
	wantList(t, b, "")
}

// storage.Walk relies on List's contract (sorted, one level, keys and folders
// of one name both listed) to visit keys in byte order: check it on this
// backend against sorting every key, from every resume point.
func testWalkInByteOrder(t *testing.T, b storage.Backend) {
	keys := []string{"a", "a-b", "a/x", "a/y/z", "a/y-", "a/y/zz", "a0", "a0/1", "b/c/d", "b/c-", "b/c", "c", "\x01", "\xff/z"}
	for _, k := range keys {
		put(t, b, k, []byte(k))
	}
	sort.Strings(keys)
	for _, after := range append([]string{""}, keys...) {
		var got []string
		if err := storage.Walk(context.Background(), b, "", after, func(k string) (bool, error) {
			got = append(got, k)
			return true, nil
		}); err != nil {
			t.Fatalf("Walk after %q: %v", after, err)
		}
		want := keys[sort.SearchStrings(keys, after):]
		if len(want) > 0 && want[0] == after {
			want = want[1:]
		}
		if !slices.Equal(got, want) {
			t.Fatalf("Walk after %q = %q, want %q", after, got, want)
		}
	}
}

func testCancelledContext(t *testing.T, b storage.Backend) {
	put(t, b, "kept", []byte("v"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Put(ctx, &storage.Entry{Key: "new", Value: []byte("v")}); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with a cancelled context: error = %v, want context.Canceled", err)
	}
	if err := b.Delete(ctx, "kept"); !errors.Is(err, context.Canceled) {
		t.Errorf("Delete with a cancelled context: error = %v, want context.Canceled", err)
	}
	wantMissing(t, b, "new")
	wantValue(t, b, "kept", []byte("v"))
}

// --- transactions ---

func testTransactionMixed(t *testing.T, b storage.Transactional) {
	put(t, b, "old/1", []byte("o1"))
	put(t, b, "old/2", []byte("o2"))
	txn(t, b,
		putOp("new/1", "n1"),
		delOp("old/1"),
		putOp("old/2", "replaced"),
		delOp("never-existed"),
		putOp("new/2", "n2"),
	)
	wantValue(t, b, "new/1", []byte("n1"))
	wantValue(t, b, "new/2", []byte("n2"))
	wantMissing(t, b, "old/1")
	wantValue(t, b, "old/2", []byte("replaced"))
	wantList(t, b, "", "new/", "old/")
	wantList(t, b, "old/", "2")
}

func testTransactionLaterOpWins(t *testing.T, b storage.Transactional) {
	put(t, b, "existing", []byte("e"))
	txn(t, b,
		putOp("pd", "1"), delOp("pd"), // put then delete: gone
		delOp("dp"), putOp("dp", "2"), // delete then put: present
		putOp("pp", "first"), putOp("pp", "second"), // last put wins
		delOp("existing"), putOp("existing", "back"), delOp("existing"),
	)
	wantMissing(t, b, "pd")
	wantValue(t, b, "dp", []byte("2"))
	wantValue(t, b, "pp", []byte("second"))
	wantMissing(t, b, "existing")
	wantList(t, b, "", "dp", "pp")
}

func testTransactionEmpty(t *testing.T, b storage.Transactional) {
	put(t, b, "k", []byte("v"))
	txn(t, b)
	if err := b.Transaction(context.Background(), nil); err != nil {
		t.Fatalf("Transaction(nil): %v", err)
	}
	wantValue(t, b, "k", []byte("v"))
}

func testTransactionInvalid(t *testing.T, b storage.Transactional) {
	invalid := []struct {
		name string
		op   *storage.TxnOp
		want error
	}{
		{"nil op", nil, storage.ErrInvalidOperation},
		{"nil entry", &storage.TxnOp{Operation: storage.PutOperation}, storage.ErrInvalidOperation},
		{"zero operation", &storage.TxnOp{Entry: &storage.Entry{Key: "z", Value: []byte("v")}}, storage.ErrInvalidOperation},
		{"unknown operation", &storage.TxnOp{Operation: 99, Entry: &storage.Entry{Key: "z"}}, storage.ErrInvalidOperation},
		{"put empty key", putOp("", "v"), storage.ErrInvalidKey},
		{"delete empty key", delOp(""), storage.ErrInvalidKey},
		{"key with NUL", putOp("a\x00b", "v"), storage.ErrInvalidKey},
	}
	put(t, b, "keep", []byte("before"))
	put(t, b, "doomed", []byte("before"))
	valid := []*storage.TxnOp{putOp("keep", "after"), delOp("doomed"), putOp("fresh", "v")}
	for _, inv := range invalid {
		for pos := 0; pos <= len(valid); pos++ {
			ops := slices.Insert(slices.Clone(valid), pos, inv.op)
			err := b.Transaction(context.Background(), ops)
			if !errors.Is(err, inv.want) {
				t.Errorf("%s at position %d: error = %v, want %v", inv.name, pos, err, inv.want)
			}
			wantValue(t, b, "keep", []byte("before"))
			wantValue(t, b, "doomed", []byte("before"))
			wantMissing(t, b, "fresh")
		}
	}
	wantList(t, b, "", "doomed", "keep")
}

func testTransactionCopies(t *testing.T, b storage.Transactional) {
	v := []byte("original")
	op := &storage.TxnOp{Operation: storage.PutOperation, Entry: &storage.Entry{Key: "k", Value: v}}
	txn(t, b, op)
	copy(v, "XXXXXXXX")
	op.Entry.Key = "other"
	wantValue(t, b, "k", []byte("original"))
	wantMissing(t, b, "other")
}

func testTransactionCancelled(t *testing.T, b storage.Transactional) {
	put(t, b, "kept", []byte("v"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := b.Transaction(ctx, []*storage.TxnOp{putOp("new", "v"), delOp("kept")})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Transaction with a cancelled context: error = %v, want context.Canceled", err)
	}
	wantMissing(t, b, "new")
	wantValue(t, b, "kept", []byte("v"))
}

// --- concurrency ---

// testConcurrentPuts runs writers on disjoint keys and readers beside them,
// then checks that every acknowledged write is there.
func testConcurrentPuts(t *testing.T, b storage.Backend) {
	const writers, perWriter = 4, 10
	ctx := context.Background()
	done := make(chan struct{})
	var readers sync.WaitGroup
	for r := range 4 {
		readers.Go(func() {
			for n := 0; ; n++ {
				if _, err := b.List(ctx, "w/"); err != nil {
					t.Errorf("reader %d: List during writes: %v", r, err)
					return
				}
				if _, err := b.Get(ctx, fmt.Sprintf("w/%d/%d", n%writers, n%perWriter)); err != nil {
					t.Errorf("reader %d: Get during writes: %v", r, err)
					return
				}
				select {
				case <-done:
					return
				default:
				}
			}
		})
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				k := fmt.Sprintf("w/%d/%d", w, i)
				if err := b.Put(ctx, &storage.Entry{Key: k, Value: []byte(k)}); err != nil {
					t.Errorf("writer %d: Put(%q): %v", w, k, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(done)
	readers.Wait()
	if t.Failed() {
		return
	}
	if got := list(t, b, "w/"); len(got) != writers {
		t.Fatalf("List(w/) = %q, want %d writer folders", got, writers)
	}
	for w := range writers {
		if got := list(t, b, fmt.Sprintf("w/%d/", w)); len(got) != perWriter {
			t.Fatalf("writer %d: %d keys listed, want %d", w, len(got), perWriter)
		}
		for i := range perWriter {
			k := fmt.Sprintf("w/%d/%d", w, i)
			wantValue(t, b, k, []byte(k))
		}
	}
}

// testConcurrentTransactions runs writers whose transactions overlap on a few
// shared groups of keys and each also write keys of their own, while readers
// list and read the groups.
//
// Every transaction writes one unique token into all three keys of a group, in
// a random order, or deletes all three; and it writes a receipt (three keys
// of its own holding the token). A backend that applies a transaction's
// operations one by one, interleaved with another's, leaves a group whose
// keys disagree, or lets a reader list one or two of its three keys. One that
// loses a committed transaction misses a receipt.
func testConcurrentTransactions(t *testing.T, b storage.Transactional) {
	const (
		writers   = 6
		perWriter = 20
		groups    = 3
		seed      = 20240601
	)
	ctx := context.Background()
	groupKeys := func(g int) []string {
		return []string{fmt.Sprintf("g/%d/a", g), fmt.Sprintf("g/%d/b", g), fmt.Sprintf("g/%d/c", g)}
	}
	type txnResult struct {
		token string
		group int
		del   bool
	}
	results := make([][]txnResult, writers)

	done := make(chan struct{})
	var readers sync.WaitGroup
	for r := range 4 {
		readers.Go(func() {
			for n := 0; ; n++ {
				g := (r + n) % groups
				names, err := b.List(ctx, fmt.Sprintf("g/%d/", g))
				if err != nil {
					t.Errorf("reader %d: List during transactions: %v", r, err)
					return
				}
				if len(names) != 0 && !slices.Equal(names, []string{"a", "b", "c"}) {
					t.Errorf("reader %d: List(g/%d/) = %q during transactions: saw part of a transaction", r, g, names)
					return
				}
				e, err := b.Get(ctx, groupKeys(g)[n%3])
				if err != nil {
					t.Errorf("reader %d: Get during transactions: %v", r, err)
					return
				}
				if e != nil && !strings.HasPrefix(string(e.Value), "tok-") {
					t.Errorf("reader %d: Get(%q) = %q, not a value any transaction wrote", r, e.Key, e.Value)
					return
				}
				if _, err := b.List(ctx, "r/"); err != nil {
					t.Errorf("reader %d: List(r/) during transactions: %v", r, err)
					return
				}
				select {
				case <-done:
					return
				default:
				}
			}
		})
	}

	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			for i := range perWriter {
				token := fmt.Sprintf("tok-%d-%d", w, i)
				g := rng.IntN(groups)
				del := rng.IntN(4) == 0
				var ops []*storage.TxnOp
				for _, k := range groupKeys(g) {
					if del {
						ops = append(ops, delOp(k))
					} else {
						ops = append(ops, putOp(k, token))
					}
				}
				for j := 1; j <= 3; j++ {
					ops = append(ops, putOp(fmt.Sprintf("r/%d/%d/%d", w, i, j), token))
				}
				rng.Shuffle(len(ops), func(x, y int) { ops[x], ops[y] = ops[y], ops[x] })
				if err := b.Transaction(ctx, ops); err != nil {
					t.Errorf("writer %d: transaction %d: %v", w, i, err)
					return
				}
				results[w] = append(results[w], txnResult{token: token, group: g, del: del})
			}
		})
	}
	wg.Wait()
	close(done)
	readers.Wait()
	if t.Failed() {
		t.Logf("seed %d", seed)
		return
	}

	// Every committed transaction left its whole receipt.
	putTokens := make(map[string]int) // token -> group, for put transactions
	for w, rs := range results {
		if len(rs) != perWriter {
			t.Fatalf("writer %d committed %d transactions, want %d", w, len(rs), perWriter)
		}
		for i, r := range rs {
			for j := 1; j <= 3; j++ {
				wantValue(t, b, fmt.Sprintf("r/%d/%d/%d", w, i, j), []byte(r.token))
			}
			if !r.del {
				putTokens[r.token] = r.group
			}
		}
		if got := list(t, b, fmt.Sprintf("r/%d/", w)); len(got) != perWriter {
			t.Fatalf("List(r/%d/) holds %d receipts, want %d", w, len(got), perWriter)
		}
	}

	// Every group holds the whole of one transaction: all three keys absent,
	// or all three holding the token of one put transaction on that group.
	for g := range groups {
		var vals []string
		present := 0
		for _, k := range groupKeys(g) {
			if e := get(t, b, k); e != nil {
				vals = append(vals, string(e.Value))
				present++
			} else {
				vals = append(vals, "<missing>")
			}
		}
		switch present {
		case 0:
			wantList(t, b, fmt.Sprintf("g/%d/", g))
		case 3:
			if vals[0] != vals[1] || vals[1] != vals[2] {
				t.Fatalf("group %d holds %q: keys from different transactions, so a transaction was not atomic", g, vals)
			}
			if tg, ok := putTokens[vals[0]]; !ok || tg != g {
				t.Fatalf("group %d holds %q, which no committed transaction wrote to it", g, vals[0])
			}
		default:
			t.Fatalf("group %d holds %q: part of a transaction", g, vals)
		}
	}
}

// --- Close ---

func testClose(t *testing.T, b storage.Backend) {
	c, ok := b.(io.Closer)
	if !ok {
		t.Skipf("%T is not an io.Closer", b)
	}
	put(t, b, "k", []byte("v"))
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ctx := context.Background()
	if _, err := b.Get(ctx, "k"); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("Get after Close: error = %v, want ErrClosed", err)
	}
	if err := b.Put(ctx, &storage.Entry{Key: "k", Value: []byte("v")}); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("Put after Close: error = %v, want ErrClosed", err)
	}
	if err := b.Delete(ctx, "k"); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("Delete after Close: error = %v, want ErrClosed", err)
	}
	if _, err := b.List(ctx, ""); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("List after Close: error = %v, want ErrClosed", err)
	}
	if tb, ok := b.(storage.Transactional); ok {
		if err := tb.Transaction(ctx, []*storage.TxnOp{putOp("k", "v")}); !errors.Is(err, storage.ErrClosed) {
			t.Errorf("Transaction after Close: error = %v, want ErrClosed", err)
		}
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v, want nil (Close must be idempotent)", err)
	}
}
