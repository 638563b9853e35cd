package barrier

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cofferhq/coffer/barrier/seal"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/bolt"
	"github.com/cofferhq/coffer/storage/inmem"
)

// newUnsealed returns an initialized, unsealed barrier over raw and its root key.
func newUnsealed(t testing.TB, raw storage.Backend) (*Barrier, []byte) {
	t.Helper()
	ctx := context.Background()
	root, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	b := New(raw)
	if err := b.Initialize(ctx, root); err != nil {
		t.Fatalf("Initialize: %v", err)
	}
	if !b.Sealed() {
		t.Fatal("Initialize must leave the barrier sealed")
	}
	if err := b.Unseal(ctx, root); err != nil {
		t.Fatalf("Unseal: %v", err)
	}
	return b, root
}

func openBolt(t testing.TB, path string) *bolt.Backend {
	t.Helper()
	be, err := bolt.Open(bolt.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = be.Close() })
	return be
}

func mustGet(t *testing.T, b storage.Backend, key string) []byte {
	t.Helper()
	e, err := b.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("get %q: %v", key, err)
	}
	if e == nil {
		t.Fatalf("get %q: missing", key)
	}
	return e.Value
}

func mustPut(t *testing.T, b storage.Backend, key string, value []byte) {
	t.Helper()
	if err := b.Put(context.Background(), &storage.Entry{Key: key, Value: value}); err != nil {
		t.Fatalf("put %q: %v", key, err)
	}
}

func rawTerm(t *testing.T, raw storage.Backend, key string) uint32 {
	t.Helper()
	v := mustGet(t, raw, key)
	if v[0] != CiphertextVersion {
		t.Fatalf("%q: version byte %d", key, v[0])
	}
	return binary.BigEndian.Uint32(v[1:5])
}

func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	raw := inmem.New()
	b, _ := newUnsealed(t, raw)

	secret := []byte("s3cr3t-value-that-must-not-leak")
	mustPut(t, b, "secret/app", secret)
	mustPut(t, b, "secret/empty", nil)
	mustPut(t, b, "secret/dir/x", []byte("x"))

	if got := mustGet(t, b, "secret/app"); !bytes.Equal(got, secret) {
		t.Fatalf("Get = %q, want %q", got, secret)
	}
	if got := mustGet(t, b, "secret/empty"); got == nil || len(got) != 0 {
		t.Fatalf("empty value = %#v, want empty non-nil", got)
	}
	if ct := mustGet(t, raw, "secret/app"); bytes.Contains(ct, secret) || len(ct) != minCiphertext+len(secret) {
		t.Fatalf("raw value leaks plaintext or has the wrong size (%d bytes)", len(ct))
	}
	if e, err := b.Get(ctx, "secret/missing"); err != nil || e != nil {
		t.Fatalf("Get missing = %v, %v; want nil, nil", e, err)
	}
	names, err := b.List(ctx, "secret/")
	if err != nil || strings.Join(names, ",") != "app,dir/,empty" {
		t.Fatalf("List = %v, %v", names, err)
	}

	// A transaction encrypts puts, applies deletes, and leaves the caller's entries alone.
	put := &storage.Entry{Key: "secret/t1", Value: []byte("one")}
	if err := b.Transaction(ctx, []*storage.TxnOp{
		{Operation: storage.PutOperation, Entry: put},
		{Operation: storage.DeleteOperation, Entry: &storage.Entry{Key: "secret/app"}},
	}); err != nil {
		t.Fatal(err)
	}
	if string(put.Value) != "one" {
		t.Fatalf("Transaction changed the caller's entry to %q", put.Value)
	}
	if got := mustGet(t, b, "secret/t1"); string(got) != "one" {
		t.Fatalf("Get t1 = %q", got)
	}
	if bytes.Contains(mustGet(t, raw, "secret/t1"), []byte("one")) {
		t.Fatal("transaction stored plaintext")
	}
	if e, _ := b.Get(ctx, "secret/app"); e != nil {
		t.Fatal("deleted in transaction but still readable")
	}
	if err := b.Delete(ctx, "secret/t1"); err != nil {
		t.Fatal(err)
	}
	if e, _ := raw.Get(ctx, "secret/t1"); e != nil {
		t.Fatal("Delete left the raw entry")
	}

	ki, err := b.ActiveKey()
	if err != nil || ki.Term != 1 || ki.Encryptions != 4 || ki.InstallTime.IsZero() {
		t.Fatalf("ActiveKey = %+v, %v; want term 1 with 4 encryptions", ki, err)
	}
}

func TestSealedRefusesDataAccess(t *testing.T) {
	ctx := context.Background()
	raw := inmem.New()
	b, root := newUnsealed(t, raw)
	mustPut(t, b, "secret/a", []byte("a"))
	kr := b.kr.Load()
	b.Seal()
	if !b.Sealed() {
		t.Fatal("Sealed() = false after Seal")
	}
	// Seal wipes the key bytes it held.
	if !allZero(kr.rootKey) || !allZero(kr.terms[1].key) {
		t.Fatal("Seal left key bytes in memory")
	}

	check := func(name string, err error) {
		t.Helper()
		if !errors.Is(err, ErrSealed) {
			t.Errorf("%s while sealed: err = %v, want ErrSealed", name, err)
		}
	}
	e, err := b.Get(ctx, "secret/a")
	if e != nil {
		t.Error("Get returned an entry while sealed")
	}
	check("Get", err)
	check("Put", b.Put(ctx, &storage.Entry{Key: "secret/b", Value: []byte("b")}))
	check("Delete", b.Delete(ctx, "secret/a"))
	_, err = b.List(ctx, "secret/")
	check("List", err)
	check("Transaction", b.Transaction(ctx, []*storage.TxnOp{{Operation: storage.PutOperation, Entry: &storage.Entry{Key: "secret/c"}}}))
	_, err = b.Rotate(ctx)
	check("Rotate", err)
	_, err = b.ActiveKey()
	check("ActiveKey", err)
	check("Reload", b.Reload(ctx))

	if e, _ := raw.Get(ctx, "secret/a"); e == nil {
		t.Fatal("Delete while sealed removed the entry")
	}
	if e, _ := raw.Get(ctx, "secret/b"); e != nil {
		t.Fatal("Put while sealed wrote the entry")
	}
	if !strings.Contains(ErrSealed.Error(), "sys/unseal") {
		t.Fatalf("ErrSealed does not tell the operator what to do: %q", ErrSealed)
	}

	if err := b.Unseal(ctx, root); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, b, "secret/a"); string(got) != "a" {
		t.Fatalf("after re-unseal Get = %q", got)
	}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return len(b) > 0
}

func TestInitializeAndUnsealErrors(t *testing.T) {
	ctx := context.Background()
	raw := inmem.New()
	b := New(raw)
	root, _ := GenerateKey()

	if ok, err := b.Initialized(ctx); err != nil || ok {
		t.Fatalf("Initialized on empty storage = %v, %v", ok, err)
	}
	if err := b.Unseal(ctx, root); !errors.Is(err, ErrNotInitialized) {
		t.Fatalf("Unseal before Initialize: %v, want ErrNotInitialized", err)
	}
	if err := b.Initialize(ctx, root[:16]); !errors.Is(err, ErrInvalidRootKey) {
		t.Fatalf("Initialize with a 16-byte key: %v, want ErrInvalidRootKey", err)
	}
	if err := b.Initialize(ctx, root); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.Initialized(ctx); err != nil || !ok {
		t.Fatalf("Initialized after Initialize = %v, %v", ok, err)
	}
	before := mustGet(t, raw, KeyringPath)
	if err := b.Initialize(ctx, root); !errors.Is(err, ErrAlreadyInitialized) {
		t.Fatalf("second Initialize: %v, want ErrAlreadyInitialized", err)
	}
	if !bytes.Equal(before, mustGet(t, raw, KeyringPath)) {
		t.Fatal("refused Initialize changed the keyring")
	}

	wrong, _ := GenerateKey()
	for name, key := range map[string][]byte{"other key": wrong, "short key": root[:31], "empty": nil} {
		err := b.Unseal(ctx, key)
		if !errors.Is(err, ErrInvalidRootKey) {
			t.Errorf("Unseal with %s: %v, want ErrInvalidRootKey", name, err)
		}
		if !b.Sealed() {
			t.Errorf("Unseal with %s unsealed the barrier", name)
		}
	}
	if err := b.Unseal(ctx, root); err != nil {
		t.Fatalf("Unseal with the right key after wrong ones: %v", err)
	}
	// Unsealing again is a no-op.
	if err := b.Unseal(ctx, root); err != nil {
		t.Fatal(err)
	}
}

func TestRotateOnBoltSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "coffer.db")
	raw, err := bolt.Open(bolt.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	b, root := newUnsealed(t, raw)
	mustPut(t, b, "secret/old", []byte("old"))
	first, _ := b.ActiveKey()

	ki, err := b.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ki.Term != 2 || ki.Encryptions != 0 || ki.InstallTime.Before(first.InstallTime) {
		t.Fatalf("Rotate = %+v", ki)
	}
	mustPut(t, b, "secret/new", []byte("new"))
	if got, want := rawTerm(t, raw, "secret/old"), uint32(1); got != want {
		t.Fatalf("old value term = %d, want %d", got, want)
	}
	if got, want := rawTerm(t, raw, "secret/new"), uint32(2); got != want {
		t.Fatalf("new value term = %d, want %d", got, want)
	}
	if ki, _ := b.ActiveKey(); ki.Term != 2 || ki.Encryptions != 1 {
		t.Fatalf("ActiveKey after one write = %+v", ki)
	}
	if _, err := b.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	mustPut(t, b, "secret/newer", []byte("newer"))
	third, _ := b.ActiveKey()
	b.Seal()
	if err := raw.Close(); err != nil {
		t.Fatal(err)
	}

	raw2 := openBolt(t, path)
	b2 := New(raw2)
	if err := b2.Unseal(ctx, root); err != nil {
		t.Fatalf("Unseal after reopen: %v", err)
	}
	ki2, _ := b2.ActiveKey()
	if ki2.Term != 3 || !ki2.InstallTime.Equal(third.InstallTime) {
		t.Fatalf("after reopen ActiveKey = %+v, want term 3 installed %v", ki2, third.InstallTime)
	}
	for k, want := range map[string]string{"secret/old": "old", "secret/new": "new", "secret/newer": "newer"} {
		if got := mustGet(t, b2, k); string(got) != want {
			t.Fatalf("after reopen %s = %q, want %q", k, got, want)
		}
	}
	mustPut(t, b2, "secret/after", []byte("x"))
	if got := rawTerm(t, raw2, "secret/after"); got != 3 {
		t.Fatalf("write after reopen used term %d, want 3", got)
	}
}

// TestTamperingOnBolt is the acceptance test: whatever is done to a stored
// ciphertext in the bolt file, Get returns an error and never the value.
func TestTamperingOnBolt(t *testing.T) {
	ctx := context.Background()
	raw := openBolt(t, filepath.Join(t.TempDir(), "coffer.db"))
	b, _ := newUnsealed(t, raw)
	secret := []byte("tamper-me")
	mustPut(t, b, "secret/a", secret)
	mustPut(t, b, "secret/b", []byte("other"))
	good := mustGet(t, raw, "secret/a")

	expectDecryptErr := func(what, key string) {
		t.Helper()
		e, err := b.Get(ctx, key)
		if e != nil {
			t.Fatalf("%s: Get returned a value %q", what, e.Value)
		}
		if !errors.Is(err, ErrDecrypt) {
			t.Fatalf("%s: err = %v, want ErrDecrypt", what, err)
		}
		if !strings.Contains(err.Error(), fmt.Sprintf("%q", key)) {
			t.Fatalf("%s: error does not name the key: %v", what, err)
		}
	}

	// Flip every bit position of one byte at each offset: header, nonce, body, tag.
	for i := range good {
		for _, mask := range []byte{0x01, 0x80} {
			bad := append([]byte(nil), good...)
			bad[i] ^= mask
			mustPut(t, raw, "secret/a", bad)
			expectDecryptErr(fmt.Sprintf("byte %d ^ %#x", i, mask), "secret/a")
		}
	}
	mustPut(t, raw, "secret/a", good)
	if got := mustGet(t, b, "secret/a"); !bytes.Equal(got, secret) {
		t.Fatalf("restored value = %q", got)
	}

	// A ciphertext moved under another key does not open there.
	mustPut(t, raw, "secret/b", good)
	expectDecryptErr("copied under secret/b", "secret/b")
	if _, err := b.Get(ctx, "secret/b"); !strings.Contains(err.Error(), "altered or moved") {
		t.Fatalf("moved value error does not say what happened: %v", err)
	}

	// Truncation at every length.
	for n := 0; n < len(good); n++ {
		mustPut(t, raw, "secret/a", good[:n])
		expectDecryptErr(fmt.Sprintf("truncated to %d bytes", n), "secret/a")
	}
	// Appended bytes.
	mustPut(t, raw, "secret/a", append(append([]byte(nil), good...), 0))
	expectDecryptErr("extended by one byte", "secret/a")

	// Unknown version.
	bad := append([]byte(nil), good...)
	bad[0] = 2
	mustPut(t, raw, "secret/a", bad)
	expectDecryptErr("version 2", "secret/a")
	if _, err := b.Get(ctx, "secret/a"); !strings.Contains(err.Error(), "version 2") {
		t.Fatalf("version error does not name the version: %v", err)
	}

	// Unknown terms: one past the keyring, and the root key's term 0.
	for _, term := range []uint32{2, 0, 1 << 31} {
		bad := append([]byte(nil), good...)
		binary.BigEndian.PutUint32(bad[1:5], term)
		mustPut(t, raw, "secret/a", bad)
		expectDecryptErr(fmt.Sprintf("term %d", term), "secret/a")
		if _, err := b.Get(ctx, "secret/a"); !errors.Is(err, ErrUnknownTerm) {
			t.Fatalf("term %d: %v, want ErrUnknownTerm", term, err)
		}
	}
}

func TestTamperedKeyringRefusesUnseal(t *testing.T) {
	ctx := context.Background()
	raw := openBolt(t, filepath.Join(t.TempDir(), "coffer.db"))
	b, root := newUnsealed(t, raw)
	b.Seal()
	good := mustGet(t, raw, KeyringPath)
	for _, i := range []int{0, 1, 4, 5, 16, 17, len(good) / 2, len(good) - 1} {
		bad := append([]byte(nil), good...)
		bad[i] ^= 0x01
		mustPut(t, raw, KeyringPath, bad)
		if err := b.Unseal(ctx, root); err == nil || !b.Sealed() {
			t.Fatalf("byte %d of the keyring flipped: Unseal = %v, sealed = %v", i, err, b.Sealed())
		}
	}
	mustPut(t, raw, KeyringPath, good[:20])
	if err := b.Unseal(ctx, root); err == nil {
		t.Fatal("truncated keyring unsealed")
	}
	// A data value copied over the keyring is refused too.
	mustPut(t, raw, KeyringPath, good)
	if err := b.Unseal(ctx, root); err != nil {
		t.Fatal(err)
	}
	mustPut(t, b, "secret/a", []byte("a"))
	mustPut(t, raw, KeyringPath, mustGet(t, raw, "secret/a"))
	b.Seal()
	if err := b.Unseal(ctx, root); err == nil {
		t.Fatal("a data value in place of the keyring unsealed")
	}
}

// plainBackend hides the Transactional capability of a real backend.
type plainBackend struct{ storage.Backend }

func TestTransactionNeedsTransactionalBackend(t *testing.T) {
	ctx := context.Background()
	b, _ := newUnsealed(t, plainBackend{inmem.New()})
	err := b.Transaction(ctx, []*storage.TxnOp{{Operation: storage.PutOperation, Entry: &storage.Entry{Key: "a"}}})
	if !errors.Is(err, ErrNotTransactional) {
		t.Fatalf("Transaction on a plain backend: %v, want ErrNotTransactional", err)
	}
	// The rest works.
	mustPut(t, b, "a", []byte("1"))
	if got := mustGet(t, b, "a"); string(got) != "1" {
		t.Fatalf("Get = %q", got)
	}
}

func TestInvalidOperations(t *testing.T) {
	ctx := context.Background()
	raw := inmem.New()
	b, _ := newUnsealed(t, raw)
	keyring := mustGet(t, raw, KeyringPath)

	if _, err := b.Get(ctx, KeyringPath); !errors.Is(err, ErrReservedKey) {
		t.Errorf("Get keyring: %v", err)
	}
	if err := b.Put(ctx, &storage.Entry{Key: KeyringPath, Value: []byte("x")}); !errors.Is(err, ErrReservedKey) {
		t.Errorf("Put keyring: %v", err)
	}
	if err := b.Delete(ctx, KeyringPath); !errors.Is(err, ErrReservedKey) {
		t.Errorf("Delete keyring: %v", err)
	}
	if err := b.Transaction(ctx, []*storage.TxnOp{
		{Operation: storage.PutOperation, Entry: &storage.Entry{Key: "a"}},
		{Operation: storage.DeleteOperation, Entry: &storage.Entry{Key: KeyringPath}},
	}); !errors.Is(err, ErrReservedKey) {
		t.Errorf("Transaction on keyring: %v", err)
	}
	if !bytes.Equal(keyring, mustGet(t, raw, KeyringPath)) {
		t.Fatal("the keyring changed")
	}
	if e, _ := raw.Get(ctx, "a"); e != nil {
		t.Fatal("a refused transaction applied an op")
	}
	if err := b.Put(ctx, nil); !errors.Is(err, storage.ErrInvalidOperation) {
		t.Errorf("Put(nil): %v", err)
	}
	if err := b.Transaction(ctx, []*storage.TxnOp{{Operation: storage.PutOperation}}); !errors.Is(err, storage.ErrInvalidOperation) {
		t.Errorf("Transaction with a nil entry: %v", err)
	}
	if err := b.Put(ctx, &storage.Entry{Key: ""}); !errors.Is(err, storage.ErrInvalidKey) {
		t.Errorf("Put empty key: %v", err)
	}
}

// TestReload plays a secondary: another barrier on the same storage rotates
// (as replication would bring the primary's new keyring), and Reload picks
// the new term up.
func TestReload(t *testing.T) {
	ctx := context.Background()
	raw := inmem.New()
	primary, root := newUnsealed(t, raw)
	secondary := New(raw)
	if err := secondary.Unseal(ctx, root); err != nil {
		t.Fatal(err)
	}
	mustPut(t, secondary, "secret/s", []byte("s"))
	if _, err := primary.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	mustPut(t, primary, "secret/p", []byte("p"))
	if _, err := secondary.Get(ctx, "secret/p"); !errors.Is(err, ErrUnknownTerm) {
		t.Fatalf("before Reload: %v, want ErrUnknownTerm", err)
	}
	before, _ := secondary.ActiveKey()
	if err := secondary.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, secondary, "secret/p"); string(got) != "p" {
		t.Fatalf("after Reload Get = %q", got)
	}
	if got := mustGet(t, secondary, "secret/s"); string(got) != "s" {
		t.Fatalf("after Reload old value = %q", got)
	}
	after, _ := secondary.ActiveKey()
	if after.Term != 2 || before.Term != 1 {
		t.Fatalf("terms before/after Reload = %d/%d", before.Term, after.Term)
	}
	// Term 1's encryption count survived the reload.
	if n := secondary.kr.Load().terms[1].encryptions.Load(); n != 1 {
		t.Fatalf("term 1 count after reload = %d, want 1", n)
	}
}

// TestConcurrentUse runs reads, writes and rotations at once; run with -race.
func TestConcurrentUse(t *testing.T) {
	ctx := context.Background()
	b, _ := newUnsealed(t, inmem.New())
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				key := fmt.Sprintf("w%d/k%d", w, i%10)
				val := []byte(fmt.Sprintf("%d-%d", w, i))
				if err := b.Put(ctx, &storage.Entry{Key: key, Value: val}); err != nil {
					errs <- err
					return
				}
				e, err := b.Get(ctx, key)
				if err != nil || e == nil || !bytes.Equal(e.Value, val) {
					errs <- fmt.Errorf("get %s = %v, %v", key, e, err)
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 10 {
			if _, err := b.Rotate(ctx); err != nil {
				errs <- err
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if ki, _ := b.ActiveKey(); ki.Term != 11 {
		t.Fatalf("term after 10 rotations = %d", ki.Term)
	}
}

func TestKeyringPathMatchesSeal(t *testing.T) {
	if KeyringPath != seal.BarrierKeyringPath {
		t.Fatalf("barrier.KeyringPath %q != seal.BarrierKeyringPath %q: seal.Init would not see an existing keyring", KeyringPath, seal.BarrierKeyringPath)
	}
}

func TestGenerateKey(t *testing.T) {
	a, err := GenerateKey()
	if err != nil || len(a) != KeySize {
		t.Fatalf("GenerateKey = %d bytes, %v", len(a), err)
	}
	b, _ := GenerateKey()
	if bytes.Equal(a, b) {
		t.Fatal("two keys are equal")
	}
}

// FuzzDecrypt feeds arbitrary stored values and keys to the decoder: it must
// never panic, and must only succeed on a value sealed by its keyring for
// that key (the seed), never on a mutation of it.
func FuzzDecrypt(f *testing.F) {
	// Fixed keys: every fuzzing process rebuilds this setup, and the corpus
	// must decrypt in all of them.
	root := bytes.Repeat([]byte{1}, KeySize)
	k1 := bytes.Repeat([]byte{2}, KeySize)
	t1, err := newTerm(1, k1, now())
	if err != nil {
		f.Fatal(err)
	}
	rootAEAD, _ := newGCM(root)
	kr := &keyring{rootKey: root, root: rootAEAD, terms: map[uint32]*term{1: t1}, active: t1}
	valid, err := kr.encrypt("secret/a", []byte("hello"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add("secret/a", valid)
	f.Add("secret/b", valid)
	f.Add("secret/a", valid[:minCiphertext])
	f.Add("secret/a", []byte{})
	f.Add("secret/a", []byte{1, 0, 0, 0, 1})
	f.Add("secret/a", []byte{2})
	f.Fuzz(func(t *testing.T, key string, value []byte) {
		pt, err := kr.decrypt(key, value)
		if err != nil {
			if pt != nil {
				t.Fatal("decrypt returned bytes with an error")
			}
			if !errors.Is(err, ErrDecrypt) {
				t.Fatalf("decrypt error does not match ErrDecrypt: %v", err)
			}
			return
		}
		if key != "secret/a" || len(value) != len(valid) || string(pt) != "hello" {
			t.Fatalf("decrypt accepted a value it never sealed: key %q value %x -> %q", key, value, pt)
		}
	})
}

func FuzzUnmarshalKeyring(f *testing.F) {
	root := bytes.Repeat([]byte{1}, KeySize)
	k1 := bytes.Repeat([]byte{2}, KeySize)
	t1, _ := newTerm(1, k1, now())
	rootAEAD, _ := newGCM(root)
	kr := &keyring{rootKey: root, root: rootAEAD, terms: map[uint32]*term{1: t1}, active: t1}
	valid, err := kr.marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add(valid[:20])
	f.Fuzz(func(t *testing.T, value []byte) {
		got, err := unmarshalKeyring(root, value)
		if err == nil && (got.active == nil || got.terms[got.active.term] != got.active) {
			t.Fatal("unmarshal accepted a keyring without a consistent active term")
		}
	})
}

var benchSizes = []int{1 << 10, 16 << 10, 64 << 10}

func benchKeyring(b *testing.B) *keyring {
	root, _ := GenerateKey()
	k1, _ := GenerateKey()
	t1, err := newTerm(1, k1, now())
	if err != nil {
		b.Fatal(err)
	}
	rootAEAD, _ := newGCM(root)
	return &keyring{rootKey: root, root: rootAEAD, terms: map[uint32]*term{1: t1}, active: t1}
}

func BenchmarkEncrypt(b *testing.B) {
	kr := benchKeyring(b)
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			pt := make([]byte, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := kr.encrypt("secret/bench", pt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecrypt(b *testing.B) {
	kr := benchKeyring(b)
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			ct, err := kr.encrypt("secret/bench", make([]byte, size))
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := kr.decrypt("secret/bench", ct); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
