package primary

// The shipper's defences against the bus (docs/replication.md, "The WAL
// stream on an untrusted bus"): anyone on NATS may delete or re-configure the
// WAL stream, put another stream on its subject, and publish under any
// Nats-Msg-Id. The shipper checks the stream and restores it, names its
// batches with ids nobody else can compute, and reads back what JetStream
// calls a duplicate before taking it as shipped.

import (
	"context"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cofferhq/coffer/bus"
	"github.com/cofferhq/coffer/replication"
)

// streamCheckEvery is how often the shipper checks the WAL stream while it
// ships or idles; it checks at once after any failed publish. A variable for
// the tests only.
var streamCheckEvery = 5 * time.Second

// Message id format. Part of the wire format: a change makes JetStream store a
// batch retried across an upgrade twice (harmless: secondaries skip replays).
const (
	msgIDKeyInfo = "coffer wal msg id v1" // HKDF info deriving the id key
	msgIDVersion = 2                      // first byte of the HMAC input
	msgIDTagLen  = 16                     // bytes of the HMAC in the id
)

// errOtherStream: the publish was acknowledged by a stream other than the
// WAL stream, which therefore does not hold the batch.
var errOtherStream = errors.New("acknowledged by another stream")

// msgIDKey derives the key of batch message ids from the signing key: stable
// across restarts (a batch retried after a restart keeps its id), secret
// like the signing key, and different per primary cluster.
func msgIDKey(signer ed25519.PrivateKey) []byte {
	k, err := hkdf.Key(sha256.New, signer.Seed(), nil, msgIDKeyInfo, sha256.Size)
	if err != nil {
		panic(err) // only for a key length HKDF cannot give
	}
	return k
}

// idKeyMemo is msgIDKey of one signing key, kept: an HKDF per batch was 4%
// of the shipper's CPU.
type idKeyMemo struct {
	signer ed25519.PrivateKey
	key    []byte
}

// idKey is msgIDKey(signer), derived once per signing key.
func (p *Primary) idKey(signer ed25519.PrivateKey) []byte {
	if m := p.idKeys.Load(); m != nil && m.signer.Equal(signer) {
		return m.key
	}
	m := &idKeyMemo{signer: signer, key: msgIDKey(signer)}
	p.idKeys.Store(m)
	return m.key
}

// msgID is the Nats-Msg-Id of batch first..last sealed under epoch, on
// attempt salt (0, then one more each time JetStream held a message of
// somebody else under the id):
//
//	<cluster id>-<first>-<last>-<tag>
//	tag = hex(HMAC-SHA256(key, version(1)=2 | epoch(4) | generation(8) | first(8) | last(8) | salt(4))[:16])
//
// First and last stay readable for operators; the tag makes the id
// unpredictable to anyone without the key, so nobody can publish ahead under
// the id of a batch to come and have JetStream drop the real one. The
// generation keeps a new generation's batches over re-used WAL indexes (a
// primary whose storage went back in time) from being taken for duplicates.
func msgID(clusterID string, key []byte, epoch uint32, gen, first, last uint64, salt uint32) string {
	in := make([]byte, 0, 33)
	in = append(in, msgIDVersion)
	in = binary.BigEndian.AppendUint32(in, epoch)
	in = binary.BigEndian.AppendUint64(in, gen)
	in = binary.BigEndian.AppendUint64(in, first)
	in = binary.BigEndian.AppendUint64(in, last)
	in = binary.BigEndian.AppendUint32(in, salt)
	m := hmac.New(sha256.New, key)
	m.Write(in)
	return fmt.Sprintf("%s-%d-%d-%s", clusterID, first, last, hex.EncodeToString(m.Sum(nil)[:msgIDTagLen]))
}

// checkDuplicate reads back the message JetStream says it already holds
// under b's id, at seq: nil when it is b as this primary sealed it (a retry
// of a publish that had landed, or a re-ship after a restart), else why not.
func (p *Primary) checkDuplicate(ctx context.Context, seq uint64, b *replication.Batch, l *lane) error {
	data, err := p.cfg.Bus.StreamMsg(ctx, p.stream, seq)
	if err != nil {
		return fmt.Errorf("it cannot be read back: %w", err)
	}
	epoch, first, last, err := replication.PeekBatch(data)
	if err != nil {
		return fmt.Errorf("it is not a batch: %w", err)
	}
	if epoch != b.Epoch || first != b.First || last != b.Last {
		return fmt.Errorf("it claims batch %d-%d of epoch %d", first, last, epoch)
	}
	p.mu.Lock()
	key, pub := p.st.key(epoch), p.st.signer().Public().(ed25519.PublicKey)
	p.mu.Unlock()
	if l != nil && key != nil {
		key = replication.FilterKey(key, l.id)
	}
	if _, err := replication.OpenBatch(data, p.cfg.ClusterID, key, pub); err != nil {
		return fmt.Errorf("it does not verify as this primary's: %w", err)
	}
	return nil
}

// guardStream checks that the WAL stream exists with the configured settings
// and restores it when not (or, with force, restores whatever the check
// finds: a publish was acknowledged by another stream). It returns the
// check's or the restore's error; a restore is logged and counted in Status.
// Shipper goroutine only (and start, before it runs).
func (p *Primary) guardStream(ctx context.Context, force bool) error {
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	p.checkedAt = time.Now()
	sc := p.cfg.streamConfig()
	chk, err := p.cfg.Bus.CheckStream(ctx, sc)
	var found string
	switch {
	case errors.Is(err, bus.ErrNotFound):
		found = "the WAL stream is missing"
	case err != nil:
		return err
	case len(chk.Drift) > 0:
		found = "the WAL stream's settings differ from the configured ones: " + strings.Join(chk.Drift, "; ")
	case force:
		found = "a publish on the WAL subject was acknowledged by another stream"
	}
	p.seq = max(p.seq, chk.LastSeq)
	if found == "" {
		return nil
	}
	did, err := p.cfg.Bus.RestoreStream(ctx, sc, p.seq+1)
	if err != nil {
		p.log.Warn().Err(err).Str("found", found).Msg("cannot restore the WAL stream; shipping retries")
		return err
	}
	if len(did) == 0 {
		return nil // someone else restored it meanwhile
	}
	note := found + "; " + strings.Join(did, "; ")
	p.smu.Lock()
	p.ss.repairs++
	p.ss.lastRepair, p.ss.lastRepairAt = note, p.cfg.Now()
	p.smu.Unlock()
	p.log.Warn().Str("found", found).Strs("restored", did).
		Msg("restored the WAL stream (someone on the bus deleted or changed it?); secondaries that missed batches detect the gap and resync by merkle diff")
	return nil
}

// shipStats is what Status reports of the shipper's fight with the bus.
type shipStats struct {
	repairs      uint64
	lastRepair   string
	lastRepairAt time.Time
	foreignDups  uint64
	err          string
	errSince     time.Time
}

// setShipErr records the publish failure now holding shipping back (nil:
// shipping works).
func (p *Primary) setShipErr(err error) {
	p.smu.Lock()
	defer p.smu.Unlock()
	switch {
	case err == nil:
		p.ss.err, p.ss.errSince = "", time.Time{}
	case p.ss.err == "":
		p.ss.err, p.ss.errSince = err.Error(), p.cfg.Now()
	default:
		p.ss.err = err.Error()
	}
}

// provisionStream creates the WAL stream, or brings an existing one to the
// configured settings (an operator may have changed a limit; lowering one
// discards the messages past it at once), and notes its last sequence.
func (p *Primary) provisionStream(ctx context.Context) error {
	sc := p.cfg.streamConfig()
	did, err := p.cfg.Bus.RestoreStream(ctx, sc, p.seq+1)
	if err != nil {
		return err
	}
	if len(did) > 0 {
		p.log.Info().Strs("did", did).Msg("provisioned the WAL stream")
	}
	chk, err := p.cfg.Bus.CheckStream(ctx, sc)
	if err != nil {
		return err
	}
	p.seq, p.checkedAt = max(p.seq, chk.LastSeq), time.Now()
	return nil
}
