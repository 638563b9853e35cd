package wal

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/bolt"
	"github.com/cofferhq/coffer/storage/inmem"
	"github.com/rs/zerolog"
)

// faultBackend wraps a real backend and lets a test intercept each Transaction
// call: hook gets the 1-based call number and returns the error to inject (nil
// lets the call through). The hook may also block to hold a commit in flight.
type faultBackend struct {
	storage.Transactional
	calls atomic.Int64
	hook  func(n int64) error
}

func (f *faultBackend) Transaction(ctx context.Context, ops []*storage.TxnOp) error {
	n := f.calls.Add(1)
	if f.hook != nil {
		if err := f.hook(n); err != nil {
			return err
		}
	}
	return f.Transactional.Transaction(ctx, ops)
}

var errInjected = errors.New("injected storage fault")

func testLogger(t testing.TB) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
}

func openBolt(t testing.TB, path string, noSync bool) *bolt.Backend {
	t.Helper()
	b, err := bolt.Open(bolt.Options{Path: path, NoSync: noSync})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// forEachBackend runs f on a fresh inmem backend and a fresh bolt file.
func forEachBackend(t *testing.T, f func(t *testing.T, b storage.Transactional)) {
	t.Run("inmem", func(t *testing.T) {
		b := inmem.New()
		t.Cleanup(func() { _ = b.Close() })
		f(t, b)
	})
	t.Run("bolt", func(t *testing.T) {
		b := openBolt(t, filepath.Join(t.TempDir(), "coffer.db"), true)
		t.Cleanup(func() { _ = b.Close() })
		f(t, b)
	})
}

func openLog(t testing.TB, b storage.Transactional, opts Options) *Log {
	t.Helper()
	l, err := Open(context.Background(), b, opts, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func put(key, val string) *storage.TxnOp {
	return &storage.TxnOp{Operation: storage.PutOperation, Entry: &storage.Entry{Key: key, Value: []byte(val)}}
}

func del(key string) *storage.TxnOp {
	return &storage.TxnOp{Operation: storage.DeleteOperation, Entry: &storage.Entry{Key: key}}
}

func mustGet(t testing.TB, b storage.Backend, key string) string {
	t.Helper()
	e, err := b.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if e == nil {
		t.Fatalf("key %q missing", key)
	}
	return string(e.Value)
}

func mustAbsent(t testing.TB, b storage.Backend, key string) {
	t.Helper()
	e, err := b.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if e != nil {
		t.Fatalf("key %q present with %q, want absent", key, e.Value)
	}
}

func readAll(t testing.TB, l *Log) []*Entry {
	t.Helper()
	var out []*Entry
	after := uint64(0)
	for {
		es, err := l.Read(context.Background(), after, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) == 0 {
			return out
		}
		out = append(out, es...)
		after = es[len(es)-1].Index
	}
}

func TestClassify(t *testing.T) {
	for key, want := range map[string]Class{
		"wal/logs/1":             Ignored,
		"merkle/page/0":          Ignored,
		"core/replication/state": Ignored,
		"sys/token/id/abc":       Local,
		"sys/expire/id/x":        Local,
		"core/mounts":            Replicated,
		"logical/uuid/secret":    Replicated,
		"sys/policy/default":     Replicated,
		"walrus":                 Replicated,
	} {
		if got := DefaultClassify(key); got != want {
			t.Errorf("DefaultClassify(%q) = %s, want %s", key, got, want)
		}
	}
	for c, want := range map[Class]string{Replicated: "replicated", Local: "local", Ignored: "ignored", 0: "class(0)", 9: "class(9)"} {
		if got := c.String(); got != want {
			t.Errorf("Class(%d).String() = %q, want %q", c, got, want)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	if err := (&Options{MaxBatch: -1}).Validate(); err == nil {
		t.Fatal("negative MaxBatch accepted")
	}
	if err := (&Options{}).Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), inmem.New(), Options{MaxBatch: -3}, zerolog.Nop()); err == nil {
		t.Fatal("Open accepted a negative MaxBatch")
	}
}

func TestWriteAssignsIndexesAndRead(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storage.Transactional) {
		ctx := context.Background()
		l := openLog(t, b, Options{})
		if l.LastIndex() != 0 || l.FirstIndex() != 1 {
			t.Fatalf("fresh log: last %d first %d", l.LastIndex(), l.FirstIndex())
		}
		if err := l.Put(ctx, &storage.Entry{Key: "logical/a", Value: []byte("A")}); err != nil {
			t.Fatal(err)
		}
		idx, err := l.Write(ctx, []*storage.TxnOp{put("logical/b", "B"), put("sys/token/t1", "T"), put("merkle/p", "M")})
		if err != nil || idx != 2 {
			t.Fatalf("Write = %d, %v; want 2", idx, err)
		}
		if err := l.Delete(ctx, "logical/a"); err != nil {
			t.Fatal(err)
		}
		if err := l.Transaction(ctx, []*storage.TxnOp{put("logical/c", "C1"), put("logical/c", "C2")}); err != nil {
			t.Fatal(err)
		}
		if l.LastIndex() != 4 {
			t.Fatalf("LastIndex %d, want 4", l.LastIndex())
		}

		mustAbsent(t, l, "logical/a")
		if v := mustGet(t, l, "logical/b"); v != "B" {
			t.Fatalf("logical/b = %q", v)
		}
		if v := mustGet(t, l, "logical/c"); v != "C2" {
			t.Fatalf("logical/c = %q, later op must win", v)
		}
		if v := mustGet(t, b, "merkle/p"); v != "M" {
			t.Fatalf("ignored key merkle/p = %q", v)
		}
		names, err := l.List(ctx, "logical/")
		if err != nil || fmt.Sprint(names) != "[b c]" {
			t.Fatalf("List = %v, %v", names, err)
		}

		es := readAll(t, l)
		want := [][]Op{
			{{Kind: storage.PutOperation, Class: Replicated, Key: "logical/a", Value: []byte("A")}},
			{{Kind: storage.PutOperation, Class: Replicated, Key: "logical/b", Value: []byte("B")},
				{Kind: storage.PutOperation, Class: Local, Key: "sys/token/t1", Value: []byte("T")}},
			{{Kind: storage.DeleteOperation, Class: Replicated, Key: "logical/a"}},
			{{Kind: storage.PutOperation, Class: Replicated, Key: "logical/c", Value: []byte("C1")},
				{Kind: storage.PutOperation, Class: Replicated, Key: "logical/c", Value: []byte("C2")}},
		}
		if len(es) != len(want) {
			t.Fatalf("read %d entries, want %d", len(es), len(want))
		}
		for i, e := range es {
			if e.Index != uint64(i+1) {
				t.Fatalf("entry %d has index %d", i, e.Index)
			}
			if fmt.Sprint(e.Ops) != fmt.Sprint(want[i]) {
				t.Fatalf("entry %d ops %v, want %v", e.Index, e.Ops, want[i])
			}
			if time.Since(e.CommitTime()) > time.Hour || e.Time == 0 {
				t.Fatalf("entry %d has commit time %v", e.Index, e.CommitTime())
			}
		}

		// Read bounds.
		if es, err := l.Read(ctx, 1, 2); err != nil || len(es) != 2 || es[0].Index != 2 || es[1].Index != 3 {
			t.Fatalf("Read(1, 2) = %v, %v", es, err)
		}
		if es, err := l.Read(ctx, 4, 10); err != nil || len(es) != 0 {
			t.Fatalf("Read(4, 10) = %v, %v", es, err)
		}
		if _, err := l.Read(ctx, 0, 0); err == nil {
			t.Fatal("Read with max 0 accepted")
		}
		if st := l.Stats(); st.Writes != 4 || st.Batches == 0 || st.Failed != 0 {
			t.Fatalf("Stats = %+v", st)
		}
	})
}

func TestIgnoredWritesBypassTheLog(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storage.Transactional) {
		ctx := context.Background()
		l := openLog(t, b, Options{})
		idx, err := l.Write(ctx, []*storage.TxnOp{put("merkle/a", "1"), put("core/replication/state", "2")})
		if err != nil || idx != 0 {
			t.Fatalf("all-ignored Write = %d, %v; want 0, nil", idx, err)
		}
		if l.LastIndex() != 0 {
			t.Fatalf("LastIndex %d after an ignored write", l.LastIndex())
		}
		mustGet(t, b, "merkle/a")
		mustGet(t, b, "core/replication/state")
		mustAbsent(t, b, metaKey)
		if idx, err := l.Write(ctx, nil); err != nil || idx != 0 {
			t.Fatalf("empty Write = %d, %v", idx, err)
		}
		if err := l.Put(ctx, &storage.Entry{Key: "logical/x", Value: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		if l.LastIndex() != 1 {
			t.Fatalf("LastIndex %d, want 1: ignored writes must not consume an index", l.LastIndex())
		}
	})
}

func TestRejectsBadWrites(t *testing.T) {
	ctx := context.Background()
	b := inmem.New()
	l := openLog(t, b, Options{})
	if err := l.Put(ctx, &storage.Entry{Key: "wal/meta", Value: []byte("x")}); !errors.Is(err, ErrReservedKey) {
		t.Fatalf("write to wal/meta: %v", err)
	}
	if err := l.Delete(ctx, "wal/logs/00000000000000000001"); !errors.Is(err, ErrReservedKey) {
		t.Fatalf("delete under wal/logs: %v", err)
	}
	if err := l.Put(ctx, &storage.Entry{Key: ""}); !errors.Is(err, storage.ErrInvalidKey) {
		t.Fatalf("empty key: %v", err)
	}
	if err := l.Transaction(ctx, []*storage.TxnOp{put("logical/ok", "1"), {Operation: 9, Entry: &storage.Entry{Key: "k"}}}); !errors.Is(err, storage.ErrInvalidOperation) {
		t.Fatalf("bad op: %v", err)
	}
	l.SetClassifier(func(string) Class { return 0 })
	if err := l.Put(ctx, &storage.Entry{Key: "logical/ok"}); err == nil {
		t.Fatal("invalid class accepted")
	}
	mustAbsent(t, b, "logical/ok")
	if l.LastIndex() != 0 {
		t.Fatalf("rejected writes consumed index %d", l.LastIndex())
	}
}

func TestSetClassifier(t *testing.T) {
	ctx := context.Background()
	l := openLog(t, inmem.New(), Options{Classify: func(k string) Class {
		if k == "logical/local-mount/x" {
			return Local
		}
		return DefaultClassify(k)
	}})
	if err := l.Put(ctx, &storage.Entry{Key: "logical/local-mount/x", Value: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	l.SetClassifier(func(string) Class { return Ignored })
	if idx, err := l.Write(ctx, []*storage.TxnOp{put("logical/y", "2")}); err != nil || idx != 0 {
		t.Fatalf("Write under an all-ignoring classifier = %d, %v", idx, err)
	}
	l.SetClassifier(nil)
	if err := l.Put(ctx, &storage.Entry{Key: "logical/local-mount/x", Value: []byte("3")}); err != nil {
		t.Fatal(err)
	}
	es := readAll(t, l)
	if len(es) != 2 || es[0].Ops[0].Class != Local || es[1].Ops[0].Class != Replicated {
		t.Fatalf("entries %+v", es)
	}
}

func TestRestartKeepsIndex(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "coffer.db")
	for round := 0; round < 3; round++ {
		b := openBolt(t, path, true)
		l, err := Open(ctx, b, Options{}, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := l.LastIndex(), uint64(round*5); got != want {
			t.Fatalf("round %d: LastIndex after reopen %d, want %d", round, got, want)
		}
		for i := 1; i <= 5; i++ {
			idx, err := l.Write(ctx, []*storage.TxnOp{put(fmt.Sprintf("logical/r%d/%d", round, i), "v")})
			if err != nil || idx != uint64(round*5+i) {
				t.Fatalf("round %d write %d: index %d, %v", round, i, idx, err)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	}
	b := openBolt(t, path, true)
	defer b.Close()
	l := openLog(t, b, Options{})
	es := readAll(t, l)
	if len(es) != 15 {
		t.Fatalf("%d entries after restarts, want 15", len(es))
	}
	for i, e := range es {
		if e.Index != uint64(i+1) {
			t.Fatalf("entry %d has index %d", i, e.Index)
		}
	}
}

func TestFailedTransactionConsumesNoIndex(t *testing.T) {
	forEachBackend(t, func(t *testing.T, inner storage.Transactional) {
		ctx := context.Background()
		fb := &faultBackend{Transactional: inner, hook: func(n int64) error {
			if n == 2 || n == 3 {
				return errInjected
			}
			return nil
		}}
		l := openLog(t, fb, Options{})
		if idx, err := l.Write(ctx, []*storage.TxnOp{put("logical/1", "a")}); err != nil || idx != 1 {
			t.Fatalf("first write = %d, %v", idx, err)
		}
		for _, key := range []string{"logical/2", "logical/3"} {
			idx, err := l.Write(ctx, []*storage.TxnOp{put(key, "b"), put("sys/token/"+key, "t")})
			if !errors.Is(err, errInjected) || idx != 0 {
				t.Fatalf("faulted write = %d, %v; want the injected error", idx, err)
			}
			mustAbsent(t, inner, key)
			mustAbsent(t, inner, "sys/token/"+key)
		}
		if l.LastIndex() != 1 {
			t.Fatalf("LastIndex %d after failed commits, want 1", l.LastIndex())
		}
		mustAbsent(t, inner, logKey(2))
		if idx, err := l.Write(ctx, []*storage.TxnOp{put("logical/4", "c")}); err != nil || idx != 2 {
			t.Fatalf("write after failures = %d, %v; want index 2", idx, err)
		}
		es := readAll(t, l)
		if len(es) != 2 || es[1].Ops[0].Key != "logical/4" {
			t.Fatalf("entries %+v", es)
		}
		if st := l.Stats(); st.Failed != 2 {
			t.Fatalf("Stats %+v, want 2 failures", st)
		}
		// The log reopens at the same place: wal/meta was never advanced by the failures.
		l2, err := Open(ctx, inner, Options{}, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		defer l2.Close()
		if l2.LastIndex() != 2 {
			t.Fatalf("reopened LastIndex %d, want 2", l2.LastIndex())
		}
	})
}

// A failed batch fails every writer in it, and the next batch reuses its indexes.
func TestFailedBatchFailsAllWriters(t *testing.T) {
	ctx := context.Background()
	inner := inmem.New()
	entered := make(chan struct{})
	release := make(chan struct{})
	fb := &faultBackend{Transactional: inner, hook: func(n int64) error {
		switch n {
		case 1: // hold the first commit so that the next writers queue up behind it
			close(entered)
			<-release
		case 2:
			return errInjected
		}
		return nil
	}}
	l := openLog(t, fb, Options{})
	first := make(chan error, 1)
	go func() { _, err := l.Write(ctx, []*storage.TxnOp{put("logical/first", "1")}); first <- err }()
	<-entered

	const n = 8
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			_, err := l.Write(ctx, []*storage.TxnOp{put(fmt.Sprintf("logical/w%d", i), "x")})
			errs <- err
		}()
	}
	testutil.Eventually(t, waitTimeout, "the writers to queue behind the held commit", queueLen(l, n))
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if err := <-errs; !errors.Is(err, errInjected) {
			t.Fatalf("writer in failed batch got %v", err)
		}
	}
	if l.LastIndex() != 1 {
		t.Fatalf("LastIndex %d, want 1", l.LastIndex())
	}
	if idx, err := l.Write(ctx, []*storage.TxnOp{put("logical/after", "y")}); err != nil || idx != 2 {
		t.Fatalf("write after failed batch = %d, %v; want 2", idx, err)
	}
	for i := 0; i < n; i++ {
		mustAbsent(t, inner, fmt.Sprintf("logical/w%d", i))
	}
}

// waitTimeout bounds the waits on the write queue: generous, a passing run
// never waits for it.
const waitTimeout = 20 * time.Second

// queueLen is the condition "n writers wait in l's queue".
func queueLen(l *Log, n int) func() error {
	return func() error {
		l.mu.Lock()
		defer l.mu.Unlock()
		if len(l.queue) != n {
			return fmt.Errorf("%d writers queued, want %d", len(l.queue), n)
		}
		return nil
	}
}

func TestContextCancellation(t *testing.T) {
	inner := inmem.New()
	entered := make(chan struct{})
	release := make(chan struct{})
	fb := &faultBackend{Transactional: inner, hook: func(n int64) error {
		if n == 1 {
			close(entered)
			<-release
		}
		return nil
	}}
	l := openLog(t, fb, Options{})

	// Writer 1's commit is in flight when its context ends: it must still be
	// reported as committed.
	ctx1, cancel1 := context.WithCancel(context.Background())
	type result struct {
		idx uint64
		err error
	}
	res1 := make(chan result, 1)
	go func() {
		idx, err := l.Write(ctx1, []*storage.TxnOp{put("logical/inflight", "1")})
		res1 <- result{idx, err}
	}()
	<-entered
	cancel1()

	// Writer 2 is still queued when its context ends: it is withdrawn.
	ctx2, cancel2 := context.WithCancel(context.Background())
	res2 := make(chan result, 1)
	go func() {
		idx, err := l.Write(ctx2, []*storage.TxnOp{put("logical/queued", "2")})
		res2 <- result{idx, err}
	}()
	testutil.Eventually(t, waitTimeout, "writer 2 to queue behind the held commit", queueLen(l, 1))
	cancel2()
	if r := <-res2; !errors.Is(r.err, context.Canceled) || r.idx != 0 {
		t.Fatalf("queued writer after cancel = %+v, want context.Canceled", r)
	}

	close(release)
	if r := <-res1; r.err != nil || r.idx != 1 {
		t.Fatalf("in-flight writer after cancel = %+v, want index 1 and no error", r)
	}
	if idx, err := l.Write(context.Background(), []*storage.TxnOp{put("logical/next", "3")}); err != nil || idx != 2 {
		t.Fatalf("next write = %d, %v; want 2 (the withdrawn write takes no index)", idx, err)
	}
	mustAbsent(t, inner, "logical/queued")
	mustGet(t, inner, "logical/inflight")

	// An already-ended context never reaches the queue.
	ctx3, cancel3 := context.WithCancel(context.Background())
	cancel3()
	if _, err := l.Write(ctx3, []*storage.TxnOp{put("logical/never", "4")}); !errors.Is(err, context.Canceled) {
		t.Fatalf("write with ended ctx: %v", err)
	}
	mustAbsent(t, inner, "logical/never")
}

func TestCloseStopsCommitter(t *testing.T) {
	ctx := context.Background()
	b := inmem.New()
	l, err := Open(ctx, b, Options{}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Put(ctx, &storage.Entry{Key: "logical/a", Value: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	waiter := make(chan error, 1)
	go func() { waiter <- l.WaitIndex(ctx, 100) }()
	notify := l.Notify()

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.done:
	default:
		t.Fatal("committer still running after Close returned")
	}
	if err := <-waiter; !errors.Is(err, ErrClosed) {
		t.Fatalf("WaitIndex across Close = %v, want ErrClosed", err)
	}
	<-notify // closed by Close
	if err := l.Put(ctx, &storage.Entry{Key: "logical/b", Value: []byte("2")}); !errors.Is(err, ErrClosed) || !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("Put after Close = %v, want ErrClosed", err)
	}
	if err := l.Truncate(ctx, 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Truncate after Close = %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	mustAbsent(t, b, "logical/b")
	// Reads still pass through: the backend is not ours to close.
	mustGet(t, l, "logical/a")
}

// Writes queued when Close is called are committed, not dropped.
func TestCloseDrainsQueuedWrites(t *testing.T) {
	inner := inmem.New()
	entered := make(chan struct{})
	release := make(chan struct{})
	fb := &faultBackend{Transactional: inner, hook: func(n int64) error {
		if n == 1 {
			close(entered)
			<-release
		}
		return nil
	}}
	l, err := Open(context.Background(), fb, Options{}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	const n = 5
	errs := make(chan error, n+1)
	write := func(key string) {
		_, err := l.Write(context.Background(), []*storage.TxnOp{put(key, "v")})
		errs <- err
	}
	go write("logical/first")
	<-entered
	for i := 0; i < n; i++ {
		go write(fmt.Sprintf("logical/q%d", i))
	}
	testutil.Eventually(t, waitTimeout, "the writers to queue behind the held commit", queueLen(l, n))
	closed := make(chan error, 1)
	go func() { closed <- l.Close() }()
	testutil.Eventually(t, waitTimeout, "Close to mark the log closed", func() error {
		l.mu.Lock()
		defer l.mu.Unlock()
		if !l.closed {
			return errors.New("not closed yet")
		}
		return nil
	})
	close(release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n+1; i++ {
		if err := <-errs; err != nil {
			t.Fatalf("queued write failed across Close: %v", err)
		}
	}
	if l.LastIndex() != n+1 {
		t.Fatalf("LastIndex %d, want %d", l.LastIndex(), n+1)
	}
}

func TestConcurrentWritersGapFree(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storage.Transactional) {
		for _, maxBatch := range []int{0, 1, 7} {
			t.Run(fmt.Sprintf("maxbatch=%d", maxBatch), func(t *testing.T) {
				ctx := context.Background()
				l := openLog(t, b, Options{MaxBatch: maxBatch})
				start := l.LastIndex()
				const writers, perWriter = 16, 60
				var mu sync.Mutex
				byIndex := map[uint64]string{}
				var wg sync.WaitGroup
				for w := 0; w < writers; w++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := 0; i < perWriter; i++ {
							key := fmt.Sprintf("logical/mb%d/w%02d/%03d", maxBatch, w, i)
							ops := []*storage.TxnOp{put(key, key)}
							if i%3 == 0 {
								ops = append(ops, put("merkle/"+key, "ignored"), del(key+"/gone"))
							}
							idx, err := l.Write(ctx, ops)
							if err != nil {
								t.Error(err)
								return
							}
							mu.Lock()
							if prev, dup := byIndex[idx]; dup {
								t.Errorf("index %d given to %s and %s", idx, prev, key)
							}
							byIndex[idx] = key
							mu.Unlock()
						}
					}()
				}
				wg.Wait()
				if t.Failed() {
					return
				}
				total := uint64(writers * perWriter)
				if l.LastIndex() != start+total {
					t.Fatalf("LastIndex %d, want %d", l.LastIndex(), start+total)
				}
				for i := start + 1; i <= start+total; i++ {
					if _, ok := byIndex[i]; !ok {
						t.Fatalf("index %d never acknowledged: gap", i)
					}
				}
				es, err := l.Read(ctx, start, int(total)+10)
				if err != nil || uint64(len(es)) != total {
					t.Fatalf("Read = %d entries, %v", len(es), err)
				}
				for _, e := range es {
					if e.Ops[0].Key != byIndex[e.Index] {
						t.Fatalf("entry %d holds %s, acknowledged for %s", e.Index, e.Ops[0].Key, byIndex[e.Index])
					}
					mustGet(t, b, e.Ops[0].Key)
				}
				if maxBatch == 1 {
					if st := l.Stats(); st.Batches != st.Writes {
						t.Fatalf("MaxBatch 1 committed %d writes in %d batches", st.Writes, st.Batches)
					}
				}
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
			})
		}
	})
}

func TestWaitIndexAndNotify(t *testing.T) {
	ctx := context.Background()
	l := openLog(t, inmem.New(), Options{})
	if err := l.WaitIndex(ctx, 0); err != nil {
		t.Fatal(err)
	}
	ch := l.Notify()
	select {
	case <-ch:
		t.Fatal("Notify channel closed before any write")
	default:
	}
	waited := make(chan error, 1)
	go func() { waited <- l.WaitIndex(ctx, 3) }()
	for i := 0; i < 3; i++ {
		if err := l.Put(ctx, &storage.Entry{Key: fmt.Sprintf("logical/%d", i), Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			<-ch // the first commit closes the channel taken before it
		}
	}
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	go cancel()
	if err := l.WaitIndex(cctx, 10); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitIndex with cancelled ctx = %v", err)
	}
	// An all-ignored write does not wake waiters.
	ch = l.Notify()
	if err := l.Put(ctx, &storage.Entry{Key: "merkle/x", Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
		t.Fatal("Notify fired for an ignored write")
	default:
	}
}

func TestTruncate(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "coffer.db")
	b := openBolt(t, path, true)
	l, err := Open(ctx, b, Options{}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	const n = truncateChunk + 300 // more than one chunk
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 4 {
				if err := l.Put(ctx, &storage.Entry{Key: fmt.Sprintf("logical/%05d", i), Value: []byte("v")}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := l.Truncate(ctx, n+1); !errors.Is(err, ErrTruncateAhead) {
		t.Fatalf("Truncate past last = %v", err)
	}
	if err := l.Truncate(ctx, 4); err != nil {
		t.Fatal(err)
	}
	if l.FirstIndex() != 5 || l.LastIndex() != n {
		t.Fatalf("first %d last %d", l.FirstIndex(), l.LastIndex())
	}
	if _, err := l.Read(ctx, 0, 10); !errors.Is(err, ErrTruncated) {
		t.Fatalf("Read from a truncated index = %v", err)
	}
	if es, err := l.Read(ctx, 4, 2); err != nil || len(es) != 2 || es[0].Index != 5 {
		t.Fatalf("Read(4, 2) = %v, %v", es, err)
	}
	if err := l.Truncate(ctx, 2); err != nil || l.FirstIndex() != 5 {
		t.Fatalf("Truncate below first = %v, first %d", err, l.FirstIndex())
	}
	// Truncate concurrently with writes: both serialise on wal/meta.
	errs := make(chan error, 1)
	go func() { errs <- l.Truncate(ctx, n) }()
	for i := 0; i < 50; i++ {
		if err := l.Put(ctx, &storage.Entry{Key: fmt.Sprintf("logical/more/%d", i), Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	if l.FirstIndex() != n+1 || l.LastIndex() != n+50 {
		t.Fatalf("after truncate: first %d last %d", l.FirstIndex(), l.LastIndex())
	}
	keys, err := b.List(ctx, logPrefix)
	if err != nil || len(keys) != 50 {
		t.Fatalf("%d entries stored after truncation, want 50 (%v)", len(keys), err)
	}
	if err := l.Truncate(ctx, n+50); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	// Everything truncated: the index still survives a restart.
	b = openBolt(t, path, true)
	defer b.Close()
	l = openLog(t, b, Options{})
	if l.FirstIndex() != n+51 || l.LastIndex() != n+50 {
		t.Fatalf("reopened: first %d last %d", l.FirstIndex(), l.LastIndex())
	}
	if es, err := l.Read(ctx, n+50, 10); err != nil || len(es) != 0 {
		t.Fatalf("Read on an emptied log = %v, %v", es, err)
	}
	if idx, err := l.Write(ctx, []*storage.TxnOp{put("logical/last", "v")}); err != nil || idx != n+51 {
		t.Fatalf("write after full truncation = %d, %v", idx, err)
	}
}

func TestOpenDetectsDamage(t *testing.T) {
	ctx := context.Background()
	t.Run("corrupt meta", func(t *testing.T) {
		b := inmem.New()
		if err := b.Put(ctx, &storage.Entry{Key: metaKey, Value: []byte{1, 2, 3}}); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(ctx, b, Options{}, testLogger(t)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Open = %v, want ErrCorrupt", err)
		}
	})
	t.Run("newer meta", func(t *testing.T) {
		b := inmem.New()
		m := encodeMeta(meta{last: 1})
		m[0] = 2
		if err := b.Put(ctx, &storage.Entry{Key: metaKey, Value: m}); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(ctx, b, Options{}, testLogger(t)); !errors.Is(err, ErrUnknownVersion) {
			t.Fatalf("Open = %v, want ErrUnknownVersion", err)
		}
	})
	t.Run("entry past meta", func(t *testing.T) {
		b := inmem.New()
		if err := b.Put(ctx, &storage.Entry{Key: logKey(1), Value: EncodeEntry(&Entry{Index: 1})}); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(ctx, b, Options{}, testLogger(t)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Open = %v, want ErrCorrupt", err)
		}
	})
	t.Run("last entry missing", func(t *testing.T) {
		b := inmem.New()
		if err := b.Put(ctx, &storage.Entry{Key: metaKey, Value: encodeMeta(meta{last: 3})}); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(ctx, b, Options{}, testLogger(t)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Open = %v, want ErrCorrupt", err)
		}
	})
	t.Run("corrupt entry on read", func(t *testing.T) {
		b := inmem.New()
		l := openLog(t, b, Options{})
		if err := l.Put(ctx, &storage.Entry{Key: "logical/a", Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
		raw := mustGet(t, b, logKey(1))
		bad := []byte(raw)
		bad[len(bad)-1] ^= 1
		if err := b.Put(ctx, &storage.Entry{Key: logKey(1), Value: bad}); err != nil {
			t.Fatal(err)
		}
		// The process that wrote it reads it from memory; a reader that
		// reads the storage (a restarted process) finds the damage.
		if _, err := l.Read(ctx, 0, 1); err != nil {
			t.Fatalf("Read of the entry just committed = %v", err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l = openLog(t, b, Options{})
		if _, err := l.Read(ctx, 0, 1); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Read of a damaged entry = %v", err)
		}
	})
}

// sortedKeys lists every key under prefix, recursing into folders.
func sortedKeys(t testing.TB, b storage.Backend, prefix string) []string {
	t.Helper()
	var out []string
	if err := storage.Walk(context.Background(), b, prefix, "", func(k string) (bool, error) {
		out = append(out, k)
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// cappedBackend is inmem with a cap on the operations of a transaction, as
// Consul has (storage.OpLimiter); it records the largest transaction.
type cappedBackend struct {
	*inmem.Backend
	max     int
	mu      sync.Mutex
	largest int
}

func (c *cappedBackend) MaxTransactionOps() int { return c.max }

func (c *cappedBackend) Transaction(ctx context.Context, ops []*storage.TxnOp) error {
	c.mu.Lock()
	c.largest = max(c.largest, len(ops))
	c.mu.Unlock()
	if len(ops) > c.max {
		return fmt.Errorf("capped backend: %d operations, cap %d", len(ops), c.max)
	}
	return c.Backend.Transaction(ctx, ops)
}

// Group commit stays under the backend's cap on operations per transaction,
// and a single write over it is refused whole, before anything is stored.
func TestGroupCommitRespectsTheBackendsOpCap(t *testing.T) {
	ctx := context.Background()
	b := &cappedBackend{Backend: inmem.New(), max: 10}
	l := openLog(t, b, Options{})
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				ops := []*storage.TxnOp{
					{Operation: storage.PutOperation, Entry: &storage.Entry{Key: fmt.Sprintf("a/%d/%d", w, i), Value: []byte("x")}},
					{Operation: storage.PutOperation, Entry: &storage.Entry{Key: fmt.Sprintf("b/%d/%d", w, i), Value: []byte("y")}},
					{Operation: storage.PutOperation, Entry: &storage.Entry{Key: fmt.Sprintf("c/%d/%d", w, i), Value: []byte("z")}},
				}
				if _, err := l.Write(ctx, ops); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if b.largest > 10 || b.largest == 0 {
		t.Fatalf("the largest transaction held %d operations, cap 10", b.largest)
	}
	if l.Stats().Writes != 16*20 {
		t.Fatalf("%d writes committed, want %d", l.Stats().Writes, 16*20)
	}
	var big []*storage.TxnOp
	for i := range 9 { // 9 ops + the log entry + the meta record = 11 > 10
		big = append(big, &storage.TxnOp{Operation: storage.PutOperation, Entry: &storage.Entry{Key: fmt.Sprintf("big/%d", i), Value: []byte("v")}})
	}
	if _, err := l.Write(ctx, big); !errors.Is(err, ErrTooManyOps) {
		t.Fatalf("a write over the cap: %v, want ErrTooManyOps", err)
	}
	if e, _ := b.Get(ctx, "big/0"); e != nil {
		t.Fatal("a refused write was partly stored")
	}
}

// A log opened Shared (an HA standby) opens while another writer is past
// wal/meta's last index, which Open alone refuses, and writes nothing;
// BecomeWriter applies Open's check and continues the stored log; after
// StopWriting it writes nothing again.
func TestSharedLog(t *testing.T) {
	ctx := context.Background()
	b := inmem.New()
	w, err := Open(ctx, b, Options{}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	put := func(l *Log, k string) error {
		_, err := l.Write(ctx, []*storage.TxnOp{{Operation: storage.PutOperation, Entry: &storage.Entry{Key: k, Value: []byte("1")}}})
		return err
	}
	if err := put(w, "a"); err != nil {
		t.Fatal(err)
	}
	// Another writer's entry 2 is stored, its meta record not yet (the
	// window a standby's Open can fall into).
	e1, err := b.Get(ctx, logKey(1))
	if err != nil || e1 == nil {
		t.Fatalf("entry 1: %v %v", e1, err)
	}
	if err := b.Put(ctx, &storage.Entry{Key: logKey(2), Value: e1.Value}); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, b, Options{}, zerolog.Nop()); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open, not shared: %v, want ErrCorrupt", err)
	}
	s, err := Open(ctx, b, Options{Shared: true}, zerolog.Nop())
	if err != nil {
		t.Fatalf("Open shared: %v", err)
	}
	defer s.Close()
	if err := put(s, "b"); !errors.Is(err, storage.ErrNotActive) {
		t.Fatalf("a write on a shared log before BecomeWriter: %v, want ErrNotActive", err)
	}
	if err := s.BecomeWriter(ctx); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("BecomeWriter: %v, want ErrCorrupt", err)
	}
	if err := b.Delete(ctx, logKey(2)); err != nil {
		t.Fatal(err)
	}
	if err := put(w, "c"); err != nil { // the other writer goes on: entry 2
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.BecomeWriter(ctx); err != nil || s.LastIndex() != 2 {
		t.Fatalf("BecomeWriter on a consistent log: %v, last %d", err, s.LastIndex())
	}
	if err := put(s, "d"); err != nil || s.LastIndex() != 3 {
		t.Fatalf("a write after BecomeWriter: %v, last %d (want 3: the stored log continued)", err, s.LastIndex())
	}
	s.StopWriting()
	if err := put(s, "e"); !errors.Is(err, storage.ErrNotActive) {
		t.Fatalf("a write after StopWriting: %v, want ErrNotActive", err)
	}
	if e, _ := b.Get(ctx, "e"); e != nil {
		t.Fatal("the refused write was applied")
	}
}
