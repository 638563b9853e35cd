package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"
)

// op is one client operation on the kv-v2 mount chaos/: a put of a value
// no other op writes, or a delete (of the latest version). Ack is true when
// the server answered success; an op that failed or timed out is
// indeterminate (it may or may not have been applied). Version is the
// version an acknowledged put created.
type op struct {
	seq     int // order in the history
	worker  int
	via     string // the cluster it was sent to
	key     string
	del     bool
	value   string
	start   time.Time
	end     time.Time
	ack     bool
	version int
	err     string
	// refused: the connection was refused, so the server never saw the op
	// (definitely not applied, unlike an indeterminate one).
	refused bool
}

func (o *op) String() string {
	kind := "put " + o.value
	if o.del {
		kind = "delete"
	}
	res := fmt.Sprintf("ack v%d", o.version)
	switch {
	case o.refused:
		res = "refused (not applied)"
	case !o.ack:
		res = "indeterminate: " + o.err
	}
	return fmt.Sprintf("#%d %s %s via %s [%s..%s] %s", o.seq, o.key, kind, o.via,
		o.start.Format("15:04:05.000"), o.end.Format("15:04:05.000"), res)
}

// sample is a read on a secondary during the run: the version and value
// it served (found false: none).
type sample struct {
	key     string
	found   bool
	deleted bool // the version served is deleted (value "")
	version int
	value   string
	at      time.Time
}

// history is every op and sample of a run.
type history struct {
	mu      sync.Mutex
	ops     []*op
	samples []sample
}

func (h *history) add(o *op) {
	h.mu.Lock()
	defer h.mu.Unlock()
	o.seq = len(h.ops)
	h.ops = append(h.ops, o)
}

func (h *history) addSample(s sample) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.samples = append(h.samples, s)
}

// recentKey is the key of one of the last 200 ops ("" before any).
func (h *history) recentKey(r *rand.Rand) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.ops) == 0 {
		return ""
	}
	return h.ops[len(h.ops)-1-r.IntN(min(len(h.ops), 200))].key
}

// byKey returns the ops of each key, in order (one worker owns a key, so
// its ops never overlap).
func (h *history) byKey() map[string][]*op {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string][]*op{}
	for _, o := range h.ops {
		out[o.key] = append(out[o.key], o)
	}
	return out
}

// stored is what the primary holds for a key at the end: its versions
// (value "" when deleted or destroyed, with deleted set) and the current one.
type stored struct {
	current  int
	versions map[int]storedVersion
}

type storedVersion struct {
	value   string
	deleted bool
}

// readStored reads every version of key on the primary.
func readStored(ctx context.Context, c *api.Client, key string) (*stored, error) {
	kv := c.KVv2("chaos")
	md, err := kv.GetMetadata(ctx, key)
	if errors.Is(err, api.ErrSecretNotFound) {
		return &stored{versions: map[int]storedVersion{}}, nil
	}
	if err != nil {
		return nil, err
	}
	st := &stored{current: md.CurrentVersion, versions: map[int]storedVersion{}}
	for _, v := range md.Versions {
		sv := storedVersion{deleted: !v.DeletionTime.IsZero() || v.Destroyed}
		if !sv.deleted {
			s, err := kv.GetVersion(ctx, key, v.Version)
			if err != nil {
				return nil, fmt.Errorf("read %s version %d: %w", key, v.Version, err)
			}
			sv.value, _ = s.Data["v"].(string)
		}
		st.versions[v.Version] = sv
	}
	return st, nil
}

// violation is one broken property, with the ops of its key.
type violation struct {
	key  string
	what string
}

// check holds the history against what the primary stores at the end:
//   - every acknowledged put is there as the version it was given, with its
//     value unless a later delete of the key (acknowledged or not) removed it;
//   - the current version is the last acknowledged op's result, or the
//     result of an indeterminate op after it;
//   - every value stored is one a client wrote for that key, and no value
//     is stored twice (a forwarded write applied twice would be);
//   - every read sampled on the secondary served a version the primary has
//     with the same value.
func check(ctx context.Context, c *api.Client, h *history) ([]violation, error) {
	var out []violation
	bad := func(key, format string, args ...any) {
		out = append(out, violation{key: key, what: fmt.Sprintf(format, args...)})
	}
	ops := h.byKey()
	keys := make([]string, 0, len(ops))
	for k := range ops {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	final := map[string]*stored{}
	for _, key := range keys {
		st, err := readStored(ctx, c, key)
		if err != nil {
			return nil, err
		}
		final[key] = st
		checkKey(key, ops[key], st, bad)
	}
	h.mu.Lock()
	samples := slices.Clone(h.samples)
	h.mu.Unlock()
	for _, s := range samples {
		if !s.found {
			continue
		}
		st := final[s.key]
		if st == nil {
			bad(s.key, "the secondary served %s v%d = %q of a key no client wrote", s.key, s.version, s.value)
			continue
		}
		sv, ok := st.versions[s.version]
		switch {
		case !ok:
			bad(s.key, "the secondary served version %d (%q) at %s, which the primary never had", s.version, s.value, s.at.Format("15:04:05.000"))
		case s.deleted && !sv.deleted:
			bad(s.key, "the secondary served version %d as deleted at %s; it is not deleted on the primary", s.version, s.at.Format("15:04:05.000"))
		case s.deleted:
		case !sv.deleted && sv.value != s.value:
			bad(s.key, "the secondary served version %d = %q at %s, the primary has %q", s.version, s.value, s.at.Format("15:04:05.000"), sv.value)
		case !written(ops[s.key], s.value):
			bad(s.key, "the secondary served %q, which no client wrote", s.value)
		}
	}
	return out, nil
}

// written reports whether a put of value may have been applied (a refused
// one was not).
func written(ops []*op, value string) bool {
	return slices.ContainsFunc(ops, func(o *op) bool { return !o.del && !o.refused && o.value == value })
}

// checkKey checks one key. An indeterminate op may take effect at any time
// after it started, also after later ops (a forwarded write whose client
// gave up may still be applied), so every allowance below counts every
// indeterminate op, not only later ones.
func checkKey(key string, ops []*op, st *stored, bad func(key, format string, args ...any)) {
	seen := map[string]int{}
	for v, sv := range st.versions {
		if sv.deleted {
			continue
		}
		if !written(ops, sv.value) {
			bad(key, "version %d holds %q, which no client wrote", v, sv.value)
		}
		if w, dup := seen[sv.value]; dup {
			bad(key, "versions %d and %d hold the same value %q: a write applied twice", w, v, sv.value)
		}
		seen[sv.value] = v
	}
	maybePut := func(value string) bool {
		return slices.ContainsFunc(ops, func(o *op) bool { return !o.ack && !o.refused && !o.del && (value == "" || o.value == value) })
	}
	deleteAfter := func(i int) bool {
		return slices.ContainsFunc(ops, func(o *op) bool { return o.del && !o.refused && (o.seq > ops[i].seq || !o.ack) })
	}
	last := -1
	for i, o := range ops {
		if !o.ack {
			continue
		}
		last = i
		if o.del {
			continue
		}
		sv, ok := st.versions[o.version]
		switch {
		case !ok || o.version > st.current:
			bad(key, "acknowledged put %q (version %d) is lost: the primary's versions end at %d", o.value, o.version, st.current)
		case sv.deleted && !deleteAfter(i):
			bad(key, "acknowledged put %q (version %d) is deleted, and no delete was sent after it", o.value, o.version)
		case !sv.deleted && sv.value != o.value:
			bad(key, "acknowledged put %q holds %q as version %d", o.value, sv.value, o.version)
		}
	}
	if last < 0 || st.current == 0 {
		return
	}
	l := ops[last]
	cur := st.versions[st.current]
	if !l.del {
		if st.current < l.version {
			return // reported above
		}
		if st.current > l.version && !maybePut("") {
			bad(key, "the current version %d is past the last acknowledged put's %d, and no other put may have been applied", st.current, l.version)
		}
		if cur.deleted && !deleteAfter(last) {
			bad(key, "the current version %d is deleted after the acknowledged put %q", st.current, l.value)
		}
		return
	}
	// The last acknowledged op is a delete: the current version is deleted,
	// unless an indeterminate put made a newer one.
	if !cur.deleted && !maybePut(cur.value) {
		bad(key, "after the acknowledged delete #%d, the current version %d holds %q", l.seq, st.current, cur.value)
	}
}

// around prints the ops of key, for a violation's report.
func around(h *history, key string) string {
	var b strings.Builder
	for _, o := range h.byKey()[key] {
		fmt.Fprintf(&b, "  %s\n", o)
	}
	return b.String()
}
