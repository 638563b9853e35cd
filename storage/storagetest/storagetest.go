package storagetest

import (
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
