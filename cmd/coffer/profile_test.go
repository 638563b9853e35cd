package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
)

// The heap profile is written again once the live heap grows: it holds the
// largest heap of the run, not the first (nor the last) one.
func TestHeapProfileFollowsTheLargestHeap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "heap.pprof")
	stop, err := startHeapProfile(context.Background(), path, 5*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	first, err := os.Stat(path)
	if err != nil {
		t.Fatalf("no profile at start: %v", err)
	}
	// A live heap far above the first profile's: 64 MiB kept.
	held := make([][]byte, 64)
	for i := range held {
		held[i] = make([]byte, 1<<20)
		held[i][0] = byte(i)
	}
	runtime.GC()
	testutil.Eventually(t, 10*time.Second, "the profile is written again at the larger heap", func() error {
		st, err := os.Stat(path)
		if err != nil {
			return err
		}
		if st.Size() == first.Size() && st.ModTime().Equal(first.ModTime()) {
			return errors.New("unchanged")
		}
		return nil
	})
	runtime.KeepAlive(held)
}
