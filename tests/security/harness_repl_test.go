package security

// Performance replication as the tests drive it: the public status, a
// recorder that keeps every read of it, enabling a primary, issuing an
// activation token and activating a secondary.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	pathStatus         = "sys/replication/performance/status"
	pathPrimaryEnable  = "sys/replication/performance/primary/enable"
	pathSecondaryToken = "sys/replication/performance/primary/secondary-token"
	pathActivate       = "sys/replication/performance/secondary/enable"
)

// walStream is the WAL stream of cluster (docs/replication.md).
func walStream(cluster string) string {
	return "COFFER_WAL_" + strings.ReplaceAll(cluster, "-", "_")
}

// walSubject is the subject the primary cluster publishes its WAL on.
func walSubject(cluster string) string { return "coffer." + cluster + ".wal" }

// readReplStatus reads sys/replication/performance/status without a token,
// as anyone can: it is public, and so are the WAL indexes in it. Numbers
// come as json.Number.
func readReplStatus(addr string) (map[string]any, error) {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + addr + "/v1/" + pathStatus)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var env struct {
		Data map[string]any `json:"data"`
	}
	d := json.NewDecoder(resp.Body)
	d.UseNumber()
	if err := d.Decode(&env); err != nil {
		return nil, fmt.Errorf("status %d: %v", resp.StatusCode, err)
	}
	if env.Data == nil {
		return nil, fmt.Errorf("status %d without data", resp.StatusCode)
	}
	return env.Data, nil
}

// replStatus is readReplStatus of s, failing the test when it fails.
func (s *server) replStatus() map[string]any {
	s.t.Helper()
	st, err := readReplStatus(s.addr)
	if err != nil {
		s.t.Fatalf("%s on %s: %v", pathStatus, s.name, err)
	}
	return st
}

// stateIs reports nil when the replication state of the server at addr is
// want.
func stateIs(addr, want string) error {
	st, err := readReplStatus(addr)
	if err != nil {
		return err
	}
	if got := jsonString(st["state"]); got != want {
		return fmt.Errorf("replication state %q, want %q", got, want)
	}
	return nil
}

// enablePrimary enables performance replication on s and returns the
// primary cluster id.
func enablePrimary(t testing.TB, s *server) string {
	t.Helper()
	if _, err := s.rootClient().Logical().Write(pathPrimaryEnable, nil); err != nil {
		t.Fatalf("primary/enable on %s: %v", s.name, err)
	}
	id := jsonString(s.replStatus()["cluster_id"])
	if id == "" {
		t.Fatalf("no cluster_id in the status of the primary %s", s.name)
	}
	return id
}

// secondaryToken asks the primary for an activation token of id.
func secondaryToken(t testing.TB, pri *server, id string) string {
	t.Helper()
	s, err := pri.rootClient().Logical().Write(pathSecondaryToken, map[string]any{"id": id})
	if err != nil {
		t.Fatalf("secondary-token id=%s: %v", id, err)
	}
	if s == nil || s.WrapInfo == nil || s.WrapInfo.Token == "" {
		t.Fatalf("secondary-token id=%s: no wrap_info.token in %+v", id, s)
	}
	return s.WrapInfo.Token
}

// activate runs secondary/enable token=... on sec with its root token.
func activate(sec *server, token string) error {
	c := sec.rootClient()
	c.SetClientTimeout(activateTimeout)
	_, err := c.Logical().Write(pathActivate, map[string]any{"token": token})
	return err
}

// statusPoll is one read of a cluster's replication status.
type statusPoll struct {
	At                      time.Time
	Mode, State, Connection string
	PrimaryConnection       string
	Err                     string // the read failed (a restart)
}

// statusRecorder reads a cluster's replication status every 50 ms from
// start to stop and keeps every read: a state that lasted only between two
// test steps is still seen.
type statusRecorder struct {
	addr   string
	cancel context.CancelFunc
	done   chan struct{}

	mu    sync.Mutex
	polls []statusPoll
}

// recordStatus starts recording the status of addr; the recorder stops at
// cleanup at the latest.
func recordStatus(t testing.TB, addr string) *statusRecorder {
	ctx, cancel := context.WithCancel(context.Background())
	r := &statusRecorder{addr: addr, cancel: cancel, done: make(chan struct{})}
	go r.run(ctx)
	t.Cleanup(r.stop)
	return r
}

func (r *statusRecorder) run(ctx context.Context) {
	defer close(r.done)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		p := statusPoll{At: time.Now()}
		st, err := readReplStatus(r.addr)
		if err != nil {
			p.Err = err.Error()
		} else {
			p.Mode, p.State = jsonString(st["mode"]), jsonString(st["state"])
			p.Connection = jsonString(st["connection_state"])
			if ps, ok := st["primaries"].([]any); ok && len(ps) > 0 {
				if m, ok := ps[0].(map[string]any); ok {
					p.PrimaryConnection = jsonString(m["connection_status"])
				}
			}
		}
		r.mu.Lock()
		r.polls = append(r.polls, p)
		r.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// stop ends the recording; it may be called more than once.
func (r *statusRecorder) stop() {
	r.cancel()
	<-r.done
}

// Polls returns a copy of every read so far.
func (r *statusRecorder) Polls() []statusPoll {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.polls)
}

// States returns the states the successful reads showed, in order, without
// repeats.
func (r *statusRecorder) States() []string {
	var seen []string
	for _, p := range r.Polls() {
		if p.Err == "" && (len(seen) == 0 || seen[len(seen)-1] != p.State) {
			seen = append(seen, p.State)
		}
	}
	return seen
}

// neverRevoked fails t when any read showed the secondary revoked.
func (r *statusRecorder) neverRevoked(t testing.TB, what string) {
	t.Helper()
	polls := r.Polls()
	var bad []string
	for _, p := range polls {
		if p.State == "revoked" || p.Connection == "revoked" || p.Mode == "revoked" || p.PrimaryConnection == "revoked" {
			bad = append(bad, fmt.Sprintf("%s mode=%s state=%s connection_state=%s",
				p.At.Format("15:04:05.000"), p.Mode, p.State, p.Connection))
		}
	}
	if len(bad) > 0 {
		t.Errorf("%s: the secondary's status showed revoked in %d of %d reads, first: %s (nothing but the attacker revoked it: an unauthenticated error changed its state)",
			what, len(bad), len(polls), bad[0])
	}
}
