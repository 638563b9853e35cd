package storagetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cofferhq/coffer/storage"
)

// Concurrency: writes and transactions racing with readers.

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
	results := make([][]txnResult, txnWriters)

	done := make(chan struct{})
	var readers sync.WaitGroup
	for r := range 4 {
		readers.Go(func() { readGroups(t, b, r, done) })
	}

	var wg sync.WaitGroup
	for w := range txnWriters {
		wg.Go(func() { results[w] = writeGroups(t, b, w) })
	}
	wg.Wait()
	close(done)
	readers.Wait()
	if t.Failed() {
		t.Logf("seed %d", txnSeed)
		return
	}

	putTokens := checkReceipts(t, b, results)
	checkGroups(t, b, putTokens)
}

// The shape of testConcurrentTransactions.
const (
	txnWriters   = 6
	txnPerWriter = 20
	txnGroups    = 3
	txnSeed      = 20240601
)

// txnResult is one transaction a writer committed.
type txnResult struct {
	token string
	group int
	del   bool
}

// groupKeys returns the three keys of group g.
func groupKeys(g int) []string {
	return []string{fmt.Sprintf("g/%d/a", g), fmt.Sprintf("g/%d/b", g), fmt.Sprintf("g/%d/c", g)}
}

// readGroups is reader r: until done, it lists and reads the groups and fails
// the test when it sees part of a transaction.
func readGroups(t *testing.T, b storage.Transactional, r int, done <-chan struct{}) {
	ctx := context.Background()
	for n := 0; ; n++ {
		g := (r + n) % txnGroups
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
}

// writeGroups is writer w: it commits txnPerWriter transactions, each on a
// random group with its receipt, and returns those it committed.
func writeGroups(t *testing.T, b storage.Transactional, w int) []txnResult {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(txnSeed, uint64(w)))
	var results []txnResult
	for i := range txnPerWriter {
		token := fmt.Sprintf("tok-%d-%d", w, i)
		g := rng.IntN(txnGroups)
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
			return results
		}
		results = append(results, txnResult{token: token, group: g, del: del})
	}
	return results
}

// checkReceipts checks that every committed transaction left its whole
// receipt, and returns the tokens of the put transactions with their group.
func checkReceipts(t *testing.T, b storage.Transactional, results [][]txnResult) map[string]int {
	putTokens := make(map[string]int) // token -> group, for put transactions
	for w, rs := range results {
		if len(rs) != txnPerWriter {
			t.Fatalf("writer %d committed %d transactions, want %d", w, len(rs), txnPerWriter)
		}
		for i, r := range rs {
			for j := 1; j <= 3; j++ {
				wantValue(t, b, fmt.Sprintf("r/%d/%d/%d", w, i, j), []byte(r.token))
			}
			if !r.del {
				putTokens[r.token] = r.group
			}
		}
		if got := list(t, b, fmt.Sprintf("r/%d/", w)); len(got) != txnPerWriter {
			t.Fatalf("List(r/%d/) holds %d receipts, want %d", w, len(got), txnPerWriter)
		}
	}
	return putTokens
}

// checkGroups checks that every group holds the whole of one transaction: all
// three keys absent, or all three holding the token of one put transaction on
// that group (putTokens maps each such token to its group).
func checkGroups(t *testing.T, b storage.Transactional, putTokens map[string]int) {
	for g := range txnGroups {
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
