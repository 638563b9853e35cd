package tokens

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Token types (Vault's "type" field).
const (
	// TypeService tokens are stored: they have accessors, children, uses,
	// renewals and revocation.
	TypeService = "service"
	// TypeBatch tokens are not stored: the token is a signed record
	// (batch.go), valid until it expires on every cluster that trusts its
	// signer.
	TypeBatch = "batch"
)

// NumUsesRevocationPending marks a token whose last use has been consumed:
// the request that used it goes on, every later Lookup finds nothing, and the
// token is revoked when that request ends (or by the expiration manager).
const NumUsesRevocationPending = -1

// Entry is one token, with Vault's token fields.
type Entry struct {
	// ID is the token itself ("hvs." + random, or chosen by a root caller;
	// "hvb." + the signed record for a batch token).
	ID string
	// Accessor names the token without granting its powers ("" for a
	// batch token: it has none).
	Accessor string
	// Parent is the token that created this one; empty for an orphan. A
	// batch token read back by Lookup never shows it (its record holds the
	// parent's storage key, not its id): Orphan tells whether it has one.
	Parent string
	// Policies are sanitized: lower case, sorted, unique; "root" stands alone.
	Policies []string
	// Path is the creation path ("auth/token/create").
	Path string
	// Meta is free-form metadata given at creation.
	Meta map[string]string
	// DisplayName is "token", "token-<name>" or "root".
	DisplayName string
	// NumUses is the number of uses left; 0 is unlimited and
	// NumUsesRevocationPending marks a token whose last use is in progress.
	NumUses int
	// CreationTime is when the token was created.
	CreationTime time.Time
	// TTL is the token's TTL at creation (Vault's creation_ttl). On Create it
	// is the requested TTL (0: the system default) and is replaced with the
	// TTL granted.
	TTL time.Duration
	// ExplicitMaxTTL bounds the token's life whatever the renewals (0: none).
	ExplicitMaxTTL time.Duration
	// Period makes the token periodic: each renewal grants Period again, with
	// no bound but ExplicitMaxTTL.
	Period time.Duration
	// ExpireTime is when the token expires; zero means never.
	ExpireTime time.Time
	// Renewable tells whether Renew may extend the token.
	Renewable bool
	// Orphan is true when the token has no parent.
	Orphan bool
	// Type is TypeService or TypeBatch.
	Type string
	// EntityID is the identity entity the token belongs to, inherited from
	// the parent unless the token is an orphan.
	EntityID string
	// Role is the token role it was created through ("" for none).
	Role string
	// LastRenewal is when the token was last renewed (zero: never).
	LastRenewal time.Time
}

// RevocationPending reports whether the request holding e consumed the
// token's last use: the caller revokes the token once that request is done.
func (e *Entry) RevocationPending() bool { return e.NumUses == NumUsesRevocationPending }

// expired reports whether e has expired at now.
func (e *Entry) expired(now time.Time) bool {
	return !e.ExpireTime.IsZero() && !now.Before(e.ExpireTime)
}

// hasPolicy reports whether policies holds p.
func hasPolicy(policies []string, p string) bool { return slices.Contains(policies, p) }

// SanitizePolicies returns policies trimmed, lower-cased, without empty
// names or duplicates, sorted, with "default" added when addDefault. A list
// holding "root" becomes just ["root"]: root needs nothing else. The result
// is never nil.
func SanitizePolicies(policies []string, addDefault bool) []string {
	out := make([]string, 0, len(policies)+1)
	for _, p := range policies {
		p = strings.ToLower(strings.TrimSpace(p))
		if p == "" {
			continue
		}
		if p == "root" {
			return []string{"root"}
		}
		out = append(out, p)
	}
	if addDefault {
		out = append(out, "default")
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// The stored records. These formats are written to disk: change them only
// by adding a version.
const (
	// recordVersion is the version of every record this code writes.
	recordVersion = 1
)

// tokenRecord is the stored form of an Entry (key id/<hmac>). Durations are
// nanoseconds, times RFC 3339 with nanoseconds. Version 0 is the record of
// the first token store (id, accessor, policies, creation_time only): a root
// token that never expires.
type tokenRecord struct {
	V              int               `json:"v"`
	ID             string            `json:"id"`
	Accessor       string            `json:"accessor"`
	Parent         string            `json:"parent,omitempty"`
	Policies       []string          `json:"policies"`
	Path           string            `json:"path,omitempty"`
	Meta           map[string]string `json:"meta,omitempty"`
	DisplayName    string            `json:"display_name,omitempty"`
	NumUses        int               `json:"num_uses,omitempty"`
	CreationTime   time.Time         `json:"creation_time"`
	TTL            time.Duration     `json:"ttl_ns,omitempty"`
	ExplicitMaxTTL time.Duration     `json:"explicit_max_ttl_ns,omitempty"`
	Period         time.Duration     `json:"period_ns,omitempty"`
	ExpireTime     *time.Time        `json:"expire_time,omitempty"`
	Renewable      bool              `json:"renewable,omitempty"`
	Orphan         bool              `json:"orphan,omitempty"`
	Type           string            `json:"type,omitempty"`
	EntityID       string            `json:"entity_id,omitempty"`
	Role           string            `json:"role,omitempty"`
	LastRenewal    *time.Time        `json:"last_renewal,omitempty"`
}

// accessorRecord is the stored form of an accessor index entry
// (key accessor/<hmac>): the storage key suffix of its token.
type accessorRecord struct {
	V        int    `json:"v"`
	TokenKey string `json:"token_key"`
}

// linkRecord is the value of a parent/<parent>/<child> key.
type linkRecord struct {
	V int `json:"v"`
}

// saltRecord is the value of the salt key.
type saltRecord struct {
	V    int    `json:"v"`
	Salt []byte `json:"salt"`
}

func encodeEntry(e *Entry) ([]byte, error) {
	r := tokenRecord{
		V: recordVersion, ID: e.ID, Accessor: e.Accessor, Parent: e.Parent, Policies: e.Policies,
		Path: e.Path, Meta: e.Meta, DisplayName: e.DisplayName, NumUses: e.NumUses,
		CreationTime: e.CreationTime.UTC(), TTL: e.TTL, ExplicitMaxTTL: e.ExplicitMaxTTL, Period: e.Period,
		Renewable: e.Renewable, Orphan: e.Orphan, Type: e.Type, EntityID: e.EntityID, Role: e.Role,
	}
	if !e.ExpireTime.IsZero() {
		t := e.ExpireTime.UTC()
		r.ExpireTime = &t
	}
	if !e.LastRenewal.IsZero() {
		t := e.LastRenewal.UTC()
		r.LastRenewal = &t
	}
	return json.Marshal(r)
}

func decodeEntry(b []byte) (*Entry, error) {
	var r tokenRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decode token record: %w", err)
	}
	if r.V > recordVersion {
		return nil, fmt.Errorf("decode token record: version %d is newer than this Coffer understands (%d); upgrade Coffer", r.V, recordVersion)
	}
	if r.V < 0 {
		return nil, fmt.Errorf("decode token record: invalid version %d", r.V)
	}
	e := &Entry{
		ID: r.ID, Accessor: r.Accessor, Parent: r.Parent, Policies: r.Policies, Path: r.Path, Meta: r.Meta,
		DisplayName: r.DisplayName, NumUses: r.NumUses, CreationTime: r.CreationTime, TTL: r.TTL,
		ExplicitMaxTTL: r.ExplicitMaxTTL, Period: r.Period, Renewable: r.Renewable, Orphan: r.Orphan,
		Type: r.Type, EntityID: r.EntityID, Role: r.Role,
	}
	if r.ExpireTime != nil {
		e.ExpireTime = *r.ExpireTime
	}
	if r.LastRenewal != nil {
		e.LastRenewal = *r.LastRenewal
	}
	if r.V == 0 {
		// The first token store wrote root tokens only.
		e.Orphan = e.Parent == ""
		e.Path = "auth/token/root"
		e.DisplayName = "root"
	}
	if e.Type == "" {
		e.Type = TypeService
	}
	if e.Policies == nil {
		e.Policies = []string{}
	}
	return e, nil
}

func decodeVersioned(what string, b []byte, v any, version func() int) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode %s record: %w", what, err)
	}
	if n := version(); n != recordVersion {
		if n > recordVersion {
			return fmt.Errorf("decode %s record: version %d is newer than this Coffer understands (%d); upgrade Coffer", what, n, recordVersion)
		}
		return fmt.Errorf("decode %s record: invalid version %d", what, n)
	}
	return nil
}
