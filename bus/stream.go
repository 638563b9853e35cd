package bus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cofferhq/coffer/internal/backoff"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DuplicateWindow is how long JetStream remembers a Nats-Msg-Id to drop a
// republished message (capped at MaxAge when that is shorter).
const DuplicateWindow = 2 * time.Minute

// StreamConfig describes a stream. A zero limit means unlimited.
type StreamConfig struct {
	Name    string // stream name, e.g. COFFER_WAL_c1 (no '.', '*', '>' or spaces)
	Subject string // the subject it is known by, e.g. coffer.c1.wal
	// Also lists further subjects it captures (e.g. coffer.c1.wal.f.*: the
	// batch copies of paths filters).
	Also []string
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
		Subjects:   append([]string{sc.Subject}, sc.Also...),
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
	err := storeRetry(ctx, func() error {
		_, err := b.js.CreateOrUpdateStream(ctx, sc.jetstream())
		return err
	})
	if err != nil {
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

// Publish is PublishAck returning the stream sequence only. A duplicate
// (the msg id was seen within the duplicate window) is not an error and
// returns the earlier message's sequence: a caller that must know whether
// its own message was stored calls PublishAck.
func (b *Bus) Publish(ctx context.Context, subject string, data []byte, msgID string, headers map[string]string) (uint64, error) {
	ack, err := b.PublishAck(ctx, subject, data, msgID, headers)
	return ack.Sequence, err
}

// PubAck is JetStream's acknowledgement of a publish.
type PubAck struct {
	// Stream is the stream that answered: the one capturing the subject,
	// which on an untrusted bus need not be the one the caller created.
	Stream string
	// Sequence is the stored message's stream sequence, or, for a
	// duplicate, the sequence of the earlier message under the same id.
	Sequence uint64
	// Duplicate: JetStream already held a message under this msg id within
	// the duplicate window and stored nothing. It does not say who published
	// the earlier message: anyone who knows the id can publish under it
	// first. StreamMsg reads it back.
	Duplicate bool
}

// PublishAck stores data on the stream capturing subject and waits for
// JetStream's acknowledgement. A non-empty msgID is sent as Nats-Msg-Id: a
// second publish with the same id within the duplicate window is dropped by
// JetStream and acknowledged as a duplicate. ctx bounds the wait (5 s when it
// has no deadline).
func (b *Bus) PublishAck(ctx context.Context, subject string, data []byte, msgID string, headers map[string]string) (PubAck, error) {
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
			return PubAck{}, fmt.Errorf("publish to %s: message of %d bytes exceeds the server's max_payload of %d: raise max_payload on NATS or make batches smaller: %w",
				subject, len(data), b.nc.MaxPayload(), err)
		}
		return PubAck{}, fmt.Errorf("publish to %s: %w (%s)", subject, err, b.hint(err))
	}
	return PubAck{Stream: ack.Stream, Sequence: ack.Sequence, Duplicate: ack.Duplicate}, nil
}

// StreamMsg returns the data of the message at seq in the stream. A missing
// stream or message is ErrNotFound.
func (b *Bus) StreamMsg(ctx context.Context, stream string, seq uint64) ([]byte, error) {
	s, err := b.js.Stream(ctx, stream)
	if err != nil {
		return nil, b.streamErr("read message", stream, err)
	}
	m, err := s.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, fmt.Errorf("read message %d of stream %s: %w", seq, stream, ErrNotFound)
	}
	if err != nil {
		return nil, b.streamErr(fmt.Sprintf("read message %d", seq), stream, err)
	}
	return m.Data, nil
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

// StreamCheck is what CheckStream found.
type StreamCheck struct {
	// LastSeq is the stream's last sequence (0 for a stream that never held
	// a message and was created without a first sequence).
	LastSeq uint64
	// Drift says, one setting an entry, how the stream differs from the
	// configuration asked for; empty when it matches.
	Drift []string
}

// CheckStream compares the stream sc.Name on NATS with sc in every setting
// that decides whether a message published on sc.Subject is stored, kept
// and delivered (see drift). A missing stream is ErrNotFound.
func (b *Bus) CheckStream(ctx context.Context, sc StreamConfig) (StreamCheck, error) {
	s, err := b.js.Stream(ctx, sc.Name)
	if err != nil {
		return StreamCheck{}, b.streamErr("check stream", sc.Name, err)
	}
	info := s.CachedInfo()
	return StreamCheck{LastSeq: info.State.LastSeq, Drift: drift(sc.jetstream(), info.Config)}, nil
}

// RestoreStream makes sc.Name exist again with sc's settings, as the only
// stream capturing sc.Subject. It deletes every other stream that captures
// the subject, creates sc.Name when it is missing (starting at firstSeq when
// that is above 1, so that a durable consumer re-created after its last
// position does not wait past the new messages), updates it in place when
// settings JetStream can change differ, and deletes and re-creates it when
// the update is refused (sealed, storage, mirror). It returns what it did,
// one action an entry, for the caller's log, also with an error. JetStream
// may refuse a file store for a moment right after a stream of the same name
// was deleted: the stream is then missing, and the caller retries (with the
// highest sequence it has seen, which CheckStream reported).
func (b *Bus) RestoreStream(ctx context.Context, sc StreamConfig, firstSeq uint64) ([]string, error) {
	if sc.Name == "" || sc.Subject == "" {
		return nil, errors.New("restore stream: a stream name and subject are required")
	}
	var did []string
	names := b.js.StreamNames(ctx, jetstream.WithStreamListSubject(sc.Subject))
	for name := range names.Name() {
		if name == sc.Name {
			continue
		}
		if err := b.DeleteStream(ctx, name); err != nil {
			return did, fmt.Errorf("restore stream %s: remove stream %s, which captures %s: %w", sc.Name, name, sc.Subject, err)
		}
		did = append(did, fmt.Sprintf("deleted stream %s, which captured %s", name, sc.Subject))
	}
	if err := names.Err(); err != nil {
		return did, fmt.Errorf("restore stream %s: list the streams capturing %s: %w (%s)", sc.Name, sc.Subject, err, b.hint(err))
	}
	want := sc.jetstream()
	s, err := b.js.Stream(ctx, sc.Name)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return b.createStream(ctx, want, firstSeq, did)
	case err != nil:
		return did, b.streamErr("restore stream", sc.Name, err)
	}
	info := s.CachedInfo()
	d := drift(want, info.Config)
	if len(d) == 0 {
		return did, nil
	}
	_, err = b.js.UpdateStream(ctx, want)
	if err == nil {
		return append(did, "updated stream "+sc.Name+": "+strings.Join(d, "; ")), nil
	}
	if refused := (*jetstream.APIError)(nil); !errors.As(err, &refused) {
		// Not JetStream refusing the update: NATS is away or slow.
		return did, fmt.Errorf("restore stream %s: update: %w (%s)", sc.Name, err, b.hint(err))
	}
	if err := b.DeleteStream(ctx, sc.Name); err != nil {
		return did, fmt.Errorf("restore stream %s: %w", sc.Name, err)
	}
	did = append(did, "deleted stream "+sc.Name+", which JetStream would not update: "+strings.Join(d, "; "))
	return b.createStream(ctx, want, max(firstSeq, info.State.LastSeq+1), did)
}

func (b *Bus) createStream(ctx context.Context, cfg jetstream.StreamConfig, firstSeq uint64, did []string) ([]string, error) {
	if firstSeq > 1 {
		cfg.FirstSeq = firstSeq
	}
	err := storeRetry(ctx, func() error {
		_, err := b.js.CreateStream(ctx, cfg)
		return err
	})
	if err != nil {
		return did, fmt.Errorf("create stream %s on %v: %w (%s)", cfg.Name, cfg.Subjects, err, b.hint(err))
	}
	return append(did, fmt.Sprintf("created stream %s at sequence %d", cfg.Name, max(firstSeq, 1))), nil
}

// jsStoreFailed is JetStream's "error creating store for stream" (JSStreamStoreFailedF).
const jsStoreFailed jetstream.ErrorCode = 10049

// storeRetry runs create (of a stream or a KV bucket) again while it fails
// with jsStoreFailed, for up to 2 s: right after a stream is deleted (a
// squatter, a stranger deleting ours, our own to be re-created), nats-server
// may still be removing the account's store directory, and a new stream's
// store fails to be made; it passes on a retry. Seen in CI under -race.
func storeRetry(ctx context.Context, create func() error) error {
	for try := 0; ; try++ {
		err := create()
		var apiErr *jetstream.APIError
		if err == nil || !errors.As(err, &apiErr) || apiErr.ErrorCode != jsStoreFailed || try == 40 {
			return err
		}
		if !backoff.Sleep(ctx, 50*time.Millisecond) {
			return err
		}
	}
}

// drift lists how have differs from want in the settings that decide whether
// what is published on the subject is stored, kept and delivered: subjects,
// retention, discard, storage, limits, the duplicate window, replicas, and
// settings nobody should have set on it (no ack, sealed, rollup, mirror,
// sources, consumer limits, counters, asynchronous persistence). Description,
// metadata, compression and placement do not matter and are not compared.
func drift(want, have jetstream.StreamConfig) []string {
	var d []string
	add := func(format string, args ...any) { d = append(d, fmt.Sprintf(format, args...)) }
	unlimited := func(v int64) int64 { return max(v, -1) }
	if !slices.Equal(have.Subjects, want.Subjects) {
		add("subjects %v, want %v", have.Subjects, want.Subjects)
	}
	if have.Retention != want.Retention || have.Discard != want.Discard || have.Storage != want.Storage {
		add("retention %s, discard %s, storage %s, want %s, %s, %s", have.Retention, have.Discard, have.Storage, want.Retention, want.Discard, want.Storage)
	}
	if have.MaxAge != want.MaxAge || unlimited(have.MaxBytes) != unlimited(want.MaxBytes) || unlimited(have.MaxMsgs) != unlimited(want.MaxMsgs) {
		add("limits max_age %s, max_bytes %d, max_msgs %d, want %s, %d, %d", have.MaxAge, have.MaxBytes, have.MaxMsgs, want.MaxAge, want.MaxBytes, want.MaxMsgs)
	}
	if have.MaxMsgsPerSubject > 0 || have.MaxMsgSize > 0 || have.MaxConsumers > 0 {
		add("max_msgs_per_subject %d, max_msg_size %d, max_consumers %d, want no limit", have.MaxMsgsPerSubject, have.MaxMsgSize, have.MaxConsumers)
	}
	if have.Duplicates != want.Duplicates || have.Replicas != want.Replicas {
		add("duplicate window %s, replicas %d, want %s, %d", have.Duplicates, have.Replicas, want.Duplicates, want.Replicas)
	}
	if have.NoAck || have.Sealed || have.AllowRollup || have.AllowMsgCounter {
		add("no_ack %t, sealed %t, allow_rollup %t, allow_msg_counter %t, want all false", have.NoAck, have.Sealed, have.AllowRollup, have.AllowMsgCounter)
	}
	if have.Mirror != nil || len(have.Sources) > 0 {
		add("a mirror or %d sources, want none", len(have.Sources))
	}
	if have.ConsumerLimits != (jetstream.StreamConsumerLimits{}) || have.PersistMode != jetstream.DefaultPersistMode {
		add("consumer limits %+v, persist mode %s, want none and default", have.ConsumerLimits, have.PersistMode)
	}
	return d
}
