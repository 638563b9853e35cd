package tokens

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/cofferhq/coffer/logical"
	"github.com/cofferhq/coffer/storage"
)

// Token roles (auth/token/roles/<name>, auth/token/create/<name>).
//
// A role is replicated configuration, kept in Options.RoleStorage (core puts
// it under core/token-roles/, a replicated prefix), so a role written on the
// primary creates tokens on every cluster; the tokens themselves stay local.
// Record, JSON:
//
//	<name>  {"v":1,"allowed_policies":[...],"disallowed_policies":[...],
//	         "orphan":B,"renewable":B,"path_suffix":"...","token_period_ns":NS,
//	         "token_explicit_max_ttl_ns":NS,"token_no_default_policy":B,
//	         "token_num_uses":N,"token_type":"default-service"}

const roleRecordVersion = 1

type roleRecord struct {
	V                    int           `json:"v"`
	AllowedPolicies      []string      `json:"allowed_policies,omitempty"`
	DisallowedPolicies   []string      `json:"disallowed_policies,omitempty"`
	Orphan               bool          `json:"orphan,omitempty"`
	Renewable            bool          `json:"renewable"`
	PathSuffix           string        `json:"path_suffix,omitempty"`
	TokenPeriod          time.Duration `json:"token_period_ns,omitempty"`
	TokenExplicitMaxTTL  time.Duration `json:"token_explicit_max_ttl_ns,omitempty"`
	TokenNoDefaultPolicy bool          `json:"token_no_default_policy,omitempty"`
	TokenNumUses         int64         `json:"token_num_uses,omitempty"`
	TokenType            string        `json:"token_type"`
}

var pathSuffixRE = regexp.MustCompile(`^[a-zA-Z0-9_.-]+$`)

func (b *backend) roleStorage() (logical.Storage, error) {
	if b.s.opts.RoleStorage == nil {
		return nil, fmt.Errorf("%w: token roles are not configured on this store", logical.ErrUnsupportedPath)
	}
	return b.s.opts.RoleStorage, nil
}

func (b *backend) readRole(ctx context.Context, name string) (*roleRecord, error) {
	st, err := b.roleStorage()
	if err != nil {
		return nil, err
	}
	e, err := st.Get(ctx, name)
	if err != nil || e == nil {
		return nil, err
	}
	var r roleRecord
	if err := json.Unmarshal(e.Value, &r); err != nil {
		return nil, fmt.Errorf("decode token role %q: %w", name, err)
	}
	if r.V != roleRecordVersion {
		return nil, fmt.Errorf("token role %q: record version %d is not %d; upgrade Coffer", name, r.V, roleRecordVersion)
	}
	return &r, nil
}

// handleRole serves roles/ (LIST) and roles/<name> (read, write, delete).
func (b *backend) handleRole(ctx context.Context, req *logical.Request, f *fields) (*logical.Response, error) {
	name := strings.TrimPrefix(req.Path, "roles")
	name = strings.Trim(name, "/")
	if name == "" {
		if req.Operation != logical.ListOperation && req.Operation != logical.ReadOperation {
			return nil, fmt.Errorf("%w: %s on auth/token/roles; LIST it, or name a role", logical.ErrUnsupportedOperation, req.Operation)
		}
		return b.listRoles(ctx)
	}
	if !logical.NameOK(name) {
		return nil, badRequest("invalid role name %q: use letters, digits and '_', and '-' or '.' anywhere but first or last", name)
	}
	switch req.Operation {
	case logical.ReadOperation:
		return b.getRole(ctx, name)
	case logical.CreateOperation, logical.UpdateOperation:
		return b.writeRole(ctx, name, f)
	case logical.DeleteOperation:
		st, err := b.roleStorage()
		if err != nil {
			return nil, err
		}
		return nil, st.Delete(ctx, name)
	}
	return nil, fmt.Errorf("%w: %s on auth/token/roles/%s", logical.ErrUnsupportedOperation, req.Operation, name)
}

func (b *backend) listRoles(ctx context.Context) (*logical.Response, error) {
	st, err := b.roleStorage()
	if err != nil {
		return nil, err
	}
	keys, err := st.List(ctx, "")
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, logical.ErrNotFound
	}
	return &logical.Response{Data: map[string]any{"keys": keys}}, nil
}

func (b *backend) getRole(ctx context.Context, name string) (*logical.Response, error) {
	r, err := b.readRole(ctx, name)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, logical.ErrNotFound
	}
	secs := func(d time.Duration) int64 { return int64(d / time.Second) }
	return &logical.Response{Data: map[string]any{
		"name":                     name,
		"allowed_policies":         nonNil(r.AllowedPolicies),
		"disallowed_policies":      nonNil(r.DisallowedPolicies),
		"allowed_policies_glob":    []string{},
		"disallowed_policies_glob": []string{},
		"allowed_entity_aliases":   []string{},
		"orphan":                   r.Orphan,
		"renewable":                r.Renewable,
		"path_suffix":              r.PathSuffix,
		"token_period":             secs(r.TokenPeriod),
		"period":                   secs(r.TokenPeriod),
		"token_explicit_max_ttl":   secs(r.TokenExplicitMaxTTL),
		"explicit_max_ttl":         secs(r.TokenExplicitMaxTTL),
		"token_no_default_policy":  r.TokenNoDefaultPolicy,
		"token_num_uses":           r.TokenNumUses,
		"token_type":               r.TokenType,
		"token_bound_cidrs":        []string{},
	}}, nil
}

func nonNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// writeRole creates or updates a role: an update changes the fields it
// names, as in Vault.
func (b *backend) writeRole(ctx context.Context, name string, f *fields) (*logical.Response, error) {
	st, err := b.roleStorage()
	if err != nil {
		return nil, err
	}
	r, err := b.readRole(ctx, name)
	if err != nil {
		return nil, err
	}
	if r == nil {
		r = &roleRecord{V: roleRecordVersion, Renewable: true, TokenType: "default-service"}
	}
	if err := applyRoleFields(r, f); err != nil {
		return nil, err
	}
	raw, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	return nil, st.Put(ctx, &storage.Entry{Key: name, Value: raw})
}

// applyRoleFields sets the fields f names on r.
func applyRoleFields(r *roleRecord, f *fields) error {
	if l, ok, err := read(f, "allowed_policies", logical.FieldStrings); err != nil {
		return err
	} else if ok {
		r.AllowedPolicies = SanitizePolicies(l, false)
	}
	if l, ok, err := read(f, "disallowed_policies", logical.FieldStrings); err != nil {
		return err
	} else if ok {
		r.DisallowedPolicies = SanitizePolicies(l, false)
	}
	for _, name := range []string{"allowed_policies_glob", "disallowed_policies_glob", "allowed_entity_aliases", "token_bound_cidrs"} {
		if l, ok, err := read(f, name, logical.FieldStrings); err != nil {
			return err
		} else if ok && len(l) > 0 {
			return badRequest("%s is not supported by Coffer's token roles; list the policies in allowed_policies or disallowed_policies", name)
		}
	}
	boolField := func(name string, dst *bool) error {
		v, ok, err := read(f, name, logical.FieldBool)
		if ok {
			*dst = v
		}
		return err
	}
	for name, dst := range map[string]*bool{"orphan": &r.Orphan, "renewable": &r.Renewable, "token_no_default_policy": &r.TokenNoDefaultPolicy} {
		if err := boolField(name, dst); err != nil {
			return err
		}
	}
	if s, ok, err := read(f, "path_suffix", logical.FieldString); err != nil {
		return err
	} else if ok {
		if s != "" && (!pathSuffixRE.MatchString(s) || strings.Contains(s, "..")) {
			return badRequest("path_suffix %q: use letters, digits, '_', '-' and '.'", s)
		}
		r.PathSuffix = s
	}
	if err := durationField(f, &r.TokenPeriod, "token_period", "period"); err != nil {
		return err
	}
	if err := durationField(f, &r.TokenExplicitMaxTTL, "token_explicit_max_ttl", "explicit_max_ttl"); err != nil {
		return err
	}
	if n, ok, err := read(f, "token_num_uses", logical.FieldInt); err != nil {
		return err
	} else if ok {
		if n < 0 {
			return badRequest("token_num_uses cannot be negative")
		}
		r.TokenNumUses = n
	}
	if t, ok, err := read(f, "token_type", logical.FieldString); err != nil {
		return err
	} else if ok {
		switch t {
		case "", "default":
			t = "default-service"
		case "service", "batch", "default-service", "default-batch":
		default:
			return badRequest("invalid 'token_type' value %q: give service, batch, default-service or default-batch", t)
		}
		r.TokenType = t
	}
	if r.TokenType == "batch" && (r.TokenPeriod != 0 || r.TokenNumUses != 0 || r.TokenExplicitMaxTTL != 0) {
		return badRequest("a role issuing batch tokens cannot set token_period, token_num_uses or token_explicit_max_ttl")
	}
	return nil
}

// durationField reads name (or its legacy alias) into dst when given.
func durationField(f *fields, dst *time.Duration, name, legacy string) error {
	d, ok, err := f.duration(name)
	if err != nil {
		return err
	}
	ld, lok, err := f.duration(legacy)
	if err != nil {
		return err
	}
	switch {
	case ok:
		*dst = d
	case lok:
		*dst = ld
	}
	if *dst < 0 {
		return badRequest("%s must be positive", name)
	}
	return nil
}

// createWithRole serves create/<role>: the role decides the policies (within
// its allowed list, or the parent's when it has none, never a disallowed
// one), orphan, renewable, period, explicit max TTL and the token path.
func (b *backend) createWithRole(ctx context.Context, req *logical.Request, f *fields) (*logical.Response, error) {
	name := strings.TrimPrefix(req.Path, "create/")
	r, err := b.readRole(ctx, name)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, badRequest("unknown role %s: create it first at auth/token/roles/%s", name, name)
	}
	return b.createWith(ctx, req, f, func(cr *createRequest, parent *Entry) (*Entry, error) {
		return cr.roleEntry(r, name, parent)
	})
}

// roleEntry is the token parent creates through role r.
func (cr *createRequest) roleEntry(r *roleRecord, name string, parent *Entry) (*Entry, error) {
	isRoot := hasPolicy(parent.Policies, "root")
	if cr.id != "" && !isRoot {
		return nil, badRequest("root privileges required to specify token id; omit id or create the token with a root token")
	}
	policies, err := cr.rolePolicies(r, parent)
	if err != nil {
		return nil, err
	}
	path := "auth/token/create/" + name
	if r.PathSuffix != "" {
		path += "/" + r.PathSuffix
	}
	e := &Entry{
		ID: cr.id, Parent: parent.ID, Path: path, Meta: cr.meta, DisplayName: "token",
		Policies: policies, NumUses: int(cr.numUses), TTL: cr.ttl, Renewable: cr.renewable && r.Renewable,
		ExplicitMaxTTL: cr.explicitMax, Period: cr.period, Role: name,
	}
	if cr.displayName != "" {
		e.DisplayName = strings.TrimSuffix(displayNameSanitize.ReplaceAllString("token-"+cr.displayName, "-"), "-")
	}
	if e.NumUses == 0 {
		e.NumUses = int(r.TokenNumUses)
	}
	switch {
	case r.TokenPeriod > 0:
		e.Period = r.TokenPeriod
	case cr.period > 0 && !isRoot:
		return nil, badRequest("root privileges required to create periodic token; set token_period on the role instead")
	}
	if r.TokenExplicitMaxTTL > 0 && (e.ExplicitMaxTTL == 0 || r.TokenExplicitMaxTTL < e.ExplicitMaxTTL) {
		e.ExplicitMaxTTL = r.TokenExplicitMaxTTL
	}
	switch {
	case r.Orphan:
		e.Parent = ""
	case cr.noParent && !isRoot:
		return nil, badRequest("root privileges required to create orphan token with no_parent=true; use a role with orphan=true")
	case cr.noParent:
		e.Parent = ""
	}
	if e.Parent != "" {
		e.EntityID = parent.EntityID
	}
	typ, err := roleTokenType(r.TokenType, cr.tokenType)
	if err != nil {
		return nil, err
	}
	if typ == TypeBatch {
		e.Type = TypeBatch
	}
	return e, nil
}

// rolePolicies: with allowed_policies, the request's policies must be among
// them ("default" always allowed) and none asks for the role's; without,
// the parent's (or a subset of them). Disallowed ones are refused or, when
// inherited, dropped.
func (cr *createRequest) rolePolicies(r *roleRecord, parent *Entry) ([]string, error) {
	asked := SanitizePolicies(cr.policies, false)
	var base []string
	switch {
	case len(r.AllowedPolicies) > 0:
		for _, p := range asked {
			if p != "default" && !slices.Contains(r.AllowedPolicies, p) {
				return nil, badRequest("token policies (%q) must be subset of the role's allowed policies (%q)", asked, r.AllowedPolicies)
			}
		}
		base = asked
		if len(base) == 0 {
			base = r.AllowedPolicies
		}
	default:
		held := SanitizePolicies(parent.Policies, false)
		if len(asked) == 0 {
			base = held
		} else if !hasPolicy(held, "root") {
			for _, p := range asked {
				if p != "default" && !hasPolicy(held, p) {
					return nil, badRequest("token policies (%q) must be subset of parent token's policies (%q)", asked, held)
				}
			}
			base = asked
		} else {
			base = asked
		}
	}
	for _, p := range asked {
		if slices.Contains(r.DisallowedPolicies, p) {
			return nil, badRequest("token policies (%q) contain disallowed policies (%q)", asked, r.DisallowedPolicies)
		}
	}
	var out []string
	for _, p := range base {
		if !slices.Contains(r.DisallowedPolicies, p) {
			out = append(out, p)
		}
	}
	noDefault := cr.noDefault || r.TokenNoDefaultPolicy || slices.Contains(r.DisallowedPolicies, "default")
	out = SanitizePolicies(out, !noDefault)
	if noDefault {
		out = deleteString(out, "default")
	}
	if hasPolicy(out, "root") && !hasPolicy(parent.Policies, "root") {
		return nil, badRequest("root tokens may not be created without parent token being root")
	}
	return out, nil
}

// roleTokenType is the token type of a create through a role of type
// roleType, asked asked ("" when not given).
func roleTokenType(roleType, asked string) (string, error) {
	switch roleType {
	case "service", "batch":
		if asked != "" && asked != "default" && asked != roleType {
			return "", badRequest("token type %q is not allowed by this role, which issues %s tokens", asked, roleType)
		}
		return roleType, nil
	case "default-batch":
		if asked == "" || asked == "default" {
			return TypeBatch, nil
		}
	default:
		if asked == "" || asked == "default" {
			return TypeService, nil
		}
	}
	return asked, nil
}
