package primary

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/cofferhq/coffer/replication"
)

// Every active secondary gets a tag, none other does, up to
// replication.MaxBatchTags: the same ones on every batch.
func TestTagKeysOfActiveSecondaries(t *testing.T) {
	p := &Primary{st: &persisted{Secondary: map[string]*secondaryRec{
		"dc2": {State: SecondaryActive, RPCKey: bytes.Repeat([]byte{2}, replication.KeySize)},
		"dc3": {State: SecondaryRevoked},
		"dc4": {State: SecondaryActive, RPCKey: bytes.Repeat([]byte{4}, replication.KeySize)},
	}}}
	want := func(id string, rpc byte) replication.TagKey {
		k, err := replication.NewTagKey(id, bytes.Repeat([]byte{rpc}, replication.KeySize))
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	got := p.tagKeys()
	if len(got) != 2 || !(got[0] == want("dc2", 2) && got[1] == want("dc4", 4) || got[0] == want("dc4", 4) && got[1] == want("dc2", 2)) {
		t.Fatalf("tag keys %x, want dc2's and dc4's", got)
	}
	// A new RPC key (a new activation) gets a new tag key; a revoked one none.
	p.st.Secondary["dc2"].RPCKey = bytes.Repeat([]byte{9}, replication.KeySize)
	p.st.Secondary["dc4"].State = SecondaryRevoked
	if got := p.tagKeys(); len(got) != 1 || got[0] != want("dc2", 9) {
		t.Fatalf("after a new activation and a revocation: %x", got)
	}
	for i := range replication.MaxBatchTags + 10 {
		p.st.Secondary[fmt.Sprint("s", i)] = &secondaryRec{State: SecondaryActive, RPCKey: bytes.Repeat([]byte{byte(i)}, replication.KeySize)}
	}
	first := p.tagKeys()
	if len(first) != replication.MaxBatchTags {
		t.Fatalf("%d tag keys, want at most %d", len(first), replication.MaxBatchTags)
	}
	for range 5 {
		if again := p.tagKeys(); fmt.Sprint(again) != fmt.Sprint(first) {
			t.Fatal("another choice of tagged secondaries on the next batch")
		}
	}
}
