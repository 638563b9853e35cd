package merkle

import (
	"bytes"
	"context"
	"math/rand/v2"
	"testing"
	"time"
)

// TestFollowerAndFlusher runs both goroutines against a live log, then stops
// them and checks that a recovery from storage equals the index.
func TestFollowerAndFlusher(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, _ := tempBolt(t)
	defer b.Close()
	l := openLog(t, b)
	defer l.Close()
	flushed := make(chan FlushStats, 1)
	x, err := New(b, Options{FlushInterval: time.Millisecond, FlushPages: 50, OnFlush: func(st FlushStats) {
		select {
		case flushed <- st:
		default:
		}
	}}, nop)
	if err != nil {
		t.Fatal(err)
	}
	f := NewFollower(x, l, nop)
	f.Start()
	x.Start()
	writeRandom(t, ctx, l, rand.New(rand.NewPCG(6, 6)), 300, 1000)
	if err := x.WaitApplied(ctx, l.LastIndex()); err != nil {
		t.Fatal(err)
	}
	// Wait for flusher rounds until nothing is dirty (a bounded share per
	// round) and the checkpoint covers every entry.
	for {
		select {
		case st := <-flushed:
			if st.Err != nil {
				t.Fatal(st.Err)
			}
			if st.Dirty > 0 || st.RedoPoint != l.LastIndex()+1 {
				continue
			}
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
		break
	}
	f.Stop()
	x.Stop()
	x.Stop() // idempotent
	if f.Err() != nil {
		t.Fatal(f.Err())
	}
	if x.SafeTruncateIndex() != l.LastIndex() {
		t.Fatalf("safe truncate index %d, last %d: a clean index needs no WAL", x.SafeTruncateIndex(), l.LastIndex())
	}
	y, st, err := Recover(ctx, b, l, Options{}, nop)
	if err != nil {
		t.Fatal(err)
	}
	if st.OpsRedone != 0 || !bytes.Equal(y.Root(), x.Root()) {
		t.Fatalf("recover after a full flush redid %d ops, root %x vs %x", st.OpsRedone, y.Root(), x.Root())
	}
	// A follower stops by itself when the log closes.
	g := NewFollower(y, l, nop)
	g.Start()
	done := g.Done()
	l.Close()
	<-done
	g.Stop()
}

func TestUpdateOrderAndIdempotence(t *testing.T) {
	x := newIndex(t, nil)
	if err := x.Put("a", []byte("1"), 5); err != nil {
		t.Fatal(err)
	}
	if err := x.Put("b", []byte("1"), 4); err == nil {
		t.Fatal("an update below the applied LSN was accepted")
	}
	r1 := x.Root()
	if err := x.Put("b", []byte("2"), 6); err != nil {
		t.Fatal(err)
	}
	if err := x.Delete("b", 7); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r1, x.Root()) {
		t.Fatal("put then delete changed the root")
	}
	if err := x.Delete("a", 8); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(x.Root(), make([]byte, HashSize)) {
		t.Fatalf("empty index root %x, want zero", x.Root())
	}
}
