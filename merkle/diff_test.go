package merkle

import (
	"bytes"
	"context"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cofferhq/coffer/storage/inmem"
)

// oracleDiff is the full-scan diff: compare every key.
func oracleDiff(local, remote map[string][]byte) (added, changed, deleted []string) {
	for k, v := range remote {
		lv, ok := local[k]
		switch {
		case !ok:
			added = append(added, k)
		case !bytes.Equal(lv, v):
			changed = append(changed, k)
		}
	}
	for k := range local {
		if _, ok := remote[k]; !ok {
			deleted = append(deleted, k)
		}
	}
	slices.Sort(added)
	slices.Sort(changed)
	slices.Sort(deleted)
	return
}

// fill builds an index holding m: keys are put (some twice, some deleted
// again) at increasing LSNs, with random flushes so that listings need both
// pending keys and stored pages.
func fill(t *testing.T, r *rand.Rand, m map[string][]byte) *Index {
	t.Helper()
	ctx := context.Background()
	x := newIndex(t, inmem.New())
	lsn := uint64(0)
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	r.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	for i, k := range keys {
		lsn++
		if r.IntN(4) == 0 { // an older value first
			if err := x.Put(k, randValue(r), lsn); err != nil {
				t.Fatal(err)
			}
			lsn++
		}
		if r.IntN(8) == 0 { // a key that comes and goes
			ghost := k + "/ghost"
			if err := x.Put(ghost, []byte("g"), lsn); err != nil {
				t.Fatal(err)
			}
			if err := x.Delete(ghost, lsn); err != nil {
				t.Fatal(err)
			}
		}
		if err := x.Put(k, m[k], lsn); err != nil {
			t.Fatal(err)
		}
		if r.IntN(200) == 0 || i == len(keys)/2 {
			if _, err := x.Flush(ctx, r.IntN(64)); err != nil {
				t.Fatal(err)
			}
		}
	}
	return x
}

func TestDiffMatchesFullScanOracle(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d (set diffSeed to replay)", seed)
	if diffSeed != 0 {
		seed = diffSeed
	}
	r := rand.New(rand.NewPCG(seed, 0))
	ctx := context.Background()
	cases := []string{"identical", "local empty", "remote empty", "both empty", "random", "random", "random", "few", "many", "random"}
	for round := range 30 {
		kind := cases[round%len(cases)]
		n := r.IntN(3000)
		base := make(map[string][]byte, n)
		for i := range n {
			base[keyName(r.IntN(1_000_000))+"-"+string(rune('a'+i%26))] = randValue(r)
		}
		local, remote := make(map[string][]byte), make(map[string][]byte)
		for k, v := range base {
			local[k], remote[k] = v, v
		}
		diffs := 0
		switch kind {
		case "identical":
		case "local empty":
			clear(local)
		case "remote empty":
			clear(remote)
		case "both empty":
			clear(local)
			clear(remote)
		case "few":
			diffs = 1 + r.IntN(5)
		case "many":
			diffs = n
		default:
			diffs = r.IntN(200)
		}
		for range diffs {
			switch r.IntN(3) {
			case 0: // added on the remote
				remote[keyName(1_000_000+r.IntN(1_000_000))] = randValue(r)
			case 1: // changed
				if k, ok := pick(r, remote); ok {
					remote[k] = randValue(r)
				}
			case 2: // deleted on the remote
				if k, ok := pick(r, remote); ok {
					delete(remote, k)
				}
			}
		}
		lx, rx := fill(t, r, local), fill(t, r, remote)
		got, err := Diff(ctx, lx, SourceFunc(rx.ServeRPC), DiffOptions{MaxPagesPerRequest: 1 + r.IntN(300), MaxBucketsPerRequest: 1 + r.IntN(50)})
		if err != nil {
			t.Fatalf("seed %d round %d (%s): %v", seed, round, kind, err)
		}
		a, c, d := oracleDiff(local, remote)
		if !slices.Equal(got.Added, a) || !slices.Equal(got.Changed, c) || !slices.Equal(got.Deleted, d) {
			t.Fatalf("seed %d round %d (%s): diff found added %d changed %d deleted %d, oracle %d %d %d",
				seed, round, kind, len(got.Added), len(got.Changed), len(got.Deleted), len(a), len(c), len(d))
		}
		if same := len(a)+len(c)+len(d) == 0; same != bytes.Equal(lx.Root(), rx.Root()) {
			t.Fatalf("seed %d round %d (%s): roots equal=%v but %d differences", seed, round, kind, !same, len(a)+len(c)+len(d))
		}
		if got.Keys() == 0 && got.Rounds != 1 || got.Keys() > 0 && got.Rounds != 3 {
			t.Fatalf("seed %d round %d (%s): %d rounds for %d differences", seed, round, kind, got.Rounds, got.Keys())
		}
	}
}

// pick returns a key of m chosen by r (reproducible: map order is not).
func pick(r *rand.Rand, m map[string][]byte) (string, bool) {
	if len(m) == 0 {
		return "", false
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys[r.IntN(len(keys))], true
}

// diffSeed replays a failing TestDiffMatchesFullScanOracle run when set.
var diffSeed uint64

func TestDiffItems(t *testing.T) {
	vh := func(b byte) (h [ValueHashSize]byte) { h[0] = b; return }
	local := []Item{{"a", vh(1)}, {"b", vh(2)}, {"c", vh(3)}}
	remote := []Item{{"b", vh(2)}, {"c", vh(9)}, {"d", vh(4)}}
	a, c, d := DiffItems(local, remote)
	if !slices.Equal(a, []string{"d"}) || !slices.Equal(c, []string{"c"}) || !slices.Equal(d, []string{"a"}) {
		t.Fatalf("added %v changed %v deleted %v", a, c, d)
	}
}
