package kv

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/cofferhq/coffer/internal/clock"
	"github.com/cofferhq/coffer/logical"
	"github.com/cofferhq/coffer/storage"
)

// Vault's messages for check-and-set failures, kept word for word: clients
// and scripts match on them.
const (
	msgCASMismatch = "check-and-set parameter did not match the current version"
	msgCASRequired = "check-and-set parameter required for this call"
	msgNoData      = "no data provided"
	msgNoVersions  = "no version number provided"
)

// V2 is the versioned KV engine, answering Vault's KV v2 API: data/,
// metadata/, delete/, undelete/, destroy/, subkeys/ and config.
type V2 struct {
	// Now is the clock; nil means time.Now. Tests inject one to exercise
	// delete_version_after without waiting.
	Now func() time.Time

	locks    keyLocks
	configMu sync.Mutex
}

var _ logical.Backend = (*V2)(nil)

// NewV2 returns a KV v2 backend. Everything it knows is in the request's
// storage; it caches nothing, so it stays correct on a secondary cluster whose
// storage the replication applier writes underneath it.
func NewV2() *V2 { return &V2{} }

func (b *V2) now() time.Time {
	if b.Now != nil {
		return b.Now().UTC()
	}
	return clock.Now().UTC()
}

// endpoint splits a request path into the endpoint and the key after it:
// "data/a/b" is ("data", "a/b"), "config" is ("config", "").
func endpoint(path string) (string, string, bool) {
	if path == "config" {
		return "config", "", true
	}
	ep, key, _ := strings.Cut(path, "/")
	switch ep {
	case "data", "metadata", "delete", "undelete", "destroy", "subkeys":
		return ep, key, true
	}
	return "", "", false
}

func unsupportedPath(path string) error {
	return fmt.Errorf("%w: %q: a kv version 2 mount serves config, data/, metadata/, delete/, undelete/, destroy/ and subkeys/", logical.ErrUnsupportedPath, path)
}

func unsupportedOp(op logical.Operation, ep, allowed string) error {
	return fmt.Errorf("%w: %s on %s: this endpoint supports %s", logical.ErrUnsupportedOperation, op, ep, allowed)
}

// HandleRequest routes one request to its endpoint.
func (b *V2) HandleRequest(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	ep, key, ok := endpoint(req.Path)
	if !ok {
		return nil, unsupportedPath(req.Path)
	}
	op := req.Operation
	write := op == logical.CreateOperation || op == logical.UpdateOperation
	if ep == "config" {
		switch {
		case op == logical.ReadOperation:
			return b.configRead(ctx, req)
		case write:
			return b.configWrite(ctx, req)
		}
		return nil, unsupportedOp(op, "config", "read and write")
	}
	if op == logical.ListOperation {
		if ep == "metadata" {
			return b.metadataList(ctx, req, key)
		}
		return nil, unsupportedOp(op, ep+"/", "read and write; list keys under metadata/")
	}
	if err := checkKey(key); err != nil {
		return nil, err
	}
	switch ep {
	case "data":
		switch {
		case op == logical.ReadOperation:
			return b.dataRead(ctx, req, key)
		case write:
			return b.dataWrite(ctx, req, key)
		case op == logical.PatchOperation:
			return b.dataPatch(ctx, req, key)
		case op == logical.DeleteOperation:
			return b.dataDelete(ctx, req, key)
		}
		return nil, unsupportedOp(op, "data/", "read, write, patch and delete")
	case "metadata":
		switch {
		case op == logical.ReadOperation:
			return b.metadataRead(ctx, req, key)
		case write:
			return b.metadataWrite(ctx, req, key)
		case op == logical.PatchOperation:
			return b.metadataPatch(ctx, req, key)
		case op == logical.DeleteOperation:
			return b.metadataDelete(ctx, req, key)
		}
		return nil, unsupportedOp(op, "metadata/", "read, write, patch, delete and list")
	case "subkeys":
		if op == logical.ReadOperation {
			return b.subkeysRead(ctx, req, key)
		}
		return nil, unsupportedOp(op, "subkeys/", "read")
	default: // delete, undelete, destroy
		if write {
			return b.versionsOp(ctx, req, ep, key)
		}
		return nil, unsupportedOp(op, ep+"/", "write (POST with {\"versions\": [...]})")
	}
}

// ExistenceCheck reports whether a write creates or updates: on data/ and
// metadata/ whether the key's metadata exists; config, delete/, undelete/
// and destroy/ always exist, so writing them needs the update capability, as
// in Vault.
func (b *V2) ExistenceCheck(ctx context.Context, req *logical.Request) (bool, error) {
	ep, key, ok := endpoint(req.Path)
	if !ok {
		return false, unsupportedPath(req.Path)
	}
	switch ep {
	case "data", "metadata", "subkeys":
		if key == "" {
			return false, nil
		}
		// Whether the metadata record is there, not what it says: the
		// write decodes it again under the key's lock, and a decode here
		// was a sixth of a write's CPU (coffer bench -profile).
		e, err := req.Storage.Get(ctx, metadataKey(key))
		if err != nil {
			return false, fmt.Errorf("read metadata of %q: %w", key, err)
		}
		return e != nil, nil
	}
	return true, nil
}

// versionMetadata is the metadata of one version as data/ reads and writes
// return it.
func versionMetadata(m *keyMeta, n uint64, vm *versionMeta) map[string]any {
	return map[string]any{
		"created_time":    formatTime(&vm.CreatedTime),
		"custom_metadata": m.CustomMetadata,
		"deletion_time":   formatTime(vm.DeletionTime),
		"destroyed":       vm.Destroyed,
		"version":         n,
	}
}

// requestedVersion reads the optional version parameter; 0 means current.
func requestedVersion(req *logical.Request, m *keyMeta) (uint64, error) {
	n, ok, err := logical.FieldInt(req.Data, "version")
	switch {
	case err != nil:
		return 0, err
	case n < 0:
		return 0, logical.InvalidRequest("version: must be a version number (1, 2, ...) or 0 for the current version, got %d", n)
	case !ok || n == 0:
		return m.CurrentVersion, nil
	}
	return uint64(n), nil
}

// liveVersion finds the version a read asks for. It returns (nil, nil, err)
// when there is no such version, and a 404 response carrying the version's
// metadata when the version is deleted or destroyed.
func (b *V2) liveVersion(ctx context.Context, req *logical.Request, key string, body func(*keyMeta, uint64, *versionMeta) map[string]any) (*keyMeta, uint64, *logical.Response, error) {
	m, err := loadMeta(ctx, req.Storage, key)
	if err != nil {
		return nil, 0, nil, err
	}
	if m == nil {
		return nil, 0, nil, logical.ErrNotFound
	}
	n, err := requestedVersion(req, m)
	if err != nil {
		return nil, 0, nil, err
	}
	vm := m.Versions[n]
	if vm == nil {
		return nil, 0, nil, logical.ErrNotFound
	}
	if vm.Destroyed || vm.deletedAt(b.now()) {
		return nil, 0, &logical.Response{Data: body(m, n, vm), StatusCode: http.StatusNotFound}, nil
	}
	return m, n, nil, nil
}

func (b *V2) dataRead(ctx context.Context, req *logical.Request, key string) (*logical.Response, error) {
	body := func(m *keyMeta, n uint64, vm *versionMeta) map[string]any {
		return map[string]any{"data": nil, "metadata": versionMetadata(m, n, vm)}
	}
	m, n, gone, err := b.liveVersion(ctx, req, key, body)
	if err != nil || gone != nil {
		return gone, err
	}
	data, err := loadVersionData(ctx, req.Storage, key, n)
	if err != nil {
		return nil, err
	}
	out := body(m, n, m.Versions[n])
	out["data"] = data
	return &logical.Response{Data: out}, nil
}

// subkeysRead answers subkeys/: the version's keys with every leaf value
// replaced by null, down to depth levels (0: all).
func (b *V2) subkeysRead(ctx context.Context, req *logical.Request, key string) (*logical.Response, error) {
	depth := int64(0)
	if raw, ok := req.Data["depth"]; ok && raw != nil {
		d, err := logical.ParseIntRange("depth", raw, 0, 1<<31)
		if err != nil {
			return nil, err
		}
		depth = d
	}
	body := func(m *keyMeta, n uint64, vm *versionMeta) map[string]any {
		return map[string]any{"subkeys": nil, "metadata": versionMetadata(m, n, vm)}
	}
	m, n, gone, err := b.liveVersion(ctx, req, key, body)
	if err != nil || gone != nil {
		return gone, err
	}
	data, err := loadVersionData(ctx, req.Storage, key, n)
	if err != nil {
		return nil, err
	}
	out := body(m, n, m.Versions[n])
	out["subkeys"] = subkeys(data, depth, 1)
	return &logical.Response{Data: out}, nil
}

func subkeys(data map[string]any, depth, level int64) map[string]any {
	out := make(map[string]any, len(data))
	for k, v := range data {
		if sub, ok := v.(map[string]any); ok && (depth == 0 || level < depth) {
			out[k] = subkeys(sub, depth, level+1)
			continue
		}
		out[k] = nil
	}
	return out
}

// checkCAS applies options.cas and cas_required to a write of key m (nil:
// the key does not exist yet, its current version is 0).
func checkCAS(req *logical.Request, c *config, m *keyMeta) error {
	var current uint64
	required := c.CASRequired
	if m != nil {
		current = m.CurrentVersion
		required = required || m.CASRequired
	}
	opts, _, err := logical.FieldObject(req.Data, "options")
	if err != nil {
		return err
	}
	cas, hasCAS := opts["cas"]
	if !hasCAS {
		if required {
			return logical.Errorf(http.StatusBadRequest, msgCASRequired)
		}
		return nil
	}
	n, err := logical.ParseInt("options.cas", cas)
	if err != nil {
		return err
	}
	if n < 0 || uint64(n) != current {
		return logical.Errorf(http.StatusBadRequest, msgCASMismatch)
	}
	return nil
}

// requestData reads the "data" object of a data/ write or patch.
func requestData(req *logical.Request) (map[string]any, error) {
	data, ok, err := logical.FieldObject(req.Data, "data")
	if !ok && err == nil {
		return nil, logical.Errorf(http.StatusBadRequest, msgNoData)
	}
	return data, err
}

func (b *V2) dataWrite(ctx context.Context, req *logical.Request, key string) (*logical.Response, error) {
	data, err := requestData(req)
	if err != nil {
		return nil, err
	}
	c, err := loadConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	defer b.locks.lock(key)()
	m, err := loadMeta(ctx, req.Storage, key)
	if err != nil {
		return nil, err
	}
	if err := checkCAS(req, c, m); err != nil {
		return nil, err
	}
	return b.addVersion(ctx, req.Storage, c, key, m, data)
}

func (b *V2) dataPatch(ctx context.Context, req *logical.Request, key string) (*logical.Response, error) {
	patch, err := requestData(req)
	if err != nil {
		return nil, err
	}
	c, err := loadConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	defer b.locks.lock(key)()
	m, err := loadMeta(ctx, req.Storage, key)
	if err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("%w: %q has no version to patch: write it first", logical.ErrNotFound, key)
	}
	if err := checkCAS(req, c, m); err != nil {
		return nil, err
	}
	n := m.CurrentVersion
	vm := m.Versions[n]
	if vm == nil {
		return nil, fmt.Errorf("%w: %q has no version to patch: write it first", logical.ErrNotFound, key)
	}
	if vm.Destroyed || vm.deletedAt(b.now()) {
		return &logical.Response{Data: versionMetadata(m, n, vm), StatusCode: http.StatusNotFound}, nil
	}
	current, err := loadVersionData(ctx, req.Storage, key, n)
	if err != nil {
		return nil, err
	}
	return b.addVersion(ctx, req.Storage, c, key, m, mergePatch(current, patch))
}

// addVersion writes data as the next version of key, with the key's updated
// metadata and the removal of versions beyond max_versions, in one
// transaction. m is nil for a new key.
func (b *V2) addVersion(ctx context.Context, s logical.Storage, c *config, key string, m *keyMeta, data map[string]any) (*logical.Response, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return nil, logical.InvalidRequest("data: cannot be stored as JSON: %v", err)
	}
	now := b.now()
	if m == nil {
		m = &keyMeta{V: recordVersion, Key: key, CreatedTime: now, Versions: map[uint64]*versionMeta{}}
	}
	n := m.CurrentVersion + 1
	vm := &versionMeta{CreatedTime: now, DeletionTime: scheduledDeletion(now, c, m)}
	m.CurrentVersion = n
	m.Versions[n] = vm
	m.UpdatedTime = now
	if m.CreatedTime.IsZero() {
		m.CreatedTime = now
	}

	ops := []*storage.TxnOp{versionOp(key, n, raw)}
	// Prune as Vault does: once the window from oldest_version to the
	// current version reaches max_versions, everything up to
	// current-max_versions goes, data and metadata together.
	if keep := effectiveMaxVersions(c, m); n-m.OldestVersion >= keep {
		cut := n - keep
		for v := range m.Versions {
			if v <= cut {
				delete(m.Versions, v)
				ops = append(ops, deleteOp(versionKey(key, v)))
			}
		}
		m.OldestVersion = cut + 1
	}
	mop, err := metaOp(key, m)
	if err != nil {
		return nil, err
	}
	ops = append(ops, mop)
	if err := s.Transaction(ctx, ops); err != nil {
		return nil, fmt.Errorf("write version %d of %q: %w", n, key, err)
	}
	return &logical.Response{Data: versionMetadata(m, n, vm)}, nil
}

// saveMeta writes a key's metadata alone, plus any extra operations, in one
// transaction.
func saveMeta(ctx context.Context, s logical.Storage, m *keyMeta, extra ...*storage.TxnOp) error {
	op, err := metaOp(m.Key, m)
	if err != nil {
		return err
	}
	if err := s.Transaction(ctx, append(extra, op)); err != nil {
		return fmt.Errorf("write metadata of %q: %w", m.Key, err)
	}
	return nil
}

// dataDelete soft-deletes the current version, as Vault does: nothing
// happens when there is none, or it is already deleted or destroyed.
func (b *V2) dataDelete(ctx context.Context, req *logical.Request, key string) (*logical.Response, error) {
	defer b.locks.lock(key)()
	m, err := loadMeta(ctx, req.Storage, key)
	if err != nil || m == nil {
		return nil, err
	}
	now := b.now()
	vm := m.Versions[m.CurrentVersion]
	if vm == nil || vm.Destroyed || vm.deletedAt(now) {
		return nil, nil
	}
	vm.DeletionTime = &now
	return nil, saveMeta(ctx, req.Storage, m)
}

// versionsOp serves delete/, undelete/ and destroy/ with {"versions": [...]}.
// Versions that do not exist are skipped, as in Vault.
func (b *V2) versionsOp(ctx context.Context, req *logical.Request, ep, key string) (*logical.Response, error) {
	versions, err := parseVersions(req.Data["versions"])
	if err != nil {
		return nil, err
	}
	if len(versions) == 0 {
		return nil, logical.Errorf(http.StatusBadRequest, msgNoVersions)
	}
	defer b.locks.lock(key)()
	m, err := loadMeta(ctx, req.Storage, key)
	if err != nil || m == nil {
		return nil, err
	}
	now := b.now()
	var extra []*storage.TxnOp
	changed := false
	for _, n := range versions {
		vm := m.Versions[n]
		if vm == nil || vm.Destroyed {
			continue
		}
		switch ep {
		case "delete":
			if !vm.deletedAt(now) {
				t := now
				vm.DeletionTime, changed = &t, true
			}
		case "undelete":
			if vm.DeletionTime != nil {
				vm.DeletionTime, changed = nil, true
			}
		case "destroy":
			vm.Destroyed, changed = true, true
			extra = append(extra, deleteOp(versionKey(key, n)))
		}
	}
	if !changed {
		// Nothing to store: spare the WAL and the secondaries an entry.
		return nil, nil
	}
	return nil, saveMeta(ctx, req.Storage, m, extra...)
}
