package bus_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/bus"
	"github.com/cofferhq/coffer/bus/bustest"
	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/nats-io/nats.go/jetstream"
)

var walConfig = bus.StreamConfig{Name: "COFFER_WAL_c1", Subject: "coffer.c1.wal", MaxAge: time.Hour, MaxBytes: 1 << 20}

// strangerJS is a plain JetStream client on b's server: anyone on the bus.
func strangerJS(t *testing.T, b *bus.Bus) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(stranger(t, b))
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func TestPublishAckReportsDuplicatesAndStreamMsgReadsThem(t *testing.T) {
	b := bustest.Start(t)
	ensureWAL(t, b, walConfig)
	ctx := testCtx(t)
	a1, err := b.PublishAck(ctx, "coffer.c1.wal", []byte("first"), "id-1", nil)
	if err != nil || a1.Duplicate || a1.Stream != "COFFER_WAL_c1" || a1.Sequence != 1 {
		t.Fatalf("first publish: %+v, %v", a1, err)
	}
	a2, err := b.PublishAck(ctx, "coffer.c1.wal", []byte("second"), "id-1", nil)
	if err != nil || !a2.Duplicate || a2.Sequence != 1 {
		t.Fatalf("publish under a seen id: %+v, %v; want a duplicate of sequence 1", a2, err)
	}
	data, err := b.StreamMsg(ctx, "COFFER_WAL_c1", a2.Sequence)
	if err != nil || string(data) != "first" {
		t.Fatalf("read back the message a duplicate names: %q, %v", data, err)
	}
	if _, err := b.StreamMsg(ctx, "COFFER_WAL_c1", 99); !errors.Is(err, bus.ErrNotFound) {
		t.Fatalf("missing message: %v, want ErrNotFound", err)
	}
	if _, err := b.StreamMsg(ctx, "NOPE", 1); !errors.Is(err, bus.ErrNotFound) {
		t.Fatalf("missing stream: %v, want ErrNotFound", err)
	}
}

// A stream deleted by a stranger is reported missing and re-created at the
// first sequence asked for.
func TestRestoreStreamRecreatesADeletedStream(t *testing.T) {
	b := bustest.Start(t)
	ensureWAL(t, b, walConfig)
	ctx := testCtx(t)
	if err := strangerJS(t, b).DeleteStream(ctx, walConfig.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CheckStream(ctx, walConfig); !errors.Is(err, bus.ErrNotFound) {
		t.Fatalf("check a deleted stream: %v, want ErrNotFound", err)
	}
	did, err := b.RestoreStream(ctx, walConfig, 42)
	if err != nil || len(did) != 1 || !strings.Contains(did[0], "created stream COFFER_WAL_c1 at sequence 42") {
		t.Fatalf("restore: %q, %v", did, err)
	}
	chk, err := b.CheckStream(ctx, walConfig)
	if err != nil || len(chk.Drift) != 0 || chk.LastSeq != 41 {
		t.Fatalf("check after restore: %+v, %v", chk, err)
	}
	if a, err := b.PublishAck(ctx, walConfig.Subject, []byte("x"), "id", nil); err != nil || a.Sequence != 42 {
		t.Fatalf("publish after restore: %+v, %v", a, err)
	}
	if did, err := b.RestoreStream(ctx, walConfig, 1); err != nil || len(did) != 0 {
		t.Fatalf("restore of a stream that is fine did %q, %v", did, err)
	}
}

// Settings a stranger changed are found and put back: in place when
// JetStream allows it, else by re-creating the stream after its last
// sequence.
func TestRestoreStreamUndoesChangedSettings(t *testing.T) {
	b := bustest.Start(t)
	ensureWAL(t, b, walConfig)
	ctx := testCtx(t)
	js := strangerJS(t, b)
	for range 3 {
		if _, err := b.Publish(ctx, walConfig.Subject, []byte("m"), "", nil); err != nil {
			t.Fatal(err)
		}
	}
	s, err := js.Stream(ctx, walConfig.Name)
	if err != nil {
		t.Fatal(err)
	}
	evil := s.CachedInfo().Config
	evil.MaxMsgs, evil.MaxMsgSize, evil.AllowRollup = 5, 16, true
	evil.ConsumerLimits.InactiveThreshold = time.Second
	if _, err := js.UpdateStream(ctx, evil); err != nil {
		t.Fatal(err)
	}
	chk, err := b.CheckStream(ctx, walConfig)
	if err != nil || len(chk.Drift) != 4 || chk.LastSeq != 3 {
		t.Fatalf("check a changed stream: %+v, %v; want 4 settings named", chk, err)
	}
	did, err := b.RestoreStream(ctx, walConfig, 1)
	if err != nil || len(did) != 1 || !strings.HasPrefix(did[0], "updated stream") {
		t.Fatalf("restore: %q, %v", did, err)
	}
	if chk, err := b.CheckStream(ctx, walConfig); err != nil || len(chk.Drift) != 0 || chk.LastSeq != 3 {
		t.Fatalf("after an update in place: %+v, %v (the messages stay)", chk, err)
	}

	// Storage and sealing cannot be changed back: delete and re-create.
	if err := js.DeleteStream(ctx, walConfig.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: walConfig.Name, Subjects: []string{walConfig.Subject}, Storage: jetstream.MemoryStorage, FirstSeq: 100}); err != nil {
		t.Fatal(err)
	}
	did, err = b.RestoreStream(ctx, walConfig, 7)
	if len(did) == 0 || !strings.Contains(did[0], "would not update") {
		t.Fatalf("restore a memory stream: %q, %v", did, err)
	}
	if err != nil {
		// JetStream may refuse a file store right after deleting the
		// stream of that name ("error creating store for stream"): the
		// caller retries, with the last sequence it saw.
		t.Logf("create after delete: %v; retrying", err)
		testutil.Eventually(t, 10*time.Second, "the stream re-created", func() error {
			did, err = b.RestoreStream(ctx, walConfig, 100)
			return err
		})
	}
	if !strings.Contains(did[len(did)-1], "at sequence 100") {
		t.Fatalf("restore a memory stream: %q", did)
	}
	if chk, err := b.CheckStream(ctx, walConfig); err != nil || len(chk.Drift) != 0 {
		t.Fatalf("after re-creating: %+v, %v", chk, err)
	}
}

// A stream of another name that captures the subject (after the real one was
// deleted, or its subject changed) acknowledges publishes in its stead; it is
// deleted and the real stream takes the subject back.
func TestRestoreStreamRemovesSquatters(t *testing.T) {
	for _, tc := range []struct {
		name     string
		subjects []string
		keepOurs bool // change our stream's subject rather than delete it
	}{
		{"exact subject", []string{"coffer.c1.wal"}, false},
		{"wildcard", []string{"coffer.>"}, false},
		{"our stream moved off its subject", []string{"coffer.c1.wal"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := bustest.Start(t)
			ensureWAL(t, b, walConfig)
			ctx := testCtx(t)
			js := strangerJS(t, b)
			if tc.keepOurs {
				s, err := js.Stream(ctx, walConfig.Name)
				if err != nil {
					t.Fatal(err)
				}
				moved := s.CachedInfo().Config
				moved.Subjects = []string{"elsewhere"}
				if _, err := js.UpdateStream(ctx, moved); err != nil {
					t.Fatal(err)
				}
			} else if err := js.DeleteStream(ctx, walConfig.Name); err != nil {
				t.Fatal(err)
			}
			// nats-server may still be removing the store directory of the
			// stream just deleted (its error 10049): bus.createStream retries
			// the same way.
			testutil.Eventually(t, 10*time.Second, "create the squatter", func() error {
				_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "SQUAT", Subjects: tc.subjects})
				var apiErr *jetstream.APIError
				if err != nil && !(errors.As(err, &apiErr) && apiErr.ErrorCode == 10049) {
					t.Fatal(err)
				}
				return err
			})
			if a, err := b.PublishAck(ctx, walConfig.Subject, []byte("x"), "id", nil); err != nil || a.Stream != "SQUAT" {
				t.Fatalf("publish while squatted: %+v, %v; want an ack from SQUAT", a, err)
			}
			did, err := b.RestoreStream(ctx, walConfig, 1)
			if err != nil || len(did) != 2 || !strings.Contains(did[0], "deleted stream SQUAT") {
				t.Fatalf("restore: %q, %v", did, err)
			}
			if a, err := b.PublishAck(ctx, walConfig.Subject, []byte("x"), "id", nil); err != nil || a.Stream != walConfig.Name || a.Duplicate {
				t.Fatalf("publish after restore: %+v, %v", a, err)
			}
			names := js.StreamNames(ctx)
			var all []string
			for n := range names.Name() {
				all = append(all, n)
			}
			if !slices.Equal(all, []string{walConfig.Name}) {
				t.Fatalf("streams after restore: %v", all)
			}
		})
	}
}
