package bus_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cofferhq/coffer/bus"
	"github.com/cofferhq/coffer/bus/bustest"
	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A consumer behind the stream gets its messages in groups; a nak in the
// middle of a group, or a message left unsettled, brings that message and
// the rest again in order, with nothing after them delivered first
// (JetStream alone would redeliver them after newer ones).
func TestConsumeGroupsKeepOrderAcrossNaks(t *testing.T) {
	b := bustest.Start(t)
	ensureWAL(t, b, bus.StreamConfig{})
	publishN(t, b, "coffer.c1.wal", 1, 300)
	var (
		mu       sync.Mutex
		acked    []uint64
		largest  int
		tries    = map[uint64]int{}
		finished = make(chan struct{})
	)
	stop, err := b.Consume(testCtx(t), "COFFER_WAL_c1", "d", 0, func(ctx context.Context, msgs []*bus.Msg) {
		mu.Lock()
		defer mu.Unlock()
		largest = max(largest, len(msgs))
		for _, m := range msgs {
			tries[m.StreamSeq]++
			switch {
			case m.StreamSeq == 70 && tries[70] == 1:
				_ = m.Nak()
				return
			case m.StreamSeq == 150 && tries[150] == 1:
				return // unsettled
			}
			if err := m.Ack(); err != nil {
				t.Error(err)
			}
			acked = append(acked, m.StreamSeq)
			if m.StreamSeq == 300 {
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
		t.Fatal("seq 300 not delivered within 20s")
	}
	mu.Lock()
	defer mu.Unlock()
	for i, seq := range acked {
		if seq != uint64(i+1) {
			t.Fatalf("handled %d as message %d: order broken (%v)", seq, i+1, acked[max(0, i-3):min(len(acked), i+3)])
		}
	}
	if largest < 2 {
		t.Fatalf("largest group %d: a consumer 300 messages behind got them one at a time", largest)
	}
}

// Messages delivered to the durable but never received by this process (a
// fetch the client had given up on, in a process frozen past it) stay
// pending until AckWait, while newer ones are delivered: Consume notices the
// hole and delivers again from it at once, in order. Here a second client
// takes message 4 from the durable and never acks it.
func TestConsumeRepairsAHoleAtOnce(t *testing.T) {
	b := bustest.Start(t)
	ctx := testCtx(t)
	ensureWAL(t, b, bus.StreamConfig{})
	publishN(t, b, "coffer.c1.wal", 1, 3)
	var (
		mu      sync.Mutex
		handled []uint64
	)
	release := make(chan struct{})
	got := make(chan uint64, 16)
	stop, err := b.Consume(ctx, "COFFER_WAL_c1", "d", 0, each(func(ctx context.Context, m *bus.Msg) {
		if err := m.Ack(); err != nil {
			t.Error(err)
		}
		mu.Lock()
		handled = append(handled, m.StreamSeq)
		mu.Unlock()
		got <- m.StreamSeq
		if m.StreamSeq == 3 {
			<-release // hold the consumer while the thief takes 4
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	for range 3 {
		next(t, got)
	}
	steal(t, b, 4, 6)
	close(release)
	for range 3 {
		next(t, got)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []uint64{1, 2, 3, 4, 5, 6}; !slices.Equal(handled, want) {
		t.Fatalf("handled %v, want %v", handled, want)
	}
}

// The last message taken by someone who never acks it (nothing after it to
// show a hole) is delivered again once a pull comes back empty: here the
// thief keeps its delivery alive (in progress), so JetStream alone would
// never give it back.
func TestConsumeRecoversStrandedMessages(t *testing.T) {
	b := bustest.Start(t)
	ctx := testCtx(t)
	ensureWAL(t, b, bus.StreamConfig{})
	publishN(t, b, "coffer.c1.wal", 1, 2)
	got := make(chan uint64, 16)
	release := make(chan struct{})
	stop, err := b.Consume(ctx, "COFFER_WAL_c1", "d", 0, each(func(ctx context.Context, m *bus.Msg) {
		if err := m.Ack(); err != nil {
			t.Error(err)
		}
		got <- m.StreamSeq
		if m.StreamSeq == 2 {
			<-release
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	next(t, got)
	next(t, got)
	m := steal(t, b, 3, 3)
	done := make(chan struct{})
	defer close(done)
	go func() { // keep the theft alive: never redelivered by JetStream
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			_ = m.InProgress()
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	close(release)
	if seq := next(t, got); seq != 3 {
		t.Fatalf("delivered %d, want 3", seq)
	}
}

// steal waits until the consumer of durable "d" has no pull waiting, then
// publishes messages from..to and takes message from with a second client
// that never acks it.
func steal(t *testing.T, b *bus.Bus, from, to int) jetstream.Msg {
	t.Helper()
	ctx := testCtx(t)
	nc, err := nats.Connect(b.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := js.Consumer(ctx, "COFFER_WAL_c1", "d")
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "the consumer's pull to expire", func() error {
		info, err := cons.Info(ctx)
		if err != nil || info.NumWaiting != 0 {
			return fmt.Errorf("waiting pulls %v, err %v", info, err)
		}
		return nil
	})
	publishN(t, b, "coffer.c1.wal", from, to)
	stolen, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	m, ok := <-stolen.Messages()
	if !ok {
		t.Fatalf("the thief got nothing: %v", stolen.Error())
	}
	if meta, _ := m.Metadata(); meta == nil || meta.Sequence.Stream != uint64(from) {
		t.Fatalf("the thief got %v, want seq %d", meta, from)
	}
	return m
}

// each adapts a one-message handler to Consume's groups: it handles the
// messages in order and stops at the first it did not ack, as an applier
// that applies one message at a time would.
func each(h func(ctx context.Context, m *bus.Msg)) func(context.Context, []*bus.Msg) {
	return func(ctx context.Context, msgs []*bus.Msg) {
		for _, m := range msgs {
			acked := false
			ack := m.Ack
			m.Ack = func() error {
				err := ack()
				acked = err == nil
				return err
			}
			h(ctx, m)
			if !acked {
				return
			}
		}
	}
}

// ConsumeSubject reads one subject of a stream that captures several (a
// paths filter's batch copies beside the WAL subject); a durable created for
// every message, or for another subject, is created anew on the subject
// asked for (just after its ack floor, which trails the acks sent: they are
// not confirmed, so where exactly it resumes is not asserted).
func TestConsumeSubjectFilters(t *testing.T) {
	b := bustest.Start(t)
	ensureWAL(t, b, bus.StreamConfig{Name: "COFFER_WAL_c1", Subject: "coffer.c1.wal", Also: []string{"coffer.c1.wal.f.*"}})
	for i := 1; i <= 6; i++ {
		publishN(t, b, "coffer.c1.wal", i, i)
		if _, err := b.Publish(testCtx(t), "coffer.c1.wal.f.x", fmt.Appendf(nil, "x%d", i), fmt.Sprintf("x-%d", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	read := func(subject string, n int) []string {
		t.Helper()
		var (
			mu  sync.Mutex
			got []string
		)
		stop, err := b.ConsumeSubject(testCtx(t), "COFFER_WAL_c1", subject, "d", 0, func(_ context.Context, msgs []*bus.Msg) {
			mu.Lock()
			defer mu.Unlock()
			for _, m := range msgs {
				if len(got) < n {
					got = append(got, string(m.Data))
					_ = m.Ack()
				}
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		defer stop()
		testutil.Eventually(t, 10*time.Second, fmt.Sprintf("%d messages of %q", n, subject), func() error {
			mu.Lock()
			defer mu.Unlock()
			if len(got) < n {
				return fmt.Errorf("got %v", got)
			}
			return nil
		})
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
	// Unfiltered first: the copies come too.
	if got := read("", 2); fmt.Sprint(got) != "[m1 x1]" {
		t.Fatalf("every message: %v", got)
	}
	only := func(got []string, prefix byte) {
		t.Helper()
		for i, m := range got {
			if m[0] != prefix || (i > 0 && m[1] != got[i-1][1]+1) {
				t.Fatalf("want consecutive %c messages, got %v", prefix, got)
			}
		}
	}
	only(read("coffer.c1.wal.f.x", 3), 'x')
	only(read("coffer.c1.wal", 2), 'm')
}
