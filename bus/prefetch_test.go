package bus_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/cofferhq/coffer/bus"
	"github.com/cofferhq/coffer/bus/bustest"
)

// ConsumePrepared prepares messages as they arrive, while the handler is
// still busy with the ones before them, and hands each message to the
// handler with what its Prepare made of it, in order; a message delivered
// again is prepared again.
func TestConsumePreparesAheadOfTheHandler(t *testing.T) {
	b := bustest.Start(t)
	ensureWAL(t, b, bus.StreamConfig{})
	publishN(t, b, "coffer.c1.wal", 1, 1)
	var (
		mu       sync.Mutex
		prepared = map[uint64]int{} // times each message was prepared
		handled  []uint64
		ahead    = make(chan struct{})
		aheadOne sync.Once
		nakOnce  sync.Once
		finished = make(chan struct{})
	)
	prepare := func(ctx context.Context, m *bus.Msg) any {
		mu.Lock()
		prepared[m.StreamSeq]++
		mu.Unlock()
		if m.StreamSeq > 1 {
			aheadOne.Do(func() { close(ahead) })
		}
		return "prepared:" + string(m.Data)
	}
	stop, err := b.ConsumePrepared(testCtx(t), "COFFER_WAL_c1", "", "d", 0, prepare, func(ctx context.Context, msgs []*bus.Msg) {
		if msgs[0].StreamSeq == 1 {
			// Handling message 1: the next ones arrive and are prepared
			// before this handler returns.
			publishN(t, b, "coffer.c1.wal", 2, 40)
			select {
			case <-ahead:
			case <-time.After(10 * time.Second):
				t.Error("no message was prepared while the handler was busy with the one before it")
			}
		}
		for _, m := range msgs {
			if want := "prepared:" + string(m.Data); m.Prepared() != want {
				t.Errorf("message %d: Prepared() = %v, want %q", m.StreamSeq, m.Prepared(), want)
			}
			if m.StreamSeq == 20 {
				naked := false
				nakOnce.Do(func() { naked = true })
				if naked {
					_ = m.Nak()
					return
				}
			}
			if err := m.Ack(); err != nil {
				t.Error(err)
			}
			mu.Lock()
			handled = append(handled, m.StreamSeq)
			mu.Unlock()
			if m.StreamSeq == 40 {
				close(finished)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	select {
	case <-finished:
	case <-time.After(20 * time.Second):
		t.Fatal("message 40 not handled within 20s")
	}
	mu.Lock()
	defer mu.Unlock()
	for i, seq := range handled {
		if seq != uint64(i+1) {
			t.Fatalf("handled %d as message %d: order broken", seq, i+1)
		}
	}
	if prepared[20] < 2 {
		t.Fatalf("message 20, nak'ed and delivered again, was prepared %d times", prepared[20])
	}
}
