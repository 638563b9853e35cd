package compose

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cofferhq/coffer/forwarder"
)

// The failover drill's client: one writer that puts a new key per write,
// secret/drill/<seq>, through a performance secondary (forwarded to the
// primary), one write at a time, and keeps what happened to each. The
// "active node down" fault (ha_test.go) uses it too, with keys secret/ha/<seq>
// written through a node of dc1.

const (
	drillPrefix     = "drill/"
	writePace       = 20 * time.Millisecond // at most 50 writes a second: a load, not a benchmark
	writeTimeout    = 15 * time.Second      // above the 10 s a forwarded write waits for an absent primary
	maxWriteErrText = 200
)

// drillWrite is one write and its outcome.
type drillWrite struct {
	seq      int
	sent     time.Time
	done     time.Time
	acked    bool   // 200/204: the client was told it is stored
	status   int    // HTTP status; 0 when no answer came
	err      string // why it was not acknowledged
	index    uint64 // the replicated (primary's) WAL index of X-Vault-Index; 0: none
	gen      uint64 // the set's generation the header names (1: dc1's, 2: dr1's after the promotion); 0: none
	indexErr string
	warnings []string
}

func drillKey(seq int) string { return seqKey(drillPrefix, seq) }

func seqKey(prefix string, seq int) string { return fmt.Sprintf("%s%06d", prefix, seq) }

// writer writes until stopped.
type writer struct {
	base   string // http://host:port of the performance secondary (or of a node of dc1)
	token  string
	prefix string // of the keys under secret/: drillPrefix for the drill
	hc     *http.Client

	stop chan struct{}
	done chan struct{}

	mu     sync.Mutex
	writes []drillWrite
}

func newWriter(base, token, prefix string) *writer {
	return &writer{
		base: base, token: token, prefix: prefix,
		hc:   &http.Client{Timeout: writeTimeout},
		stop: make(chan struct{}), done: make(chan struct{}),
	}
}

// start runs the writer in its own goroutine; halt stops it after the write
// in flight (never cancelled: its outcome is recorded).
func (w *writer) start() { go w.run() }

func (w *writer) halt() {
	close(w.stop)
	<-w.done
}

func (w *writer) run() {
	defer close(w.done)
	tick := time.NewTicker(writePace)
	defer tick.Stop()
	for seq := 0; ; seq++ {
		select {
		case <-w.stop:
			return
		default:
		}
		rec := w.put(seq)
		w.mu.Lock()
		w.writes = append(w.writes, rec)
		w.mu.Unlock()
		select {
		case <-w.stop:
			return
		case <-tick.C:
		}
	}
}

// snapshot copies the writes so far.
func (w *writer) snapshot() []drillWrite {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]drillWrite(nil), w.writes...)
}

// ackedSentAfter counts the acknowledged writes sent after t.
func (w *writer) ackedSentAfter(t time.Time) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, r := range w.writes {
		if r.acked && r.sent.After(t) {
			n++
		}
	}
	return n
}

// firstAckSentAfter returns the first acknowledged write sent after t.
func (w *writer) firstAckSentAfter(t time.Time) (drillWrite, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range w.writes {
		if r.acked && r.sent.After(t) {
			return r, true
		}
	}
	return drillWrite{}, false
}

func (w *writer) ackedCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, r := range w.writes {
		if r.acked {
			n++
		}
	}
	return n
}

// put writes secret/<prefix><seq> = {"v": "<seq>"} (kv-v2).
func (w *writer) put(seq int) drillWrite {
	rec := drillWrite{seq: seq, sent: time.Now()}
	body := fmt.Sprintf(`{"data":{"v":"%d"}}`, seq)
	req, err := http.NewRequest(http.MethodPut, w.base+"/v1/secret/data/"+seqKey(w.prefix, seq), strings.NewReader(body))
	if err != nil {
		rec.err, rec.done = err.Error(), time.Now()
		return rec
	}
	req.Header.Set("X-Vault-Token", w.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.hc.Do(req)
	rec.done = time.Now()
	if err != nil {
		rec.err = err.Error()
		return rec
	}
	defer resp.Body.Close()
	rec.status = resp.StatusCode
	var out struct {
		Errors   []string `json:"errors"`
		Warnings []string `json:"warnings"`
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	_ = json.Unmarshal(raw, &out)
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
		rec.err = strings.Join(out.Errors, "; ")
		if rec.err == "" {
			rec.err = strings.TrimSpace(string(raw))
		}
		if len(rec.err) > maxWriteErrText {
			rec.err = rec.err[:maxWriteErrText] + "..."
		}
		return rec
	}
	rec.acked, rec.warnings = true, out.Warnings
	h := resp.Header.Get("X-Vault-Index")
	idx, err := replicatedIndex(h)
	if err != nil {
		rec.indexErr = err.Error()
	}
	rec.index, rec.gen = idx, indexGeneration(h)
	return rec
}

// indexGeneration reads the generation an X-Vault-Index header's set id
// names ("<set>@g<n>"); 0 when it names none.
func indexGeneration(h string) uint64 {
	raw, err := base64.StdEncoding.DecodeString(h)
	if err != nil {
		return 0
	}
	f := strings.Split(string(raw), ":")
	if len(f) < 5 {
		return 0
	}
	_, g, ok := strings.Cut(f[1], "@g")
	if !ok {
		return 0
	}
	n, _ := strconv.ParseUint(g, 10, 64)
	return n
}

// replicatedIndex reads the replicated index of an X-Vault-Index header
// without checking its HMAC (the drill has no root key): base64 of
// "v1:<set id>:<local index>:<replicated index>:<hmac>" (forwarder/index.go).
func replicatedIndex(h string) (uint64, error) {
	if h == "" {
		return 0, errors.New("no X-Vault-Index header")
	}
	raw, err := base64.StdEncoding.DecodeString(h)
	if err != nil {
		return 0, fmt.Errorf("X-Vault-Index %q: %v", h, err)
	}
	f := strings.Split(string(raw), ":")
	if len(f) < 5 || f[0] != "v1" {
		return 0, fmt.Errorf("X-Vault-Index %q: not the v1 layout", raw)
	}
	n, err := strconv.ParseUint(f[len(f)-2], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("X-Vault-Index %q: replicated index: %v", raw, err)
	}
	return n, nil
}

// TestReplicatedIndex: the drill reads the index forwarder writes (no
// Docker needed).
func TestReplicatedIndex(t *testing.T) {
	key, err := forwarder.IndexKey(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	h := forwarder.EncodeIndex(key, forwarder.IndexState{SetID: "0f6c2a4e-5b1d-4c8e-9a7f-3d2b1c0e9f8a", Local: 7, Replicated: 1234})
	if got, err := replicatedIndex(h); err != nil || got != 1234 {
		t.Fatalf("replicatedIndex(%q) = %d, %v; want 1234", h, got, err)
	}
	g := forwarder.EncodeIndex(key, forwarder.IndexState{SetID: "0f6c2a4e@g2", Local: 7, Replicated: 12})
	if n := indexGeneration(g); n != 2 {
		t.Fatalf("indexGeneration = %d, want 2", n)
	}
	for _, bad := range []string{"", "not base64!", "djE6eA=="} {
		if _, err := replicatedIndex(bad); err == nil {
			t.Errorf("replicatedIndex(%q): no error", bad)
		}
	}
}
