package bolt_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/bolt"
	"github.com/cofferhq/coffer/storage/storagetest"
	berrors "go.etcd.io/bbolt/errors"
)

func open(t *testing.T, opts bolt.Options) *bolt.Backend {
	t.Helper()
	b, err := bolt.Open(opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Backend {
		return open(t, bolt.Options{Path: filepath.Join(t.TempDir(), "coffer.db")})
	})
}

func TestPersistsAcrossReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "coffer.db")

	b := open(t, bolt.Options{Path: path})
	if err := b.Put(ctx, &storage.Entry{Key: "core/keyring", Value: []byte{0, 1, 2}}); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, &storage.Entry{Key: "gone", Value: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	err := b.Transaction(ctx, []*storage.TxnOp{
		{Operation: storage.PutOperation, Entry: &storage.Entry{Key: "logical/abc/secret", Value: []byte("s3cr3t")}},
		{Operation: storage.PutOperation, Entry: &storage.Entry{Key: "wal/logs/1", Value: []byte("entry")}},
		{Operation: storage.DeleteOperation, Entry: &storage.Entry{Key: "gone"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b = open(t, bolt.Options{Path: path})
	want := map[string]string{"core/keyring": "\x00\x01\x02", "logical/abc/secret": "s3cr3t", "wal/logs/1": "entry"}
	for k, v := range want {
		e, err := b.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if e == nil || string(e.Value) != v {
			t.Fatalf("after reopen Get(%q) = %v, want %q", k, e, v)
		}
	}
	if e, err := b.Get(ctx, "gone"); err != nil || e != nil {
		t.Fatalf("after reopen Get(gone) = %v, %v; want nil, nil", e, err)
	}
	names, err := b.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"core/", "logical/", "wal/"}; !slices.Equal(names, want) {
		t.Fatalf("after reopen List = %q, want %q", names, want)
	}
}

func TestLockedFileTimesOut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "coffer.db")
	open(t, bolt.Options{Path: path})

	// bbolt holds an flock on the file; a second open in this process takes
	// another file description, so it waits for the lock like another process would.
	// bbolt retries every 50ms and gives up once less than one retry is left.
	const timeout = 200 * time.Millisecond
	start := time.Now()
	b, err := bolt.Open(bolt.Options{Path: path, Timeout: timeout})
	if err == nil {
		_ = b.Close()
		t.Fatal("second Open of a locked file succeeded")
	}
	if waited := time.Since(start); waited < timeout-50*time.Millisecond {
		t.Fatalf("second Open failed after %v, before its timeout: %v", waited, err)
	}
	if !errors.Is(err, berrors.ErrTimeout) {
		t.Fatalf("error = %v, want it to wrap bbolt's ErrTimeout", err)
	}
	for _, want := range []string{path, "locked", "another coffer server"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestOpenRequiresPath(t *testing.T) {
	if _, err := bolt.Open(bolt.Options{}); err == nil || !strings.Contains(err.Error(), "path") {
		t.Fatalf("Open without a path: error = %v, want one naming the path", err)
	}
}

func TestOpenUnwritableDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no", "such", "dir", "coffer.db")
	_, err := bolt.Open(bolt.Options{Path: path})
	if err == nil {
		t.Fatal("Open in a missing directory succeeded")
	}
	if !strings.Contains(err.Error(), path) {
		t.Fatalf("error %q does not name the path", err)
	}
}
