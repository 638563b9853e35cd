package tokens

import (
	"container/heap"
	"context"
	"strings"
	"sync"
	"time"
)

// scheduler is the expiration manager's index: a min-heap of (time, token
// key) telling when to look at a token again. Entries go stale when a token
// is renewed or revoked; the manager reloads the token before acting, so a
// stale entry costs one read and nothing else.
type scheduler struct {
	mu   sync.Mutex
	h    dueHeap
	wake chan struct{} // buffered 1: an earlier deadline was added
}

type dueItem struct {
	at  time.Time
	key string
}

type dueHeap []dueItem

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(dueItem)) }
func (h *dueHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

func newScheduler() *scheduler { return &scheduler{wake: make(chan struct{}, 1)} }

// add schedules a look at key at time at.
func (sc *scheduler) add(at time.Time, key string) {
	sc.mu.Lock()
	earliest := len(sc.h) == 0 || at.Before(sc.h[0].at)
	heap.Push(&sc.h, dueItem{at: at, key: key})
	sc.mu.Unlock()
	if earliest {
		select {
		case sc.wake <- struct{}{}:
		default:
		}
	}
}

// next returns the earliest scheduled time.
func (sc *scheduler) next() (time.Time, bool) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if len(sc.h) == 0 {
		return time.Time{}, false
	}
	return sc.h[0].at, true
}

// popDue removes and returns the keys scheduled at or before now.
func (sc *scheduler) popDue(now time.Time) []string {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	var keys []string
	for len(sc.h) > 0 && !sc.h[0].at.After(now) {
		keys = append(keys, heap.Pop(&sc.h).(dueItem).key)
	}
	return keys
}

// Start starts the expiration manager: a goroutine owned by the store that
// revokes expired tokens, with their children, without waiting for a
// lookup. It first scans every stored token (tokens created before a
// restart), then sleeps until the next expiry. Calling Start again while it
// runs does nothing.
func (s *Store) Start() {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	if s.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.done = make(chan struct{})
	go s.run(ctx, s.done)
}

// Stop stops the expiration manager and waits for its goroutine to return.
// It is safe to call without Start and more than once; Start may follow.
func (s *Store) Stop() {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	if s.cancel == nil {
		return
	}
	s.cancel()
	<-s.done
	s.cancel, s.done = nil, nil
}

func (s *Store) run(ctx context.Context, done chan struct{}) {
	defer close(done)
	s.log.Debug().Msg("expiration manager started")
	defer s.log.Debug().Msg("expiration manager stopped")

	// Since Go 1.23 Reset discards a pending fire, so the timer is simply
	// reset each round, never drained.
	timer := time.NewTimer(s.opts.ExpirationInterval)
	defer timer.Stop()
	loaded := false
	for {
		if !loaded {
			if err := s.loadSchedule(ctx); err != nil {
				if ctx.Err() != nil {
					return
				}
				s.log.Error().Err(err).Msg("expiration manager: scan tokens; retrying")
			} else {
				loaded = true
			}
		}
		if loaded {
			s.revokeDue(ctx)
		}
		wait := s.opts.ExpirationInterval
		if at, ok := s.sched.next(); ok {
			if d := at.Sub(s.now()); d < wait {
				wait = max(d, 0)
			}
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-s.sched.wake:
		case <-timer.C:
		}
	}
}

// loadSchedule schedules every stored token that expires or awaits
// revocation.
func (s *Store) loadSchedule(ctx context.Context) error {
	keys, err := s.storage.List(ctx, idPrefix)
	if err != nil {
		return err
	}
	now := s.now()
	for _, k := range keys {
		if strings.HasSuffix(k, "/") {
			continue
		}
		e, err := s.loadKey(ctx, k)
		if err != nil {
			s.log.Error().Err(err).Msg("expiration manager: unreadable token record skipped")
			continue
		}
		switch {
		case e == nil:
		case e.RevocationPending():
			s.sched.add(now, k)
		case !e.ExpireTime.IsZero():
			s.sched.add(e.ExpireTime, k)
		}
	}
	return nil
}

// revokeDue revokes the tokens whose scheduled time has come and which are
// still expired (or pending revocation) when reloaded. A failure is retried
// after ExpirationInterval.
func (s *Store) revokeDue(ctx context.Context) {
	now := s.now()
	for _, key := range s.sched.popDue(now) {
		if ctx.Err() != nil {
			return
		}
		if err := s.revokeDueKey(ctx, key, now); err != nil {
			if ctx.Err() != nil {
				return
			}
			s.log.Error().Err(err).Msg("expiration manager: revoke expired token; will retry")
			s.sched.add(now.Add(s.opts.ExpirationInterval), key)
		}
	}
}

func (s *Store) revokeDueKey(ctx context.Context, key string, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := s.loadKey(ctx, key)
	if err != nil || e == nil {
		return err
	}
	if !e.expired(now) && !e.RevocationPending() {
		return nil // renewed since; its new expiry is scheduled
	}
	n, err := s.revokeTreeLocked(ctx, key)
	if err != nil {
		return err
	}
	s.log.Info().Str("accessor", e.Accessor).Int("revoked", n).Msg("expired token revoked")
	return nil
}
