package security

// What only the WAL shipping attack tests (ship_*_test.go) need: a wait
// for a secondary that converged and streams, and a stranger on the
// primary's NATS with nats.go only.

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/hashicorp/vault/api"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// shipConverged waits until the secondary serves exactly the primary's
// secret/ and its replication state is stream-wals.
func shipConverged(t *testing.T, P, S *api.Client, sec *server) {
	t.Helper()
	testutil.Eventually(t, replTimeout, "the secondary serves the primary's data and streams again", func() error {
		if _, err := sameData(P, S); err != nil {
			return err
		}
		return stateIs(sec.addr, "stream-wals")
	})
}

// shipStranger is anyone on the primary's NATS: a nats.go client knowing
// only the names docs/replication.md publishes and what status shows.
type shipStranger struct {
	js      jetstream.JetStream
	stream  string
	subject string
}

func shipStrangerOn(t *testing.T, natsAddr, clusterID string) *shipStranger {
	t.Helper()
	nc, err := nats.Connect("nats://"+natsAddr, nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatalf("connect to NATS at %s: %v", natsAddr, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return &shipStranger{js: js, stream: walStream(clusterID), subject: walSubject(clusterID)}
}

func shipCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// lastSeq is the WAL stream's last sequence (0 when it is missing).
func (s *shipStranger) lastSeq(t *testing.T) (uint64, error) {
	st, err := s.js.Stream(shipCtx(t), s.stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, err
	}
	if err != nil {
		t.Fatalf("stream %s: %v", s.stream, err)
	}
	return st.CachedInfo().State.LastSeq, nil
}
