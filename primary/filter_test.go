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

// What a filtered secondary asks the primary for, with its own RPC key:
// fetch reports a denied key absent, the full listing leaves denied keys out,
// the key RPC answers the filter's key, never the epoch's own, and the
// heartbeat names the filter. An unfiltered secondary gets everything. (The
// merkle RPC's filtered view: TestPathsFilter compares the roots.)
func TestFilteredSecondaryRPCsHoldBackDeniedData(t *testing.T) {
	r := newShipRigWith(t, func(c *Config) { c.MountOf = rigMountOf })
	ctx := context.Background()
	for _, id := range []string{"dc2", "dc3"} {
		if _, _, err := r.p.SecondaryToken(ctx, id, 0); err != nil {
			t.Fatal(err)
		}
	}
	f, _ := replication.ParseFilter("deny", []string{"team/"})
	if err := r.p.SetFilter(ctx, "dc2", f); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"logical/uuid-secret/a", "logical/uuid-team/b", "core/c"} {
		if err := r.log.Put(ctx, &storage.Entry{Key: k, Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	call := func(h func(context.Context, string, []byte) ([]byte, *replication.RPCError), id string, req, reply replication.Message) {
		t.Helper()
		in, err := replication.EncodeMessage(req)
		if err != nil {
			t.Fatal(err)
		}
		out, rerr := h(ctx, id, in)
		if rerr != nil {
			t.Fatalf("%T of %s: %v", req, id, rerr)
		}
		if err := replication.DecodeMessage(out, reply); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]string{"dc2": "[core/c logical/uuid-secret/a]", "dc3": "[core/c logical/uuid-secret/a logical/uuid-team/b]"}
	for id, keys := range want {
		var fr replication.FetchReply
		call(r.p.handleFetch, id, &replication.FetchRequest{Keys: []string{"core/c", "logical/uuid-secret/a", "logical/uuid-team/b"}}, &fr)
		var got []string
		for _, kv := range fr.Entries {
			got = append(got, kv.Key)
		}
		if fmt.Sprint(got) != keys {
			t.Errorf("fetch by %s answers %v (absent %v), want %s", id, got, fr.Absent, keys)
		}
		var sr replication.SyncReply
		call(r.p.handleSync, id, &replication.SyncRequest{}, &sr)
		got = got[:0]
		for _, kv := range sr.Entries {
			if !strings.HasPrefix(kv.Key, "core/replication/") {
				got = append(got, kv.Key)
			}
		}
		if fmt.Sprint(got) != keys {
			t.Errorf("the listing for %s holds %v, want %s", id, got, keys)
		}
	}
	epoch := r.p.Status().Epoch
	r.p.mu.Lock()
	mainKey, fid := r.p.st.key(epoch), r.p.filterIDOf("dc2")
	r.p.mu.Unlock()
	for id, wantKey := range map[string][]byte{"dc2": replication.FilterKey(mainKey, fid), "dc3": mainKey} {
		var kr replication.KeyReply
		call(r.p.handleKey, id, &replication.KeyRequest{Epoch: epoch}, &kr)
		if string(kr.Key) != string(wantKey) {
			t.Errorf("the key RPC gives %s another key than its own", id)
		}
	}
	var hb replication.HeartbeatReply
	call(r.p.handleHeartbeat, "dc2", &replication.HeartbeatRequest{}, &hb)
	if hb.FilterID != fid {
		t.Errorf("heartbeat reply names filter %q, want %q", hb.FilterID, fid)
	}
}
