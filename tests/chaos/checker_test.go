package chaos

import (
	"fmt"
	"strings"
	"testing"
)

// The checker's decisions on one key, without a cluster: each case breaks
// one property (or none) and expects the violations that name it.
func TestCheckKey(t *testing.T) {
	put := func(seq int, value string, ack bool, version int) *op {
		return &op{seq: seq, key: "k", value: value, ack: ack, version: version}
	}
	del := func(seq int, ack bool) *op { return &op{seq: seq, key: "k", del: true, ack: ack} }
	vs := func(current int, pairs ...any) *stored {
		st := &stored{current: current, versions: map[int]storedVersion{}}
		for i := 0; i < len(pairs); i += 2 {
			v := pairs[i+1].(string)
			st.versions[pairs[i].(int)] = storedVersion{value: v, deleted: v == ""}
		}
		return st
	}
	for _, tc := range []struct {
		name string
		ops  []*op
		st   *stored
		want string // substring of the one violation; "" for none
	}{
		{"all there", []*op{put(0, "a", true, 1), put(1, "b", true, 2)}, vs(2, 1, "a", 2, "b"), ""},
		{"an indeterminate put applied", []*op{put(0, "a", true, 1), put(1, "b", false, 0)}, vs(2, 1, "a", 2, "b"), ""},
		{"an indeterminate put applied after a later acknowledged delete", []*op{put(0, "a", true, 1), put(1, "b", false, 0), del(2, true)}, vs(2, 1, "", 2, "b"), ""},
		{"acknowledged put lost", []*op{put(0, "a", true, 1), put(1, "b", true, 2)}, vs(1, 1, "a"), "is lost"},
		{"acknowledged put holds another value", []*op{put(0, "a", true, 1)}, vs(1, 1, "x"), "which no client wrote"},
		{"applied twice", []*op{put(0, "a", false, 0), put(1, "b", true, 3)}, vs(3, 1, "a", 2, "a", 3, "b"), "applied twice"},
		{"deleted without a delete", []*op{put(0, "a", true, 1)}, vs(1, 1, ""), "no delete was sent"},
		{"a delete lost", []*op{put(0, "a", true, 1), del(1, true)}, vs(1, 1, "a"), "after the acknowledged delete"},
		{"a refused put applied", []*op{put(0, "a", true, 1), {seq: 1, key: "k", value: "b", refused: true}}, vs(2, 1, "a", 2, "b"), "which no client wrote"},
		{"a version nobody wrote", []*op{put(0, "a", true, 1)}, vs(2, 1, "a", 2, "a2"), "which no client wrote"},
	} {
		var got []string
		checkKey("k", tc.ops, tc.st, func(_, format string, args ...any) {
			got = append(got, fmt.Sprintf(format, args...))
		})
		switch {
		case tc.want == "" && len(got) > 0:
			t.Errorf("%s: violations %v, want none", tc.name, got)
		case tc.want != "" && (len(got) == 0 || !strings.Contains(strings.Join(got, "|"), tc.want)):
			t.Errorf("%s: violations %v, want one about %q", tc.name, got, tc.want)
		}
	}
}

// A long campaign's schedule holds what issue 17 asks of one run, and the
// same seed gives the same schedule.
func TestScheduleQuotas(t *testing.T) {
	plan := schedule(7, 160, true)
	n := map[string]int{}
	for _, f := range plan {
		n[f.kind]++
		if f.kind == fLongPartition && f.hold <= retention {
			t.Fatalf("%s: not longer than the retention %s", f, retention)
		}
	}
	if len(plan) != 160 || n[fKill] < 100 || n[fLongPartition] < 20 || n[fNATSLoss] < 10 || n[fDiskFull] < 10 || n[fFreeze] == 0 || n[fPartition] == 0 || n[fClockJump] == 0 {
		t.Fatalf("160 rounds: %v", n)
	}
	if fmt.Sprint(schedule(7, 160, true)) != fmt.Sprint(plan) || fmt.Sprint(schedule(8, 160, true)) == fmt.Sprint(plan) {
		t.Fatal("a seed does not give one schedule")
	}
	short := schedule(1, 14, true)
	seen := map[string]int{}
	for _, f := range short {
		seen[f.kind]++
	}
	for _, k := range []string{fKill, fFreeze, fNATSLoss, fPartition, fLongPartition, fDiskFull, fClockJump} {
		if seen[k] != 2 {
			t.Fatalf("the short campaign has %d rounds of %s, want 2: %v", seen[k], k, short)
		}
	}
}
