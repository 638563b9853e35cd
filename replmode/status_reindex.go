package replmode

import (
	"github.com/cofferhq/coffer/secondary"
)

// followerExtras adds to a running secondary's status the merkle-sync loop
// detector's view (merkle_sync_loop, from the second resync in a row on).
// Status adds the reindex fields (reindex.go) for every mode.
func (m *Manager) followerExtras(st map[string]any, s *secondary.Secondary) {
	l := s.SyncLoop()
	if l.Consecutive < 2 {
		return
	}
	// The status is served without a token: it counts the keys; their
	// names (storage keys hold kv paths, user and key names) go to the
	// server's log only (docs/security.md).
	st["merkle_sync_loop"] = map[string]any{
		"consecutive":                    l.Consecutive,
		"threshold":                      l.Threshold,
		"looping":                        l.Looping,
		"keys_that_kept_differing_count": len(l.KeysThatKeptDiffering),
		"since":                          fmtTime(l.Since),
		"backoff_until":                  fmtTime(l.BackoffUntil),
	}
}
