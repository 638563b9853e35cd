package kv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/cofferhq/coffer/logical"
	"github.com/cofferhq/coffer/storage"
)

// recordVersion is the "v" of every record this package stores. A record
// with another "v" is refused, not guessed at.
const recordVersion = 1

// V1 is the unversioned KV engine: a path is a key, a write replaces the key's
// whole data map.
type V1 struct{}

var _ logical.Backend = (*V1)(nil)

// NewV1 returns a KV v1 backend. It holds no state: everything is in the
// request's storage.
func NewV1() *V1 { return &V1{} }

// v1Record is a KV v1 key as stored.
type v1Record struct {
	V    int             `json:"v"`
	Data json.RawMessage `json:"data"`
}

// HandleRequest serves read, create/update, delete and list of one key.
func (b *V1) HandleRequest(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	if req.Operation == logical.ListOperation {
		keys, err := req.Storage.List(ctx, folderPrefix(req.Path))
		if err != nil {
			return nil, fmt.Errorf("list %q: %w", req.Path, err)
		}
		return listResponse(keys)
	}
	if err := checkKey(req.Path); err != nil {
		return nil, err
	}
	switch req.Operation {
	case logical.ReadOperation:
		data, err := b.read(ctx, req.Storage, req.Path)
		if err != nil {
			return nil, err
		}
		if data == nil {
			return nil, logical.ErrNotFound
		}
		return &logical.Response{Data: data}, nil
	case logical.CreateOperation, logical.UpdateOperation:
		if len(req.Data) == 0 {
			return nil, logical.InvalidRequest("missing data fields: give at least one key=value pair to store at %q", req.Path)
		}
		raw, err := json.Marshal(req.Data)
		if err != nil {
			return nil, logical.InvalidRequest("data: cannot be stored as JSON: %v", err)
		}
		val, err := json.Marshal(v1Record{V: recordVersion, Data: raw})
		if err != nil {
			return nil, err
		}
		if err := req.Storage.Put(ctx, &storage.Entry{Key: req.Path, Value: val}); err != nil {
			return nil, fmt.Errorf("write %q: %w", req.Path, err)
		}
		return nil, nil
	case logical.DeleteOperation:
		if err := req.Storage.Delete(ctx, req.Path); err != nil {
			return nil, fmt.Errorf("delete %q: %w", req.Path, err)
		}
		return nil, nil
	}
	return nil, fmt.Errorf("%w: kv version 1 supports read, write, delete and list, not %s; patch needs a version 2 mount", logical.ErrUnsupportedOperation, req.Operation)
}

// ExistenceCheck reports whether the key exists.
func (b *V1) ExistenceCheck(ctx context.Context, req *logical.Request) (bool, error) {
	if req.Path == "" {
		return false, nil
	}
	e, err := req.Storage.Get(ctx, req.Path)
	if err != nil {
		return false, fmt.Errorf("existence check %q: %w", req.Path, err)
	}
	return e != nil, nil
}

func (b *V1) read(ctx context.Context, s logical.Storage, key string) (map[string]any, error) {
	e, err := s.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read %q: %w", key, err)
	}
	if e == nil {
		return nil, nil
	}
	var rec v1Record
	if err := json.Unmarshal(e.Value, &rec); err != nil {
		return nil, fmt.Errorf("decode %q: %w", key, err)
	}
	if rec.V != recordVersion {
		return nil, fmt.Errorf("decode %q: record version %d is not supported by this build (want %d): upgrade coffer", key, rec.V, recordVersion)
	}
	return decodeMap(rec.Data)
}

// decodeMap decodes a stored JSON object, keeping numbers exact.
func decodeMap(raw []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("decode stored data: %w", err)
	}
	if m == nil {
		m = map[string]any{}
	}
	return m, nil
}
