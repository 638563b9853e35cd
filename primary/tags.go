package primary

import (
	"bytes"
	"slices"

	"github.com/cofferhq/coffer/replication"
)

// tagMemo is an active secondary's batch tag key and the RPC key it was
// derived from.
type tagMemo struct {
	rpc []byte
	key replication.TagKey
}

// tagKeys returns the batch tag keys of the secondaries active now, at most
// replication.MaxBatchTags (replication/tag.go): every batch carries a tag
// for each, so that they
// trust it without checking its signature. Each key is derived once per
// RPC key. A secondary activated after a batch was sealed finds no tag in
// it and checks the signature: nothing depends on the list being current.
func (p *Primary) tagKeys() []replication.TagKey {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tagMemos == nil {
		p.tagMemos = map[string]tagMemo{}
	}
	var out []replication.TagKey
	for id, r := range p.st.Secondary {
		if r.State != SecondaryActive || len(r.RPCKey) != replication.KeySize {
			delete(p.tagMemos, id)
			continue
		}
		m, ok := p.tagMemos[id]
		if !ok || !bytes.Equal(m.rpc, r.RPCKey) {
			k, err := replication.NewTagKey(id, r.RPCKey)
			if err != nil {
				continue // unreachable with a key of the right size; the signature serves
			}
			m = tagMemo{rpc: r.RPCKey, key: k}
			p.tagMemos[id] = m
		}
		out = append(out, m.key)
	}
	for id := range p.tagMemos {
		if _, ok := p.st.Secondary[id]; !ok {
			delete(p.tagMemos, id)
		}
	}
	if len(out) > replication.MaxBatchTags {
		// The same ones every time (by tag id): the others check signatures.
		slices.SortFunc(out, func(a, b replication.TagKey) int { return bytes.Compare(a.ID[:], b.ID[:]) })
		out = out[:replication.MaxBatchTags]
	}
	return out
}
