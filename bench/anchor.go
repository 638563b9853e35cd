package bench

import (
	"context"
	"os"
	"path/filepath"
)

// MirrorTarget is the NATS anchor as a Target: its one reader is the mirror.
type MirrorTarget struct{ M *Mirror }

// Put writes to the hub's bucket.
func (m MirrorTarget) Put(ctx context.Context, key string, v []byte) error {
	return m.M.Put(ctx, key, v)
}

// Readers is one: the leaf's mirror.
func (m MirrorTarget) Readers() int { return 1 }

// Has reads the mirror.
func (m MirrorTarget) Has(ctx context.Context, _ int, key string) (bool, error) {
	return m.M.Has(ctx, key)
}

// measureAnchor runs the lag measurements on a mirrored NATS KV bucket and
// the raw consume rate of a backlog, in this run.
func measureAnchor(ctx context.Context, o Options, dir string) (*anchor, error) {
	an := &anchor{lag: map[int]LagResult{}}
	if o.Only["lag"] {
		mdir := filepath.Join(dir, "nats-mirror")
		if err := os.MkdirAll(mdir, 0o700); err != nil {
			return nil, err
		}
		m, err := StartMirror(ctx, mdir)
		if err != nil {
			return nil, err
		}
		for _, rate := range o.Rates {
			an.lag[rate] = Lag(ctx, MirrorTarget{m}, rate, o.Duration, o.Size)
		}
		if err := m.Close(); err != nil {
			return nil, err
		}
	}
	if o.Only["catchup"] {
		cdir := filepath.Join(dir, "nats-consume")
		if err := os.MkdirAll(cdir, 0o700); err != nil {
			return nil, err
		}
		r, err := ConsumeRate(ctx, cdir, o.Backlog, o.Size)
		if err != nil {
			return nil, err
		}
		an.consume = r
	}
	return an, nil
}
