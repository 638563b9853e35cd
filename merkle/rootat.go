package merkle

// maxRootWaits bounds RootAt's pending requests: past it the oldest is
// dropped (its channel closed), so an index that stopped advancing cannot
// pile them up.
const maxRootWaits = 1024

// rootWait is a pending RootAt: the root once the index stands at lsn.
type rootWait struct {
	lsn uint64
	ch  chan []byte
}

// RootAt returns a channel that receives the root (32 bytes) of the index as
// it stands at exactly lsn: when Apply has applied the entry of lsn, before
// it applies a later one that changes the tree (entries of keys the index
// does not follow, local ones, leave the root as it was at lsn). A caller
// may so apply more entries meanwhile and still compare the root at a point
// it chose (a secondary's guard, checked while it applies the next
// batches). The channel is closed without a value when the tree changed
// after lsn already, moves past lsn without stopping there (Put and Delete,
// a rebuild), or holds too many requests (maxRootWaits).
func (x *Index) RootAt(lsn uint64) <-chan []byte {
	ch := make(chan []byte, 1)
	x.mu.Lock()
	defer x.mu.Unlock()
	switch {
	case x.applied == lsn, x.applied > lsn && x.changed <= lsn:
		ch <- x.rootLocked()
		close(ch)
	case x.applied > lsn:
		close(ch)
	default:
		if len(x.rootWaits) >= maxRootWaits {
			close(x.rootWaits[0].ch)
			x.rootWaits = x.rootWaits[1:]
		}
		x.rootWaits = append(x.rootWaits, rootWait{lsn: lsn, ch: ch})
	}
	return ch
}

// rootLocked is a copy of the root, refreshed. Caller holds mu.
func (x *Index) rootLocked() []byte {
	x.refresh()
	r := x.nodes[0][0]
	return append([]byte(nil), r[:]...)
}

// serveRootWaits answers the RootAt requests the index reached: at applied
// with the root when at is true (a whole entry was applied), and closes
// those it passed. Caller holds mu.
func (x *Index) serveRootWaits(at bool) {
	n := 0
	for _, w := range x.rootWaits {
		switch {
		case w.lsn == x.applied && at, w.lsn < x.applied && x.changed <= w.lsn:
			w.ch <- x.rootLocked()
			close(w.ch)
		case w.lsn <= x.applied:
			close(w.ch)
		default:
			x.rootWaits[n] = w
			n++
		}
	}
	clear(x.rootWaits[n:])
	x.rootWaits = x.rootWaits[:n]
}
