package tests

// The NATS side of replication: bus blocks for server configs, and a plain NATS
// client on a primary's WAL stream (anyone on the bus).

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// embeddedBus is the body of a bus block for an embedded NATS server.
func embeddedBus(t *testing.T) string {
	t.Helper()
	return fmt.Sprintf("embedded = true\n  listen = %q\n  store_dir = %q", testutil.FreeAddr(t), t.TempDir())
}

// embeddedBusAt is embeddedBus that also returns the embedded NATS address
// and the client seed file the server generates there at first start, which
// secondaries and plain NATS clients need to connect (docs/security.md).
func embeddedBusAt(t *testing.T) (body, natsAddr, seedFile string) {
	t.Helper()
	natsAddr, dir := testutil.FreeAddr(t), t.TempDir()
	body = fmt.Sprintf("embedded = true\n  listen = %q\n  store_dir = %q", natsAddr, dir)
	return body, natsAddr, filepath.Join(dir, "auth", "client.nk")
}

// withSeed adds nkey_seed_file to a bus block body: the credentials a
// secondary uses for its primary's embedded NATS.
func withSeed(body, seedFile string) string {
	return fmt.Sprintf("%s\n  nkey_seed_file = %q", body, seedFile)
}

// natsSeed is the nats.go option for a client seed file.
func natsSeed(t *testing.T, seedFile string) nats.Option {
	t.Helper()
	opt, err := nats.NkeyOptionFromSeed(seedFile)
	if err != nil {
		t.Fatalf("nkey seed %s: %v", seedFile, err)
	}
	return opt
}

// walBus is a plain NATS client on a primary's bus: anyone on the bus.
type walBus struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	stream  jetstream.Stream
	subject string
}

// openWALStream connects to natsURL (with opts, such as natsSeed) and binds
// the WAL stream of primary cluster clusterID (names from docs/replication.md).
func openWALStream(t *testing.T, natsURL, clusterID string, opts ...nats.Option) *walBus {
	t.Helper()
	nc, err := nats.Connect(natsURL, append([]nats.Option{nats.Timeout(5 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatalf("connect to %s: %v", natsURL, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	name := "COFFER_WAL_" + strings.ReplaceAll(clusterID, "-", "_")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatalf("stream %s on %s: %v", name, natsURL, err)
	}
	subj := "coffer." + clusterID + ".wal"
	if !slices.Contains(st.CachedInfo().Config.Subjects, subj) {
		t.Fatalf("stream %s subjects %v, want %s", name, st.CachedInfo().Config.Subjects, subj)
	}
	return &walBus{nc: nc, js: js, stream: st, subject: subj}
}

// last returns the newest message of the WAL subject.
func (w *walBus) last(t *testing.T) *jetstream.RawStreamMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := w.stream.GetLastMsgForSubject(ctx, w.subject)
	if err != nil {
		t.Fatalf("last message of %s: %v", w.subject, err)
	}
	return m
}

// publish stores data on the WAL subject with a fresh Nats-Msg-Id and
// returns its stream sequence.
func (w *walBus) publish(t *testing.T, data []byte) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ack, err := w.js.Publish(ctx, w.subject, data, jetstream.WithMsgID(fmt.Sprintf("forged-%x", randomBytes(t, 8))))
	if err != nil {
		t.Fatalf("publish on %s: %v", w.subject, err)
	}
	if ack.Duplicate {
		t.Fatalf("forged message taken as a duplicate")
	}
	return ack.Sequence
}
