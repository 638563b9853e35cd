package merkle

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/bolt"
	"github.com/cofferhq/coffer/storage/inmem"
	"github.com/cofferhq/coffer/wal"
	"github.com/rs/zerolog"
)

var nop = zerolog.Nop()

func newIndex(t testing.TB, store storage.Transactional) *Index {
	t.Helper()
	x, err := New(store, Options{}, nop)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func openBolt(t testing.TB, path string, noSync bool) *bolt.Backend {
	t.Helper()
	b, err := bolt.Open(bolt.Options{Path: path, NoSync: noSync})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func openLog(t testing.TB, b storage.Transactional) *wal.Log {
	t.Helper()
	l, err := wal.Open(context.Background(), b, wal.Options{}, nop)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func tempBolt(t testing.TB) (*bolt.Backend, string) {
	path := filepath.Join(t.TempDir(), "coffer.db")
	return openBolt(t, path, true), path
}

// keyName spreads keys over a few folders, the way mounts do.
func keyName(i int) string {
	return fmt.Sprintf("logical/m%d/secret/k%07d", i%7, i)
}

func randValue(r *rand.Rand) []byte {
	v := make([]byte, 16+r.IntN(64))
	for i := range v {
		v[i] = byte(r.Uint32())
	}
	return v
}

var _ = inmem.New
