package primary

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/replication"
	"github.com/cofferhq/coffer/storage"
)

// The rig's mount table: two mounts' data prefixes and their route paths.
var rigMounts = map[string]string{"logical/uuid-secret/": "secret/", "logical/uuid-team/": "team/"}

func rigMountOf(key string) (string, bool) {
	for prefix, path := range rigMounts {
		if strings.HasPrefix(key, prefix) {
			return path, true
		}
	}
	return "", false
}

// A secondary filtered with deny team/ gets batch copies that hold no op of
// team/, sealed with its filter's key: the key the primary hands it opens
// the copies and none of the unfiltered batches shipped since the filter was
// set. The unfiltered batches still hold everything.
func TestFilteredCopiesHoldOnlyWhatTheFilterAllows(t *testing.T) {
	r := newShipRigWith(t, func(c *Config) { c.MountOf = rigMountOf })
	ctx := context.Background()
	if _, _, err := r.p.SecondaryToken(ctx, "dc2", 0); err != nil {
		t.Fatal(err)
	}
	f, err := replication.ParseFilter("deny", []string{"team"})
	if err != nil {
		t.Fatal(err)
	}
	epochBefore := r.p.Status().Epoch
	if err := r.p.SetFilter(ctx, "dc2", f); err != nil {
		t.Fatal(err)
	}
	if got := r.p.Status().Epoch; got != epochBefore+1 {
		t.Fatalf("epoch %d after setting a filter, want %d: the filtered secondary could read new batches with the key it had", got, epochBefore+1)
	}
	for i := range 20 {
		for _, k := range []string{"logical/uuid-secret/k", "logical/uuid-team/k", "core/config"} {
			if err := r.log.Put(ctx, &storage.Entry{Key: fmt.Sprintf("%s%d", k, i), Value: []byte("v")}); err != nil {
				t.Fatal(err)
			}
		}
	}
	r.shippedAll(t)

	// The key the secondary's key RPC would answer with.
	epoch := r.p.Status().Epoch
	r.p.mu.Lock()
	mainKey := r.p.st.key(epoch)
	filterID := r.p.filterIDOf("dc2")
	pub := r.p.st.signer().Public().(ed25519.PublicKey)
	r.p.mu.Unlock()
	filterKey := replication.FilterKey(mainKey, filterID)

	first, last, _, err := r.cfg.Bus.StreamState(ctx, r.p.stream)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{} // key prefix -> ops seen, per kind of batch
	copies, mains := 0, 0
	for seq := first; seq <= last; seq++ {
		data, err := r.cfg.Bus.StreamMsg(ctx, r.p.stream, seq)
		if err != nil {
			t.Fatal(err)
		}
		if e, _, _, _ := replication.PeekBatch(data); e != epoch {
			continue
		}
		b, errFilter := replication.OpenBatch(data, "dc1", filterKey, pub)
		kind := "copy"
		if errFilter != nil {
			if b, err = replication.OpenBatch(data, "dc1", mainKey, pub); err != nil {
				t.Fatalf("stream message %d opens with neither key: %v / %v", seq, errFilter, err)
			}
			kind = "main"
			mains++
		} else {
			copies++
		}
		for _, e := range b.Entries {
			for _, op := range e.Ops {
				group := "other"
				for prefix, mount := range rigMounts {
					if strings.HasPrefix(op.Key, prefix) {
						group = mount
					}
				}
				seen[kind+" "+group]++
			}
		}
	}
	if copies == 0 || mains == 0 {
		t.Fatalf("%d copies and %d unfiltered batches of epoch %d in the stream", copies, mains, epoch)
	}
	if n := seen["copy team/"]; n != 0 {
		t.Fatalf("the filtered copies hold %d ops of the denied mount team/: %v", n, seen)
	}
	for _, k := range []string{"copy secret/", "copy other", "main team/", "main secret/", "main other"} {
		if seen[k] == 0 {
			t.Fatalf("no %q ops: %v", k, seen)
		}
	}
}

// The keeper: keys outside mount data always pass; a mount's data follows
// the filter; a mount's decision is kept once taken although the mount
// table changes; unknown mounts pass a deny filter only.
func TestKeeperDecisions(t *testing.T) {
	mounts := map[string]string{"logical/u1/": "secret/", "auth/u2/": "auth/userpass/"}
	mountOf := func(key string) (string, bool) {
		for p, m := range mounts {
			if strings.HasPrefix(key, p) {
				return m, true
			}
		}
		return "", false
	}
	deny, _ := replication.ParseFilter("deny", []string{"secret/"})
	allow, _ := replication.ParseFilter("allow", []string{"auth/userpass/"})
	kd, ka := newKeeper(deny, mountOf), newKeeper(allow, mountOf)
	for key, want := range map[string][2]bool{
		"core/mounts":          {true, true},
		"logical/":             {true, true},
		"logical/u1":           {true, true}, // a folder above the data
		"logical/u1/data/x":    {false, false},
		"auth/u2/user/alice":   {true, true},
		"logical/unknown/data": {true, false},
	} {
		if got := [2]bool{kd.allows(key), ka.allows(key)}; got != want {
			t.Errorf("%s: deny/allow %v, want %v", key, got, want)
		}
	}
	delete(mounts, "logical/u1/") // disabled: its deletions go where its data went
	if kd.allows("logical/u1/data/x") {
		t.Fatal("a disabled mount's keys changed decision")
	}
}
