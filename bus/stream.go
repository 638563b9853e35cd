package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DuplicateWindow is how long JetStream remembers a Nats-Msg-Id to drop a
// republished message (capped at MaxAge when that is shorter).
const DuplicateWindow = 2 * time.Minute

// StreamConfig describes a stream. A zero limit means unlimited.
type StreamConfig struct {
	Name    string // stream name, e.g. COFFER_WAL_c1 (no '.', '*', '>' or spaces)
	Subject string // the one subject it captures, e.g. coffer.c1.wal
	// MaxAge, MaxBytes and MaxMsgs bound the stream; the oldest messages are
	// discarded past any of them. 0 = unlimited.
	MaxAge   time.Duration
	MaxBytes int64
	MaxMsgs  int64
	// Replicas is the JetStream replica count on a clustered NATS system
	// (0 = 1). An embedded server takes only 1.
	Replicas int
}

func (sc StreamConfig) jetstream() jetstream.StreamConfig {
	unlimited := func(v int64) int64 {
		if v <= 0 {
			return -1
		}
		return v
	}
	dup := DuplicateWindow
	if sc.MaxAge > 0 && sc.MaxAge < dup {
		dup = sc.MaxAge // JetStream refuses a window longer than MaxAge
	}
	replicas := sc.Replicas
	if replicas <= 0 {
		replicas = 1
	}
	return jetstream.StreamConfig{
		Name:       sc.Name,
		Subjects:   []string{sc.Subject},
		Retention:  jetstream.LimitsPolicy,
		Discard:    jetstream.DiscardOld,
		Storage:    jetstream.FileStorage,
		MaxAge:     max(sc.MaxAge, 0),
		MaxBytes:   unlimited(sc.MaxBytes),
		MaxMsgs:    unlimited(sc.MaxMsgs),
		Duplicates: dup,
		Replicas:   replicas,
	}
}

// EnsureStream creates the stream, or updates the subject and limits of an
// existing one (lowering a limit discards the messages past it at once).
func (b *Bus) EnsureStream(ctx context.Context, sc StreamConfig) error {
	if sc.Name == "" || sc.Subject == "" {
		return errors.New("ensure stream: a stream name and subject are required")
	}
	if _, err := b.js.CreateOrUpdateStream(ctx, sc.jetstream()); err != nil {
		return fmt.Errorf("ensure stream %s on %s: %w (%s)", sc.Name, sc.Subject, err, b.hint(err))
	}
	return nil
}

// DeleteStream deletes the stream and every message in it. Deleting a
// stream that does not exist is not an error.
func (b *Bus) DeleteStream(ctx context.Context, name string) error {
	err := b.js.DeleteStream(ctx, name)
	if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("delete stream %s: %w (%s)", name, err, b.hint(err))
	}
	return nil
}

// StreamState reports the first and last stream sequence and the message
// count. An empty stream that once held messages has first == last+1.
// A missing stream is ErrNotFound.
func (b *Bus) StreamState(ctx context.Context, name string) (first, last, msgs uint64, err error) {
	s, err := b.js.Stream(ctx, name)
	if err != nil {
		return 0, 0, 0, b.streamErr("stream state", name, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, 0, 0, b.streamErr("stream state", name, err)
	}
	return info.State.FirstSeq, info.State.LastSeq, info.State.Msgs, nil
}

// Publish stores data on the stream capturing subject and waits for
// JetStream's acknowledgement. A non-empty msgID is sent as Nats-Msg-Id: a
// second publish with the same id within the duplicate window is dropped by
// JetStream and returns the sequence of the original. ctx bounds the wait
// (5 s when it has no deadline).
func (b *Bus) Publish(ctx context.Context, subject string, data []byte, msgID string, headers map[string]string) (uint64, error) {
	msg := nats.NewMsg(subject)
	msg.Data = data
	for k, v := range headers {
		msg.Header.Set(k, v)
	}
	var opts []jetstream.PublishOpt
	if msgID != "" {
		opts = append(opts, jetstream.WithMsgID(msgID))
	}
	ack, err := b.js.PublishMsg(ctx, msg, opts...)
	if err != nil {
		if errors.Is(err, nats.ErrMaxPayload) {
			return 0, fmt.Errorf("publish to %s: message of %d bytes exceeds the server's max_payload of %d: raise max_payload on NATS or make batches smaller: %w",
				subject, len(data), b.nc.MaxPayload(), err)
		}
		return 0, fmt.Errorf("publish to %s: %w (%s)", subject, err, b.hint(err))
	}
	return ack.Sequence, nil
}

// streamErr maps "stream not found" to ErrNotFound.
func (b *Bus) streamErr(op, name string, err error) error {
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("%s: stream %s: %w: create it first (is replication enabled on the primary?)", op, name, ErrNotFound)
	}
	return fmt.Errorf("%s: stream %s: %w (%s)", op, name, err, b.hint(err))
}

// hint says what an operator should check after a failed JetStream call.
func (b *Bus) hint(err error) string {
	switch {
	case !b.nc.IsConnected():
		return "NATS is not connected: check that the NATS server is running and reachable at " + b.url
	case errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, nats.ErrNoResponders), errors.Is(err, jetstream.ErrJetStreamNotEnabled):
		return "no stream answers: check that JetStream is enabled on NATS and the stream exists"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return "NATS did not answer in time: check the NATS server's health and load"
	default:
		return "check the NATS server's log"
	}
}
