package inmem_test

import (
	"testing"

	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/inmem"
	"github.com/cofferhq/coffer/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Backend {
		b := inmem.New()
		t.Cleanup(func() { _ = b.Close() })
		return b
	})
}
