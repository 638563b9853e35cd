package primary

import (
	"fmt"

	"github.com/cofferhq/coffer/replication"
)

// The generation claim's decisions (docs/replication.md, "Generations"): a
// pure function of what a primary process knows, tested by the script
// testdata/claim.txt. lease.go is the driver that reads the KV, observes it
// over time and carries the verdict out.

// claimView is what a primary process knows when it decides.
type claimView struct {
	Cluster, Instance string
	// StoredGen is the generation this cluster's storage last held (0:
	// never); StoredShipped its stored shipped WAL index.
	StoredGen, StoredShipped uint64
	// StreamLast is the last WAL index of a batch of StoredGen on the stream
	// (0: none, or unknown).
	StreamLast uint64
	// Holding: this process holds the claim at StoredGen now.
	Holding bool
	// Seen is the claim in the KV, verified with the set's key; nil when the
	// key is absent or holds anything else (a stranger's bytes).
	Seen *replication.Claim
	// Quiet: the key has not changed for a whole lease TTL, as this process
	// observed it. Alive: it changed meanwhile, to a claim of another process.
	Quiet, Alive bool
	// Promote: this process takes the set over (a promoted DR secondary):
	// it claims the next generation at once, whoever holds the set.
	// It aims at StoredGen+1 (TakeOver stores the generation the secondary
	// last followed).
	Promote bool
	// Behind: a secondary of this generation reported a position past this
	// primary's WAL: the storage went back in time under a running primary.
	Behind string
	// HATerm is this process's term as its cluster's active node (0: a
	// cluster of one node).
	HATerm uint64
}

// verdictKind is what the process does next.
type verdictKind string

const (
	verdictHold   verdictKind = "hold"   // renew the claim (Gen)
	verdictClaim  verdictKind = "claim"  // write the claim for Gen (compare-and-set)
	verdictWait   verdictKind = "wait"   // observe the key for a lease TTL
	verdictFenced verdictKind = "fenced" // another process holds the set: stop for good
	verdictYield  verdictKind = "yield"  // a later active node of this cluster holds it: stop shipping, fence nothing
)

type verdict struct {
	Kind verdictKind
	Gen  uint64
	// From, on a handover between active nodes of one cluster, is the WAL
	// index the set's stream already holds at Gen: the new holder ships
	// after it (the shared storage has every entry up to it).
	From uint64
	// Why explains a claim of a new generation, a wait, or the fence.
	Why string
}

func (v verdict) String() string {
	out := fmt.Sprintf("%s gen=%d", v.Kind, v.Gen)
	if v.From != 0 {
		out += fmt.Sprintf(" from=%d", v.From)
	}
	if v.Why != "" {
		out += ": " + v.Why
	}
	return out
}

// decideClaim is the rule book:
//   - A promotion claims the generation after the one its secondary last
//     followed, at once, whoever holds that one; one that finds its target
//     (or a later one) taken by another process lost a race of promotions,
//     or came after another promotion of the same set: fenced (follow the
//     winner with update-primary instead).
//   - A claim of a newer generation than ours, by anyone: fenced.
//   - Our own claim (this process): hold it; but when a secondary of our
//     generation has applied past our WAL (our storage went back in time
//     under us), claim the next generation.
//   - Holding, and the key is gone or a stranger's: write ours again at once;
//     an older generation there: ours again; another process at our
//     generation (it took over while we could not renew): fenced.
//   - Not holding: nothing stored yet (first enable) claims generation 1, or
//     the one after a claim this cluster left by an earlier enable (a claim
//     of another cluster fences it: that cluster was promoted). Otherwise a claim of
//     another process that is alive (changed while we watched) fences us;
//     one that was released, or stayed quiet for a lease TTL, or a key that
//     stayed empty that long, is taken over: at our generation, or the next
//     one when our storage went back in time (our shipped index is behind
//     what the claim or the stream show was shipped at our generation), so
//     that secondaries resync rather than skip re-used WAL indexes.
//   - A claim of another cluster at our generation: fenced.
//   - Between the active nodes of one cluster (HA terms): a claim of an
//     earlier term of this cluster is taken over at once, at the same
//     generation, shipping after what the stream holds (the nodes share
//     storage: nothing went back in time); a claim of a later term makes
//     this process yield: it stops shipping and fences nothing (its node is
//     no longer active).
func decideClaim(v claimView) verdict {
	s := v.Seen
	if s != nil && s.ClusterID == v.Cluster && s.Instance != v.Instance && v.HATerm > 0 && s.HATerm > 0 && !v.Promote {
		switch {
		case s.HATerm > v.HATerm:
			return verdict{Kind: verdictYield, Gen: s.Gen, Why: fmt.Sprintf("a later active node of this cluster (HA term %d, this node's %d) holds generation %d", s.HATerm, v.HATerm, s.Gen)}
		case s.HATerm < v.HATerm && s.Gen == v.StoredGen:
			return verdict{Kind: verdictClaim, Gen: s.Gen, From: max(v.StreamLast, s.Shipped),
				Why: fmt.Sprintf("handover: taking generation %d over from an earlier active node of this cluster (HA term %d, this node's %d)", s.Gen, s.HATerm, v.HATerm)}
		}
	}
	if v.Promote && !v.Holding {
		gen := v.StoredGen + 1
		if s != nil && s.Gen >= gen && s.Instance != v.Instance {
			return verdict{Kind: verdictFenced, Gen: s.Gen, Why: fmt.Sprintf("another promotion won: cluster %s holds generation %d, the one this promotion aimed at or a later one", s.ClusterID, s.Gen)}
		}
		return verdict{Kind: verdictClaim, Gen: gen, Why: "promoted: taking the set over from its previous primary"}
	}
	switch {
	case v.StoredGen == 0 && s != nil && s.ClusterID == v.Cluster && s.Instance != v.Instance && (s.Released || v.Quiet) && !v.Alive:
		return verdict{Kind: verdictClaim, Gen: s.Gen + 1, Why: "a claim of an earlier enable remains"}
	case v.StoredGen == 0 && s != nil && s.ClusterID == v.Cluster && s.Instance != v.Instance && !v.Alive:
		return verdict{Kind: verdictWait, Gen: 0, Why: "waiting a lease TTL for the previous holder's claim to go quiet"}
	case s != nil && s.Gen > v.StoredGen && !(s.Instance == v.Instance && s.ClusterID == v.Cluster):
		return verdict{Kind: verdictFenced, Gen: s.Gen, Why: fmt.Sprintf("cluster %s holds generation %d", s.ClusterID, s.Gen)}
	case s != nil && s.Instance == v.Instance && s.ClusterID == v.Cluster && v.Behind != "" && s.Gen == v.StoredGen:
		return verdict{Kind: verdictClaim, Gen: s.Gen + 1, Why: "this cluster's storage went back in time: " + v.Behind + "; secondaries resync"}
	case s != nil && s.Instance == v.Instance && s.ClusterID == v.Cluster:
		return verdict{Kind: verdictHold, Gen: s.Gen}
	case s != nil && s.Gen == v.StoredGen && s.ClusterID != v.Cluster:
		return verdict{Kind: verdictFenced, Gen: s.Gen, Why: fmt.Sprintf("cluster %s holds generation %d", s.ClusterID, s.Gen)}
	case v.Holding && s != nil && s.Gen == v.StoredGen:
		return verdict{Kind: verdictFenced, Gen: s.Gen, Why: "another process of this cluster took the claim over while this one could not renew it"}
	case v.Holding:
		return verdict{Kind: verdictClaim, Gen: v.StoredGen, Why: "the claim was deleted or overwritten on the bus: restoring it"}
	case v.StoredGen == 0 && s == nil:
		return verdict{Kind: verdictClaim, Gen: 1}
	case v.Alive:
		return verdict{Kind: verdictFenced, Gen: s.Gen, Why: fmt.Sprintf("another process of cluster %s holds generation %d and renews it (a copy of this cluster's storage?)", s.ClusterID, s.Gen)}
	case !(v.Quiet || (s != nil && s.Released)):
		return verdict{Kind: verdictWait, Gen: v.StoredGen, Why: "waiting a lease TTL for the previous holder's claim to go quiet"}
	}
	shipped := v.StreamLast
	if s != nil && s.Gen == v.StoredGen && s.Shipped > shipped {
		shipped = s.Shipped
	}
	if v.StoredShipped < shipped {
		return verdict{Kind: verdictClaim, Gen: v.StoredGen + 1,
			Why: fmt.Sprintf("this cluster's storage went back in time: it shipped up to %d, generation %d shipped up to %d; secondaries resync", v.StoredShipped, v.StoredGen, shipped)}
	}
	return verdict{Kind: verdictClaim, Gen: v.StoredGen}
}
