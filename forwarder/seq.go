package forwarder

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// Replay protection across restarts. Every forwarded request carries a
// sequence number of its secondary, strictly increasing and never reused,
// even after the secondary restarts (Sequencer persists a reservation ahead
// of what it hands out). The primary admits each number once (Window, one
// per secondary, persisted before the request is applied): a request
// captured on the bus and replayed later, after either side restarted and
// forgot its in-memory caches, is refused. The primary persists a number
// before applying the request, so a crash in between loses the write
// rather than applying it twice (at most once; the client was told its
// outcome is unknown).

// SeqStore persists one number.
type SeqStore interface {
	// Load returns the stored number, 0 when there is none.
	Load(ctx context.Context) (uint64, error)
	Save(ctx context.Context, n uint64) error
}

// seqBlock is how many numbers a Sequencer reserves per stored write.
const seqBlock = 1024

// Sequencer hands out a secondary's sequence numbers. It stores a
// reservation (the highest number it may hand out) before handing out any
// number below it, so a restart resumes above every number used before.
type Sequencer struct {
	store    SeqStore
	mu       sync.Mutex
	next     uint64
	reserved uint64
	loaded   bool
}

// NewSequencer returns a sequencer over store.
func NewSequencer(store SeqStore) *Sequencer { return &Sequencer{store: store} }

// Next returns the next number.
func (s *Sequencer) Next(ctx context.Context) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.loaded {
		r, err := s.store.Load(ctx)
		if err != nil {
			return 0, fmt.Errorf("load the forwarding sequence: %w", err)
		}
		s.next, s.reserved, s.loaded = r+1, r, true
	}
	if s.next > s.reserved {
		r := s.next + seqBlock - 1
		if err := s.store.Save(ctx, r); err != nil {
			return 0, fmt.Errorf("reserve forwarding sequence numbers: %w", err)
		}
		s.reserved = r
	}
	n := s.next
	s.next++
	return n, nil
}

// windowSpan bounds how far below the highest admitted number a number is
// still admitted when it arrives late (concurrent forwards arrive out of
// order); older ones are refused.
const windowSpan = 4096

// Window is the numbers a primary has admitted from one secondary: every
// number at or below Floor, and Seen above it. Its JSON form is stored:
//
//	{"v":1, "floor":N, "seen":[n, ...]}
//
// It is a pure type: Admit decides, the caller persists.
type Window struct {
	V     int      `json:"v"`
	Floor uint64   `json:"floor"`
	Seen  []uint64 `json:"seen,omitempty"`
}

// WindowVersion is the stored Window's "v".
const WindowVersion = 1

// ErrReplay: a forwarded request's sequence number was admitted before (or
// is too old to tell): it is refused, never applied twice.
var ErrReplay = errors.New("forwarder: this forwarded request was already received (a replay or a duplicate): it is not applied again")

// Admit records n, or returns ErrReplay when n was admitted before or is
// more than windowSpan below the highest admitted number.
func (w *Window) Admit(n uint64) error {
	if n == 0 || n <= w.Floor {
		return ErrReplay
	}
	if _, found := slices.BinarySearch(w.Seen, n); found {
		return ErrReplay
	}
	w.Seen = append(w.Seen, n)
	slices.Sort(w.Seen)
	// Advance the floor over contiguous numbers, and past what is too old.
	top := w.Seen[len(w.Seen)-1]
	if top > windowSpan && w.Floor < top-windowSpan {
		w.Floor = top - windowSpan
	}
	i := 0
	for ; i < len(w.Seen); i++ {
		switch s := w.Seen[i]; {
		case s <= w.Floor:
			continue
		case s == w.Floor+1:
			w.Floor = s
			continue
		}
		break
	}
	w.Seen = slices.Clone(w.Seen[i:])
	return nil
}

// WindowStore persists the windows of a primary, one per secondary.
type WindowStore interface {
	Load(ctx context.Context, secondaryID string) (*Window, error)
	Save(ctx context.Context, secondaryID string, w *Window) error
}

// guard admits sequence numbers through a WindowStore, one secondary at a time.
type guard struct {
	store WindowStore
	mu    sync.Mutex
}

func (g *guard) admit(ctx context.Context, secondaryID string, n uint64) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	w, err := g.store.Load(ctx, secondaryID)
	if err != nil {
		return fmt.Errorf("load the forwarding window of %s: %w", secondaryID, err)
	}
	if w == nil {
		w = &Window{V: WindowVersion}
	}
	if err := w.Admit(n); err != nil {
		return err
	}
	w.V = WindowVersion
	if err := g.store.Save(ctx, secondaryID, w); err != nil {
		return fmt.Errorf("store the forwarding window of %s: %w", secondaryID, err)
	}
	return nil
}
