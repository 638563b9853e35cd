package kv

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/cofferhq/coffer/logical"
	"github.com/cofferhq/coffer/storage"
)

// Limits on custom_metadata, as in Vault.
const (
	maxCustomMetadataKeys     = 64
	maxCustomMetadataKeyLen   = 128
	maxCustomMetadataValueLen = 512
)

const warnCASMandated = `"cas_required" set to false, but is mandated by backend config. This value will be ignored.`

func (b *V2) configRead(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	c, err := loadConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]any{
		"cas_required":         c.CASRequired,
		"delete_version_after": c.DeleteVersionAfter.String(),
		"max_versions":         c.MaxVersions,
	}}, nil
}

// configWrite sets the fields given and keeps the others. A negative
// delete_version_after switches the feature off for every key; 0 clears it.
func (b *V2) configWrite(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	b.configMu.Lock()
	defer b.configMu.Unlock()
	c, err := loadConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	changed := false
	if raw, ok := req.Data["max_versions"]; ok {
		n, err := logical.ParseIntRange("max_versions", raw, 0, math.MaxUint32)
		if err != nil {
			return nil, err
		}
		c.MaxVersions, changed = uint32(n), true
	}
	if raw, ok := req.Data["cas_required"]; ok {
		if c.CASRequired, err = logical.ParseBool("cas_required", raw); err != nil {
			return nil, err
		}
		changed = true
	}
	if raw, ok := req.Data["delete_version_after"]; ok {
		d, err := logical.ParseDuration("delete_version_after", raw)
		if err != nil {
			return nil, err
		}
		if d < 0 {
			d = deleteVersionAfterDisabled
		}
		c.DeleteVersionAfter, changed = d, true
	}
	if !changed {
		return nil, nil
	}
	op, err := putOp(configKey, c)
	if err != nil {
		return nil, err
	}
	if err := req.Storage.Transaction(ctx, []*storage.TxnOp{op}); err != nil {
		return nil, fmt.Errorf("write kv config: %w", err)
	}
	return nil, nil
}

func (b *V2) metadataList(ctx context.Context, req *logical.Request, folder string) (*logical.Response, error) {
	keys, err := req.Storage.List(ctx, metadataPrefix+folderPrefix(folder))
	if err != nil {
		return nil, fmt.Errorf("list %q: %w", folder, err)
	}
	return listResponse(keys)
}

func (b *V2) metadataRead(ctx context.Context, req *logical.Request, key string) (*logical.Response, error) {
	m, err := loadMeta(ctx, req.Storage, key)
	if err != nil {
		return nil, err
	}
	if m == nil {
		return nil, logical.ErrNotFound
	}
	versions := make(map[string]any, len(m.Versions))
	for n, vm := range m.Versions {
		versions[strconv.FormatUint(n, 10)] = map[string]any{
			"created_time":  formatTime(&vm.CreatedTime),
			"deletion_time": formatTime(vm.DeletionTime),
			"destroyed":     vm.Destroyed,
		}
	}
	return &logical.Response{Data: map[string]any{
		"cas_required":         m.CASRequired,
		"created_time":         formatTime(&m.CreatedTime),
		"current_version":      m.CurrentVersion,
		"custom_metadata":      m.CustomMetadata,
		"delete_version_after": m.DeleteVersionAfter.String(),
		"max_versions":         m.MaxVersions,
		"oldest_version":       m.OldestVersion,
		"updated_time":         formatTime(&m.UpdatedTime),
		"versions":             versions,
	}}, nil
}

// metaFields are the settable fields of a metadata/ write or patch, parsed.
// A nil pointer is a field the request does not mention.
type metaFields struct {
	maxVersions *uint32
	casRequired *bool
	dva         *time.Duration
	custom      map[string]*string // nil values: remove (patch only)
	hasCustom   bool
}

// parseMetaFields parses the fields of a metadata/ request. A null field
// resets it (vault/api's PutMetadata sends null for an unset
// custom_metadata, meaning "none"); in a patch (JSON merge patch) a null
// custom_metadata entry removes that entry.
func parseMetaFields(data map[string]any, patch bool) (*metaFields, error) {
	f := &metaFields{}
	if raw, ok := data["max_versions"]; ok {
		var n int64
		if raw != nil {
			var err error
			if n, err = logical.ParseIntRange("max_versions", raw, 0, math.MaxUint32); err != nil {
				return nil, err
			}
		}
		v := uint32(n)
		f.maxVersions = &v
	}
	if raw, ok := data["cas_required"]; ok {
		var v bool
		if raw != nil {
			var err error
			if v, err = logical.ParseBool("cas_required", raw); err != nil {
				return nil, err
			}
		}
		f.casRequired = &v
	}
	if raw, ok := data["delete_version_after"]; ok {
		var d time.Duration
		if raw != nil {
			var err error
			if d, err = logical.ParseDuration("delete_version_after", raw); err != nil {
				return nil, err
			}
		}
		if d < 0 {
			return nil, logical.InvalidRequest("delete_version_after: must not be negative, got %s; use 0s to clear the key's setting", d)
		}
		f.dva = &d
	}
	if raw, ok := data["custom_metadata"]; ok {
		f.hasCustom = true
		if raw != nil {
			m, err := parseStringMap("custom_metadata", raw, patch)
			if err != nil {
				return nil, err
			}
			f.custom = m
		}
	}
	return f, nil
}

func (f *metaFields) empty() bool {
	return f.maxVersions == nil && f.casRequired == nil && f.dva == nil && !f.hasCustom
}

// apply sets the fields on m. For a patch custom_metadata is merged into
// the existing map; for a write it replaces it.
func (f *metaFields) apply(m *keyMeta, patch bool) error {
	if f.maxVersions != nil {
		m.MaxVersions = *f.maxVersions
	}
	if f.casRequired != nil {
		m.CASRequired = *f.casRequired
	}
	if f.dva != nil {
		m.DeleteVersionAfter = *f.dva
	}
	if !f.hasCustom {
		return nil
	}
	out := map[string]string{}
	if patch && f.custom != nil {
		for k, v := range m.CustomMetadata {
			out[k] = v
		}
	}
	for k, v := range f.custom {
		if v == nil {
			delete(out, k)
			continue
		}
		out[k] = *v
	}
	if err := validateCustomMetadata(out); err != nil {
		return err
	}
	if len(out) == 0 {
		out = nil
	}
	m.CustomMetadata = out
	return nil
}

// validateCustomMetadata enforces Vault's limits on custom_metadata,
// reporting every violation at once.
func validateCustomMetadata(cm map[string]string) error {
	const prefix = "custom_metadata validation failed"
	if len(cm) > maxCustomMetadataKeys {
		return logical.InvalidRequest("%s: payload must contain at most %d keys, provided %d", prefix, maxCustomMetadataKeys, len(cm))
	}
	keys := make([]string, 0, len(cm))
	for k := range cm {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var errs []string
	for _, k := range keys {
		v := cm[k]
		if l := len(k); l == 0 || l > maxCustomMetadataKeyLen {
			errs = append(errs, fmt.Sprintf("length of key %q is %d but must be 0 < len(key) <= %d", k, l, maxCustomMetadataKeyLen))
		}
		if l := len(v); l == 0 || l > maxCustomMetadataValueLen {
			errs = append(errs, fmt.Sprintf("length of value for key %q is %d but must be 0 < len(value) <= %d", k, l, maxCustomMetadataValueLen))
		}
		if !printable(k) {
			errs = append(errs, fmt.Sprintf("key %q contains unprintable characters", k))
		}
		if !printable(v) {
			errs = append(errs, fmt.Sprintf("value for key %q contains unprintable characters", k))
		}
	}
	if len(errs) > 0 {
		return logical.InvalidRequest("%s: %s", prefix, strings.Join(errs, "; "))
	}
	return nil
}

func printable(s string) bool {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// casWarning is Vault's warning when a key's cas_required is set false
// while the mount requires cas anyway.
func casWarning(ctx context.Context, req *logical.Request, f *metaFields) (*logical.Response, error) {
	if f.casRequired == nil || *f.casRequired {
		return nil, nil
	}
	c, err := loadConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	if c.CASRequired {
		return &logical.Response{Warnings: []string{warnCASMandated}}, nil
	}
	return nil, nil
}

// metadataWrite creates the key's metadata if needed and sets the fields
// given. A write naming no field changes nothing, as in Vault.
func (b *V2) metadataWrite(ctx context.Context, req *logical.Request, key string) (*logical.Response, error) {
	f, err := parseMetaFields(req.Data, false)
	if err != nil {
		return nil, err
	}
	if f.empty() {
		return nil, nil
	}
	resp, err := casWarning(ctx, req, f)
	if err != nil {
		return nil, err
	}
	defer b.locks.lock(key)()
	m, err := loadMeta(ctx, req.Storage, key)
	if err != nil {
		return nil, err
	}
	if m == nil {
		now := b.now()
		m = &keyMeta{V: recordVersion, Key: key, CreatedTime: now, UpdatedTime: now, Versions: map[uint64]*versionMeta{}}
	}
	if err := f.apply(m, false); err != nil {
		return nil, err
	}
	return resp, saveMeta(ctx, req.Storage, m)
}

// metadataPatch merges the fields given into existing metadata (JSON merge
// patch: null resets a field or removes a custom_metadata entry).
func (b *V2) metadataPatch(ctx context.Context, req *logical.Request, key string) (*logical.Response, error) {
	f, err := parseMetaFields(req.Data, true)
	if err != nil {
		return nil, err
	}
	resp, err := casWarning(ctx, req, f)
	if err != nil {
		return nil, err
	}
	defer b.locks.lock(key)()
	m, err := loadMeta(ctx, req.Storage, key)
	if err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("%w: %q has no metadata to patch: write the key or its metadata first", logical.ErrNotFound, key)
	}
	if f.empty() {
		return resp, nil
	}
	if err := f.apply(m, true); err != nil {
		return nil, err
	}
	return resp, saveMeta(ctx, req.Storage, m)
}

// metadataDelete removes the key: its metadata and every version's data, in
// one transaction.
func (b *V2) metadataDelete(ctx context.Context, req *logical.Request, key string) (*logical.Response, error) {
	defer b.locks.lock(key)()
	m, err := loadMeta(ctx, req.Storage, key)
	if err != nil || m == nil {
		return nil, err
	}
	ops := []*storage.TxnOp{deleteOp(metadataKey(key))}
	for n := range m.Versions {
		ops = append(ops, deleteOp(versionKey(key, n)))
	}
	if err := req.Storage.Transaction(ctx, ops); err != nil {
		return nil, fmt.Errorf("delete %q: %w", key, err)
	}
	return nil, nil
}
