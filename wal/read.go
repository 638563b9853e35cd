package wal

import (
	"context"
	"fmt"

	"github.com/cofferhq/coffer/storage"
)

// Reading the log: waiting for an index, reading entries, truncating.

// Notify returns a channel closed when LastIndex next advances, or when the Log
// is closed. Take the channel before reading LastIndex to miss no advance:
//
//	for {
//		ch := log.Notify()
//		if log.LastIndex() > shipped { ship(); continue }
//		<-ch
//	}
func (l *Log) Notify() <-chan struct{} {
	l.nmu.Lock()
	defer l.nmu.Unlock()
	return l.notifyCh
}

// WaitIndex returns nil once LastIndex() >= index, ctx.Err() if ctx ends first,
// and ErrClosed if the Log is closed first.
func (l *Log) WaitIndex(ctx context.Context, index uint64) error {
	for {
		ch := l.Notify()
		if l.LastIndex() >= index {
			return nil
		}
		if l.isClosed.Load() {
			return ErrClosed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Read returns up to max entries after index after, in index order. It returns
// fewer (possibly none) when it reaches LastIndex or a missing entry, and
// ErrTruncated when entry after+1 was removed by Truncate. Entries this
// process committed lately come from memory and are shared with every other
// reader of them: a caller never modifies a returned entry.
func (l *Log) Read(ctx context.Context, after uint64, max int) ([]*Entry, error) {
	return l.ReadLimit(ctx, after, max, 0)
}

// ReadLimit is Read that also stops once the entries it returns hold
// maxBytes of keys and values (0: no bound; at least one entry): a reader of
// large entries (a secondary's runs, about a MiB each) behind by many does
// not hold them all at once.
func (l *Log) ReadLimit(ctx context.Context, after uint64, max, maxBytes int) ([]*Entry, error) {
	if max <= 0 {
		return nil, fmt.Errorf("wal: read after %d: max must be positive, got %d", after, max)
	}
	last := l.LastIndex()
	if after >= last {
		return nil, nil
	}
	if after+1 < l.FirstIndex() {
		return nil, fmt.Errorf("read after %d: %w (first stored index is %d)", after, ErrTruncated, l.FirstIndex())
	}
	n := min(last-after, uint64(max))
	out := make([]*Entry, 0, min(n, 1024))
	size := 0
	for i := after + 1; i <= after+n; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if maxBytes > 0 && size >= maxBytes {
			break
		}
		if e := l.recent.get(i); e != nil {
			out, size = append(out, e), size+entryBytes(e)
			continue
		}
		raw, err := l.b.Get(ctx, logKey(i))
		if err != nil {
			return nil, fmt.Errorf("wal: read entry %d: %w", i, err)
		}
		if raw == nil {
			if len(out) == 0 && i < l.FirstIndex() {
				return nil, fmt.Errorf("read after %d: %w (first stored index is %d)", after, ErrTruncated, l.FirstIndex())
			}
			break
		}
		e, err := DecodeEntry(raw.Value)
		if err != nil {
			return nil, fmt.Errorf("wal: read entry %d: %w", i, err)
		}
		if e.Index != i {
			return nil, fmt.Errorf("wal: read entry %d: %w: it holds index %d", i, ErrCorrupt, e.Index)
		}
		out, size = append(out, e), size+entryBytes(e)
	}
	return out, nil
}

// Truncate deletes the entries with index <= upTo, in chunks of at most 1024
// per storage transaction so that writers do not wait long. Entries already
// truncated are skipped; upTo past LastIndex returns ErrTruncateAhead and
// deletes nothing. The last index survives in wal/meta even when every entry is
// deleted.
func (l *Log) Truncate(ctx context.Context, upTo uint64) error {
	if l.isClosed.Load() {
		return ErrClosed
	}
	if last := l.LastIndex(); upTo > last {
		return fmt.Errorf("truncate up to %d: %w %d", upTo, ErrTruncateAhead, last)
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		done, err := l.truncateChunk(ctx, upTo)
		if err != nil || done {
			return err
		}
	}
}

func (l *Log) truncateChunk(ctx context.Context, upTo uint64) (bool, error) {
	l.commitMu.Lock()
	defer l.commitMu.Unlock()
	if l.readOnly.Load() {
		return false, errReadOnly()
	}
	if err := l.resyncLocked(ctx); err != nil {
		return false, err
	}
	if upTo <= l.truncated {
		return true, nil
	}
	to := min(upTo, l.truncated+truncateChunk)
	txn := make([]*storage.TxnOp, 0, to-l.truncated+1)
	for i := l.truncated + 1; i <= to; i++ {
		txn = append(txn, &storage.TxnOp{Operation: storage.DeleteOperation, Entry: &storage.Entry{Key: logKey(i)}})
	}
	txn = append(txn, &storage.TxnOp{Operation: storage.PutOperation,
		Entry: &storage.Entry{Key: metaKey, Value: encodeMeta(meta{last: l.last, truncated: to})}})
	if err := l.b.Transaction(ctx, txn); err != nil {
		l.resync = true
		return false, fmt.Errorf("wal: truncate entries %d-%d: %w", l.truncated+1, to, err)
	}
	l.truncated = to
	l.truncatedPub.Store(to)
	return to == upTo, nil
}
