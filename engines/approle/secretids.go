package approle

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/cofferhq/coffer/engines/internal/tokenfields"
	"github.com/cofferhq/coffer/logical"
)

// secretIDFields are the fields of a generate; customSecretIDFields add the
// secret id itself.
var (
	secretIDFields = map[string]bool{
		"metadata": true, "cidr_list": true, "token_bound_cidrs": true,
		"ttl": true, "num_uses": true,
	}
	customSecretIDFields = map[string]bool{
		"metadata": true, "cidr_list": true, "token_bound_cidrs": true,
		"ttl": true, "num_uses": true, "secret_id": true,
	}
)

// secretIDRequest is a parsed generate.
type secretIDRequest struct {
	secret     string
	metadata   map[string]string
	cidrs      []string
	tokenCIDRs []string
	ttl        *time.Duration
	numUses    *int64
	warnings   []string
}

func parseSecretIDRequest(data map[string]any, custom bool) (*secretIDRequest, error) {
	allowed := secretIDFields
	if custom {
		allowed = customSecretIDFields
	}
	get, warnings := getter(data, allowed)
	sr := &secretIDRequest{warnings: warnings}
	var err error
	if v, ok := get("metadata"); ok {
		if sr.metadata, err = parseMetadata(v); err != nil {
			return nil, err
		}
	}
	if v, ok := get("cidr_list"); ok {
		if sr.cidrs, err = tokenfields.ParseCIDRs("cidr_list", v); err != nil {
			return nil, err
		}
	}
	if v, ok := get("token_bound_cidrs"); ok {
		if sr.tokenCIDRs, err = tokenfields.ParseCIDRs("token_bound_cidrs", v); err != nil {
			return nil, err
		}
	}
	if sr.ttl, err = tokenfields.Optional(get, "ttl", tokenfields.ParseTTL); err != nil {
		return nil, err
	}
	if sr.numUses, err = tokenfields.Optional(get, "num_uses", logical.ParseInt); err != nil {
		return nil, err
	}
	if custom {
		v, _ := get("secret_id")
		s, err := logical.ParseSecret("secret_id", v)
		switch {
		case v == nil || (err == nil && s == ""):
			return nil, logical.InvalidRequest("missing secret_id")
		case err != nil:
			return nil, err
		case len(s) > maxNameLen:
			return nil, logical.InvalidRequest("secret_id: longer than the maximum of %d bytes", maxNameLen)
		}
		sr.secret = s
	}
	return sr, nil
}

// parseMetadata reads a secret id's metadata: Vault's JSON-encoded string
// of string values, or (for convenience) the object itself.
func parseMetadata(v any) (map[string]string, error) {
	s, isStr := v.(string)
	if !isStr {
		return logical.ParseStringMap("metadata", v)
	}
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var raw map[string]any
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return nil, logical.InvalidRequest("metadata: expected a JSON object of strings encoded as a string, e.g. \"{\\\"env\\\":\\\"prod\\\"}\": %v", err)
	}
	return logical.ParseStringMap("metadata", raw)
}

// check applies the role's limits to the request (Vault's rules and
// messages) and returns the secret id's use count and TTL.
func (sr *secretIDRequest) check(r *role) (int, time.Duration, error) {
	if !r.BindSecretID {
		return 0, 0, logical.InvalidRequest("bind_secret_id is not set on the role")
	}
	if !tokenfields.Subset(sr.cidrs, r.SecretIDBoundCIDRs) {
		return 0, 0, logical.InvalidRequest("failed to verify subset relationship between CIDR blocks on the role %q and CIDR blocks on the secret ID %q", r.SecretIDBoundCIDRs, sr.cidrs)
	}
	if !tokenfields.Subset(sr.tokenCIDRs, r.TokenBoundCIDRs) {
		return 0, 0, logical.InvalidRequest("failed to verify subset relationship between the token CIDR blocks on the role %q and the token CIDR blocks on the secret ID %q", r.TokenBoundCIDRs, sr.tokenCIDRs)
	}
	numUses, ttl := r.SecretIDNumUses, r.SecretIDTTL
	if sr.numUses != nil {
		n := *sr.numUses
		switch {
		case n < 0:
			return 0, 0, logical.InvalidRequest("num_uses cannot be negative")
		case r.SecretIDNumUses > 0 && (n == 0 || n > int64(r.SecretIDNumUses)):
			return 0, 0, logical.InvalidRequest("num_uses cannot be higher than the role's secret_id_num_uses")
		}
		numUses = int(n)
	}
	if sr.ttl != nil {
		if r.SecretIDTTL > 0 && (*sr.ttl == 0 || *sr.ttl > r.SecretIDTTL) {
			return 0, 0, logical.InvalidRequest("ttl cannot be longer than the role's secret_id_ttl")
		}
		ttl = *sr.ttl
	}
	return numUses, ttl, nil
}

// generate issues a secret id (random, or the caller's for
// custom-secret-id) with its accessor. The response is the only place a
// secret id ever appears.
func (b *Backend) generate(ctx context.Context, req *logical.Request, name string, custom bool) (*logical.Response, error) {
	sr, err := parseSecretIDRequest(req.Data, custom)
	if err != nil {
		return nil, err
	}
	unlock := b.locks.lock(name)
	defer unlock()
	r, err := mustRole(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	numUses, ttl, err := sr.check(r)
	if err != nil {
		return nil, err
	}
	if !custom {
		sr.secret = uuid.NewString()
	}
	key, err := b.localSalt(ctx, req.Storage, true)
	if err != nil {
		return nil, err
	}
	h := mac(key, sr.secret)
	if old, err := loadSecretID(ctx, req.Storage, secretIDKey(r.UID, h)); err != nil {
		return nil, err
	} else if old != nil {
		return nil, logical.InvalidRequest("SecretID is already registered")
	}
	now := b.now().UTC()
	rec := &secretID{
		V: recordVersion, Accessor: uuid.NewString(), NumUses: numUses, TTL: ttl,
		CreationTime: now, LastUpdatedTime: now,
		Metadata: sr.metadata, CIDRList: sr.cidrs, TokenBoundCIDRs: sr.tokenCIDRs,
	}
	if ttl > 0 {
		rec.ExpirationTime = now.Add(ttl)
	}
	put, err := putOp(secretIDKey(r.UID, h), rec)
	if err != nil {
		return nil, err
	}
	acc, err := putOp(accessorKey(mac(key, rec.Accessor)), &accessorEntry{V: recordVersion, RoleUID: r.UID, SecretIDHMAC: h})
	if err != nil {
		return nil, err
	}
	if err := req.Storage.Transaction(ctx, []*txnOp{put, acc}); err != nil {
		return nil, fmt.Errorf("write secret id of role %q: %w", name, err)
	}
	return &logical.Response{Data: map[string]any{
		"secret_id":          sr.secret,
		"secret_id_accessor": rec.Accessor,
		"secret_id_ttl":      int64(ttl / time.Second),
		"secret_id_num_uses": numUses,
	}, Warnings: sr.warnings}, nil
}

// listSecretIDs answers the accessors of the role's secret ids held by this
// cluster, or 404 when there is none.
func (b *Backend) listSecretIDs(ctx context.Context, req *logical.Request, name string) (*logical.Response, error) {
	r, err := mustRole(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	folder := secretIDPrefix + r.UID + "/"
	hashes, err := req.Storage.List(ctx, folder)
	if err != nil {
		return nil, fmt.Errorf("list secret ids of role %q: %w", name, err)
	}
	keys := []string{}
	for _, h := range hashes {
		rec, err := loadSecretID(ctx, req.Storage, folder+h)
		if err != nil {
			return nil, err
		}
		if rec != nil {
			keys = append(keys, rec.Accessor)
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: no secret ids for role %q", logical.ErrNotFound, name)
	}
	sort.Strings(keys)
	return &logical.Response{Data: map[string]any{"keys": keys}}, nil
}

// bySecret finds a role's secret id by its value; rec is nil when this
// cluster holds no such secret id.
func (b *Backend) bySecret(ctx context.Context, req *logical.Request, r *role) (rec *secretID, key, accKey string, err error) {
	get, _ := getter(req.Data, map[string]bool{"secret_id": true})
	v, _ := get("secret_id")
	secret, err := logical.ParseSecret("secret_id", v)
	if v == nil || (err == nil && secret == "") {
		return nil, "", "", logical.InvalidRequest("missing secret_id")
	} else if err != nil {
		return nil, "", "", err
	}
	salt, err := b.localSalt(ctx, req.Storage, false)
	if err != nil || salt == nil {
		return nil, "", "", err
	}
	key = secretIDKey(r.UID, mac(salt, secret))
	if rec, err = loadSecretID(ctx, req.Storage, key); err != nil || rec == nil {
		return nil, "", "", err
	}
	return rec, key, accessorKey(mac(salt, rec.Accessor)), nil
}

// errNoAccessor is Vault's answer for an accessor this cluster does not
// hold (404).
func errNoAccessor(accessor string) error {
	return logical.Errorf(404, "failed to find accessor entry for secret_id_accessor: %q", accessor)
}

// byAccessor finds a role's secret id by its accessor.
func (b *Backend) byAccessor(ctx context.Context, req *logical.Request, r *role) (rec *secretID, key, accKey string, err error) {
	get, _ := getter(req.Data, map[string]bool{"secret_id_accessor": true})
	v, ok := get("secret_id_accessor")
	accessor, err := logical.ParseString("secret_id_accessor", v)
	if !ok || (err == nil && accessor == "") {
		return nil, "", "", logical.InvalidRequest("missing secret_id_accessor")
	} else if err != nil {
		return nil, "", "", err
	}
	salt, err := b.localSalt(ctx, req.Storage, false)
	if err != nil {
		return nil, "", "", err
	}
	if salt == nil {
		return nil, "", "", errNoAccessor(accessor)
	}
	accKey = accessorKey(mac(salt, accessor))
	a, err := loadAccessor(ctx, req.Storage, mac(salt, accessor))
	if err != nil {
		return nil, "", "", err
	}
	if a == nil || a.RoleUID != r.UID {
		return nil, "", "", errNoAccessor(accessor)
	}
	key = secretIDKey(r.UID, a.SecretIDHMAC)
	rec, err = loadSecretID(ctx, req.Storage, key)
	return rec, key, accKey, err
}

type finder func(context.Context, *logical.Request, *role) (*secretID, string, string, error)

// lookup answers a secret id's properties; nothing (204) when this cluster
// holds no such secret id, as Vault answers.
func (b *Backend) lookup(ctx context.Context, req *logical.Request, name string, find finder) (*logical.Response, error) {
	r, err := mustRole(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	rec, _, _, err := find(ctx, req, r)
	if err != nil || rec == nil {
		return nil, err
	}
	return &logical.Response{Data: rec.data()}, nil
}

// destroy removes a secret id and its accessor in one transaction;
// destroying a missing secret id is not an error.
func (b *Backend) destroy(ctx context.Context, req *logical.Request, name string, find finder) (*logical.Response, error) {
	unlock := b.locks.lock(name)
	defer unlock()
	r, err := mustRole(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	rec, key, accKey, err := find(ctx, req, r)
	if err != nil {
		return nil, err
	}
	ops := []*txnOp{}
	if rec != nil {
		ops = append(ops, deleteOp(key))
	}
	if accKey != "" {
		ops = append(ops, deleteOp(accKey))
	}
	if len(ops) == 0 {
		return nil, nil
	}
	if err := req.Storage.Transaction(ctx, ops); err != nil {
		return nil, fmt.Errorf("destroy secret id of role %q: %w", name, err)
	}
	return nil, nil
}

func (b *Backend) lookupSecretID(ctx context.Context, req *logical.Request, name string) (*logical.Response, error) {
	return b.lookup(ctx, req, name, b.bySecret)
}

func (b *Backend) destroySecretID(ctx context.Context, req *logical.Request, name string) (*logical.Response, error) {
	return b.destroy(ctx, req, name, b.bySecret)
}

func (b *Backend) lookupAccessor(ctx context.Context, req *logical.Request, name string) (*logical.Response, error) {
	return b.lookup(ctx, req, name, b.byAccessor)
}

func (b *Backend) destroyAccessor(ctx context.Context, req *logical.Request, name string) (*logical.Response, error) {
	return b.destroy(ctx, req, name, b.byAccessor)
}

// data is a secret id's lookup answer in Vault's shape. It never holds the
// secret id.
func (s *secretID) data() map[string]any {
	list := func(l []string) []string {
		if l == nil {
			return []string{}
		}
		return slices.Clone(l)
	}
	meta := map[string]string{}
	for k, v := range s.Metadata {
		meta[k] = v
	}
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
	return map[string]any{
		"cidr_list":          list(s.CIDRList),
		"creation_time":      ts(s.CreationTime),
		"expiration_time":    ts(s.ExpirationTime),
		"last_updated_time":  ts(s.LastUpdatedTime),
		"metadata":           meta,
		"secret_id_accessor": s.Accessor,
		"secret_id_num_uses": s.NumUses,
		"secret_id_ttl":      int64(s.TTL / time.Second),
		"token_bound_cidrs":  list(s.TokenBoundCIDRs),
	}
}

// expired reports whether the secret id's TTL has run out at now.
func (s *secretID) expired(now time.Time) bool {
	return !s.ExpirationTime.IsZero() && !now.Before(s.ExpirationTime)
}
