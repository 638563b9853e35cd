package primary

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/cofferhq/coffer/merkle"
	"github.com/cofferhq/coffer/replication"
	"github.com/cofferhq/coffer/wal"
)

// Paths filters (docs/replication.md, "Paths filter"). Every distinct filter
// in use is a lane: the primary ships a copy of every batch holding only
// what the filter allows, sealed with the filter's key (replication.FilterKey)
// on its own subject (replication.FilterSubject), and keeps a merkle index of
// the allowed keys in memory (rebuilt at start) for the copies' guards and
// the filtered secondaries' merkle sync. Secondaries with the same filter
// share a lane.

// ErrFilterDR: paths filters are for performance secondaries only.
var ErrFilterDR = errors.New("primary: a paths filter applies to performance secondaries only; a DR secondary holds everything")

// lane is one distinct filter in use.
type lane struct {
	id   string
	subj string
	keep *keeper
	live *merkle.Live
	// stalledAt is the index's Applied when it last missed guardWait
	// (shipper goroutine only): it is not waited for again until it moves.
	stalled   bool
	stalledAt uint64
}

// keeper decides which keys a filter allows. A mount's decision is taken
// once, when first asked about a key of it, and kept for the lane's life:
// the shipper and the lane's index decide alike whatever the mount table
// does meanwhile (a disabled mount's deletions go where its data went). The
// data of a mount not mounted (never seen) is allowed by a deny filter and
// not by an allow filter, and that is not remembered.
type keeper struct {
	f       *replication.Filter
	mountOf func(key string) (string, bool)
	mu      sync.Mutex
	memo    map[string]bool // mount data prefix ("logical/<uuid>/") -> allowed
}

func newKeeper(f *replication.Filter, mountOf func(string) (string, bool)) *keeper {
	return &keeper{f: f, mountOf: mountOf, memo: map[string]bool{}}
}

// dataPrefix is the mount data prefix of key ("logical/<uuid>/",
// "auth/<uuid>/"), false for a key outside mount data (configuration) or a
// folder above it.
func dataPrefix(key string) (string, bool) {
	var rest string
	switch {
	case strings.HasPrefix(key, "logical/"):
		rest = key[len("logical/"):]
	case strings.HasPrefix(key, "auth/"):
		rest = key[len("auth/"):]
	default:
		return "", false
	}
	i := strings.IndexByte(rest, '/')
	if i <= 0 {
		return "", false
	}
	return key[:len(key)-len(rest)+i+1], true
}

// allows reports whether the filter lets key go to its secondaries: every
// key outside mount data does.
func (k *keeper) allows(key string) bool {
	prefix, ok := dataPrefix(key)
	if !ok {
		return true
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if v, ok := k.memo[prefix]; ok {
		return v
	}
	mount, ok := k.mountOf(prefix)
	if !ok {
		return k.f.Mode == replication.FilterDeny
	}
	v := k.f.Allows(mount)
	k.memo[prefix] = v
	return v
}

// copyOf is b as the lane's secondaries receive it: the same range and
// generation, the ops its filter allows (an entry left without any is
// dropped; the range still counts it), no DR section.
func (l *lane) copyOf(b *replication.Batch) *replication.Batch {
	c := &replication.Batch{ClusterID: b.ClusterID, First: b.First, Last: b.Last, Generation: b.Generation}
	for _, e := range b.Entries {
		var ops []wal.Op
		for _, op := range e.Ops {
			if l.keep.allows(op.Key) {
				ops = append(ops, op)
			}
		}
		if len(ops) > 0 {
			c.Entries = append(c.Entries, &wal.Entry{Index: e.Index, Time: e.Time, Ops: ops})
		}
	}
	return c
}

// guard is the root of the lane's index once it applied last (waiting at
// most guardWait, and not again while it stays stalled), nil otherwise.
func (p *Primary) laneGuard(ctx context.Context, l *lane, last uint64) []byte {
	x := l.live.Index()
	if x == nil {
		return nil
	}
	if !l.stalled || x.Applied() != l.stalledAt {
		wctx, cancel := context.WithTimeout(ctx, guardWait)
		err := x.WaitApplied(wctx, last)
		cancel()
		if err != nil {
			l.stalled, l.stalledAt = true, x.Applied()
			return nil
		}
	}
	root, applied := x.State()
	if applied != last {
		return nil
	}
	l.stalled = false
	return root
}

// laneRoot is the root of the index of filter fid in hex, "" when it is not
// in service.
func (p *Primary) laneRoot(fid string) string {
	p.fmu.Lock()
	l := p.lanes[fid]
	p.fmu.Unlock()
	if l == nil {
		return ""
	}
	if x := l.live.Index(); x != nil {
		return x.RootHex()
	}
	return ""
}

// lanesNow returns the lanes in service.
func (p *Primary) lanesNow() []*lane {
	p.fmu.Lock()
	defer p.fmu.Unlock()
	out := make([]*lane, 0, len(p.lanes))
	for _, l := range p.lanes {
		out = append(out, l)
	}
	return out
}

// laneOf returns the lane of secondary id's filter, nil when it has none.
// A filtered secondary whose lane is not up (yet) gets errNoLane.
func (p *Primary) laneOf(id string) (*lane, error) {
	p.mu.Lock()
	r := p.st.Secondary[id]
	var fid string
	if r != nil && r.Filter != nil {
		fid = r.Filter.ID()
	}
	p.mu.Unlock()
	if fid == "" {
		return nil, nil
	}
	p.fmu.Lock()
	defer p.fmu.Unlock()
	if l := p.lanes[fid]; l != nil {
		return l, nil
	}
	return nil, errNoLane
}

var errNoLane = errors.New("the paths filter of this secondary is not in service yet on the primary: try again")

// filterIDOf is the ID of secondary id's filter, "" for none. Caller holds mu.
func (p *Primary) filterIDOf(id string) string {
	if r := p.st.Secondary[id]; r != nil && r.Filter != nil {
		return r.Filter.ID()
	}
	return ""
}

// syncLanes brings the lanes in line with the registry: a lane for every
// distinct filter of a secondary not revoked (its index built by a scan of
// storage), none for a filter nobody has any more.
func (p *Primary) syncLanes(ctx context.Context) error {
	p.laneSync.Lock()
	defer p.laneSync.Unlock()
	want := map[string]*replication.Filter{}
	p.mu.Lock()
	for _, r := range p.st.Secondary {
		if r.Filter != nil && r.State != SecondaryRevoked {
			want[r.Filter.ID()] = r.Filter
		}
	}
	p.mu.Unlock()
	p.fmu.Lock()
	var gone []*lane
	for id, l := range p.lanes {
		if want[id] == nil {
			gone = append(gone, l)
			delete(p.lanes, id)
		}
	}
	var missing []*replication.Filter
	for id, f := range want {
		if p.lanes[id] == nil {
			missing = append(missing, f)
		}
	}
	p.fmu.Unlock()
	for _, l := range gone {
		l.live.Stop()
		p.log.Info().Str("filter_id", l.id).Msg("paths filter no longer in use: its batch copies stop")
	}
	for _, f := range missing {
		l, err := p.newLane(ctx, f)
		if err != nil {
			return err
		}
		p.fmu.Lock()
		p.lanes[l.id] = l
		p.fmu.Unlock()
	}
	return nil
}

// newLane builds the lane of f: its keeper and its merkle index (a scan of
// the allowed keys, then the WAL written meanwhile), followed from then on.
func (p *Primary) newLane(ctx context.Context, f *replication.Filter) (*lane, error) {
	if p.cfg.MountOf == nil {
		return nil, errors.New("primary: paths filters need Config.MountOf")
	}
	id := f.ID()
	keep := newKeeper(f, p.cfg.MountOf)
	classify := func(key string) wal.Class {
		c := p.cfg.Classify(key)
		if c == wal.Replicated && !keep.allows(key) {
			return wal.Ignored
		}
		return c
	}
	start := time.Now()
	p.building.Store(p.cfg.WAL.LastIndex() + 1) // the build redoes the WAL from here: keep it
	defer p.building.Store(0)
	live := merkle.NewLive(merkle.MemoryPages(p.cfg.Raw), p.cfg.WAL, classify, merkle.Options{Keep: keep.allows},
		p.log.With().Str("filter_id", id).Logger())
	x, err := live.Reindex(ctx)
	if err != nil {
		return nil, fmt.Errorf("paths filter %s: build its merkle index: %w", id, err)
	}
	p.log.Info().Str("filter_id", id).Str("mode", f.Mode).Strs("paths", f.Paths).Dur("took", time.Since(start)).
		Uint64("applied", x.Applied()).Msg("paths filter in service: its secondaries get batch copies of what it allows")
	return &lane{id: id, subj: replication.FilterSubject(p.cfg.ClusterID, id), keep: keep, live: live}, nil
}

// WALFloor is the highest WAL index the primary no longer needs: the
// shipped index, or less while a paths filter's index has not applied the
// entries after it (or is being built): the WAL collector truncates at most
// to it.
func (p *Primary) WALFloor() uint64 {
	floor := p.shipped.Load()
	if b := p.building.Load(); b > 0 {
		floor = min(floor, b-1)
	}
	for _, l := range p.lanesNow() {
		if x := l.live.Index(); x != nil {
			floor = min(floor, x.Applied())
		}
	}
	return floor
}

// stopLanes stops every lane's index (Stop).
func (p *Primary) stopLanes() {
	p.fmu.Lock()
	defer p.fmu.Unlock()
	for id, l := range p.lanes {
		l.live.Stop()
		delete(p.lanes, id)
	}
}

// SetFilter sets the paths filter of performance secondary id (f nil clears
// it) and moves the set to a new replication key epoch, as a revocation
// does: batches shipped from now on are sealed with keys the secondary's
// old filter does not give. The secondary learns of the change at its next
// heartbeat, then restarts its consumer on its new subject and resyncs by
// merkle diff: data its filter now allows arrives, data it no longer allows
// is deleted there. A pending secondary (token issued, not yet activated)
// may be filtered: its bundle then never holds the unfiltered key.
func (p *Primary) SetFilter(ctx context.Context, id string, f *replication.Filter) error {
	if f != nil && p.cfg.MountOf == nil {
		return errors.New("primary: this primary cannot resolve mounts (Config.MountOf): paths filters are unavailable")
	}
	p.mu.Lock()
	r := p.st.Secondary[id]
	switch {
	case r == nil || r.State == SecondaryRevoked:
		p.mu.Unlock()
		return fmt.Errorf("paths filter of %q: %w (generate its secondary token first)", id, ErrUnknownSecondary)
	case r.Kind == KindDR:
		p.mu.Unlock()
		return ErrFilterDR
	}
	if (r.Filter == nil && f == nil) || (r.Filter != nil && f != nil && r.Filter.ID() == f.ID()) {
		p.mu.Unlock()
		return nil
	}
	old, oldEpoch := r.Filter, p.st.Epoch
	r.Filter = f
	p.st.Epoch++
	p.st.setKey(p.st.Epoch, randomKey())
	if p.st.DR {
		p.st.ensureDRKey()
	}
	if err := saveState(ctx, p.cfg.State, p.st); err != nil {
		r.Filter = old
		delete(p.st.Keys, fmt.Sprint(p.st.Epoch))
		p.st.Epoch = oldEpoch
		p.mu.Unlock()
		return fmt.Errorf("paths filter of %q: %w", id, err)
	}
	epoch := p.st.Epoch
	p.mu.Unlock()
	ev := p.log.Info().Str("secondary_id", id).Uint32("epoch", epoch)
	if f != nil {
		ev = ev.Str("mode", f.Mode).Strs("paths", f.Paths).Str("filter_id", f.ID())
	}
	ev.Msg("paths filter changed; the secondary resyncs at its next heartbeat")
	return p.syncLanes(ctx)
}

// Filter returns the paths filter of secondary id (nil: none).
func (p *Primary) Filter(id string) (*replication.Filter, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.st.Secondary[id]
	if r == nil || r.State == SecondaryRevoked {
		return nil, fmt.Errorf("paths filter of %q: %w", id, ErrUnknownSecondary)
	}
	return r.Filter, nil
}
