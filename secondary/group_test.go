package secondary

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/replication"
	"github.com/cofferhq/coffer/wal"
)

// ob makes an opened batch [first, last] of generation gen, guarded when g.
func ob(first, last, gen uint64, g bool) opened {
	bt := &replication.Batch{First: first, Last: last, Generation: gen}
	for i := first; i <= last; i++ {
		bt.Entries = append(bt.Entries, &wal.Entry{Index: i})
	}
	if g {
		bt.Guard = make([]byte, replication.GuardSize)
	}
	return opened{batch: bt}
}

func TestRunsJoinOnlyBatchesThatFollowEachOther(t *testing.T) {
	bad := opened{ev: BatchRejected{Err: errors.New("forged")}}
	for _, tc := range []struct {
		name  string
		items []opened
		want  string // runs as [first-last] of the joined batch, "x" for an event
	}{
		{"one", []opened{ob(1, 3, 1, false)}, "[1-3]"},
		{"contiguous", []opened{ob(1, 3, 1, false), ob(4, 4, 1, false), ob(5, 9, 1, false)}, "[1-9]"},
		{"gap splits", []opened{ob(1, 3, 1, false), ob(5, 6, 1, false)}, "[1-3] [5-6]"},
		{"overlap splits (a replay)", []opened{ob(1, 3, 1, false), ob(3, 4, 1, false)}, "[1-3] [3-4]"},
		{"new generation splits", []opened{ob(1, 3, 1, false), ob(4, 5, 2, false)}, "[1-3] [4-5]"},
		{"guards inside a run", []opened{ob(1, 3, 1, true), ob(4, 5, 1, false), ob(6, 6, 1, true), ob(7, 7, 1, false)}, "[1-7]"},
		{"the last guard is kept", []opened{ob(1, 3, 1, true), ob(4, 5, 1, true)}, "[1-5]"},
		{"a rejected message stands alone", []opened{ob(1, 3, 1, false), bad, ob(4, 5, 1, false), bad, bad}, "[1-3] x [4-5] x x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, run := range runs(tc.items) {
				if run[0].ev != nil {
					if len(run) != 1 {
						t.Fatalf("an event in a run of %d", len(run))
					}
					got = append(got, "x")
					continue
				}
				j := join(run)
				got = append(got, fmt.Sprintf("[%d-%d]", j.First, j.Last))
				for i, e := range j.Entries {
					if e.Index != j.First+uint64(i) {
						t.Fatalf("joined entries out of order: %d at %d", e.Index, i)
					}
				}
				if want := run[len(run)-1].batch.Guard; string(j.Guard) != string(want) {
					t.Fatal("the joined batch does not carry its last batch's guard")
				}
			}
			if s := strings.Join(got, " "); s != tc.want {
				t.Fatalf("runs %s, want %s", s, tc.want)
			}
		})
	}
}
