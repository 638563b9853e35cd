package bus_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/cofferhq/coffer/bus"
	"github.com/cofferhq/coffer/bus/bustest"
)

// A consumer behind the stream prepares messages as they arrive, while the
// handler is still busy with the ones before them, and hands each message
// to the handler with what its Prepare made of it, in order; a message
// delivered again is prepared again. Here a message after the first can be
// prepared only once the handler holds the first: without preparation
// ahead of the handler, the messages come unprepared.
func TestConsumePreparesAheadOfTheHandler(t *testing.T) {
	b := bustest.Start(t)
	ensureWAL(t, b, bus.StreamConfig{})
	publishN(t, b, "coffer.c1.wal", 1, 100)
	var (
		mu          sync.Mutex
		prepared    = map[uint64]int{} // times each message was prepared
		handled     []uint64
		handlerHeld = make(chan struct{})
		holdOnce    sync.Once
		nakOnce     sync.Once
		finished    = make(chan struct{})
	)
	prepare := func(ctx context.Context, m *bus.Msg) any {
		if m.StreamSeq > 1 {
			select {
			case <-handlerHeld:
			case <-time.After(10 * time.Second):
				t.Errorf("message %d prepared, and the handler never got message 1", m.StreamSeq)
			}
		}
		mu.Lock()
		prepared[m.StreamSeq]++
		mu.Unlock()
		return "prepared:" + string(m.Data)
	}
	stop, err := b.ConsumePrepared(testCtx(t), "COFFER_WAL_c1", "", "d", 0, prepare, func(ctx context.Context, msgs []*bus.Msg) {
		if msgs[0].StreamSeq == 1 {
			holdOnce.Do(func() { close(handlerHeld) })
		}
		for _, m := range msgs {
			// Only the last message may come alone at the head of a fetch,
			// nothing behind it.
			if want := "prepared:" + string(m.Data); m.Prepared() != want && m.StreamSeq < 100 {
				t.Errorf("message %d: Prepared() = %v, want %q (prepared ahead: the consumer is behind)", m.StreamSeq, m.Prepared(), want)
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
			if m.StreamSeq == 100 {
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
	case <-time.After(30 * time.Second):
		t.Fatal("message 100 not handled within 30s")
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

// A consumer keeping up gets each message as it comes, unprepared: its
// handler does the work, without a goroutine's wake-up in between.
func TestConsumeKeepingUpDoesNotPrepare(t *testing.T) {
	b := bustest.Start(t)
	ensureWAL(t, b, bus.StreamConfig{})
	got := make(chan *bus.Msg, 10)
	stop, err := b.ConsumePrepared(testCtx(t), "COFFER_WAL_c1", "", "d", 0, func(ctx context.Context, m *bus.Msg) any {
		return "prepared"
	}, each(func(ctx context.Context, m *bus.Msg) {
		_ = m.Ack()
		got <- m
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	for i := 1; i <= 3; i++ {
		publishN(t, b, "coffer.c1.wal", i, i)
		select {
		case m := <-got:
			if m.StreamSeq != uint64(i) || m.Prepared() != nil {
				t.Fatalf("message %d: got %d, Prepared() = %v; want it unprepared (nothing waits behind it)", i, m.StreamSeq, m.Prepared())
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("message %d not delivered", i)
		}
	}
}
