package tokens

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/cofferhq/coffer/logical"
)

// Backend returns the token auth method, to be mounted at auth/token/. It
// works on the store's own storage and ignores req.Storage; the caller's
// token is req.ClientToken. See the package documentation for the
// capabilities the router should check.
func (s *Store) Backend() logical.Backend {
	b := &backend{s: s}
	b.table = b.routes()
	return b
}

type backend struct {
	s     *Store
	table map[string]map[logical.Operation]handler
}

type handler func(ctx context.Context, req *logical.Request, f *fields) (*logical.Response, error)

// routes lists the paths under auth/token/ and the operations each accepts.
// Writes arrive as update (ExistenceCheck says every path exists); create is
// accepted as its synonym.
func (b *backend) routes() map[string]map[logical.Operation]handler {
	update := func(h handler) map[logical.Operation]handler {
		return map[logical.Operation]handler{logical.UpdateOperation: h}
	}
	readOrUpdate := func(h handler) map[logical.Operation]handler {
		return map[logical.Operation]handler{logical.ReadOperation: h, logical.UpdateOperation: h}
	}
	return map[string]map[logical.Operation]handler{
		"create": update(func(ctx context.Context, r *logical.Request, f *fields) (*logical.Response, error) {
			return b.create(ctx, r, f, false)
		}),
		"create-orphan": update(func(ctx context.Context, r *logical.Request, f *fields) (*logical.Response, error) {
			return b.create(ctx, r, f, true)
		}),
		"lookup":          readOrUpdate(b.lookup),
		"lookup-self":     readOrUpdate(b.lookupSelf),
		"lookup-accessor": update(b.lookupAccessor),
		"renew":           update(b.renew),
		"renew-self":      update(b.renewSelf),
		"renew-accessor":  update(b.renewAccessor),
		"revoke":          update(b.revoke),
		"revoke-self":     update(b.revokeSelf),
		"revoke-accessor": update(b.revokeAccessor),
		"revoke-orphan":   update(b.revokeOrphan),
		"accessors":       {logical.ListOperation: b.listAccessors},
		"accessors/":      {logical.ListOperation: b.listAccessors},
	}
}

// listAccessors serves LIST auth/token/accessors (sudo, as in Vault: the
// ACL's sudo list holds the path).
func (b *backend) listAccessors(ctx context.Context, _ *logical.Request, _ *fields) (*logical.Response, error) {
	keys, err := b.s.ListAccessors(ctx)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]any{"keys": keys}}, nil
}

// ExistenceCheck reports true for every path: Vault authorizes every write
// to the token backend as "update" (it has no existence check outside
// roles/), and Coffer's policies must mean the same.
// Roles are the exception, as in Vault: writing a new role needs "create".
func (b *backend) ExistenceCheck(ctx context.Context, req *logical.Request) (bool, error) {
	name, ok := strings.CutPrefix(req.Path, "roles/")
	if !ok || name == "" || b.s.opts.RoleStorage == nil {
		return true, nil
	}
	r, err := b.readRole(ctx, name)
	return r != nil, err
}

// HandleRequest serves one request under auth/token/.
func (b *backend) HandleRequest(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	ops, ok := b.table[req.Path]
	switch {
	case ok:
	case req.Path == "roles" || strings.HasPrefix(req.Path, "roles/"):
		return b.withFields(ctx, req, b.handleRole)
	case strings.HasPrefix(req.Path, "create/") && req.Operation != logical.ReadOperation:
		return b.withFields(ctx, req, b.createWithRole)
	default:
		return nil, fmt.Errorf("%w: auth/token/%s; the token auth method serves accessors (LIST), create, create/<role>, create-orphan, roles/<role>, lookup, lookup-self, lookup-accessor, renew, renew-self, renew-accessor, revoke, revoke-self, revoke-accessor and revoke-orphan", logical.ErrUnsupportedPath, req.Path)
	}
	op := req.Operation
	if op == logical.CreateOperation {
		op = logical.UpdateOperation
	}
	h, ok := ops[op]
	if !ok {
		return nil, fmt.Errorf("%w: %s on auth/token/%s; use POST", logical.ErrUnsupportedOperation, req.Operation, req.Path)
	}
	return b.withFields(ctx, req, h)
}

// withFields runs h with the request's fields and adds the warning naming
// the ones h did not read.
func (b *backend) withFields(ctx context.Context, req *logical.Request, h handler) (*logical.Response, error) {
	f := newFields(req.Data)
	resp, err := h(ctx, req, f)
	if err != nil {
		return nil, err
	}
	if w := f.unknown(); w != "" {
		if resp == nil {
			resp = &logical.Response{}
		}
		resp.Warnings = append(resp.Warnings, w)
	}
	return resp, nil
}

func badRequest(format string, args ...any) error {
	return logical.Errorf(http.StatusBadRequest, format, args...)
}

// errBadToken is Vault's answer to a lookup of an invalid token.
var errBadToken = logical.Errorf(http.StatusForbidden, "bad token")

// storeError turns a store error into the status and message Vault gives.
func storeError(err error) error {
	switch {
	case errors.Is(err, ErrTokenNotFound):
		return badRequest("token not found")
	case errors.Is(err, ErrNotRenewable), errors.Is(err, ErrPastMaxTTL),
		errors.Is(err, ErrDuplicateID), errors.Is(err, ErrInvalidEntry):
		return badRequest("%s", err.Error())
	case errors.Is(err, ErrParentNotFound):
		return badRequest("parent token lookup failed: no parent found; authenticate with a valid token")
	case errors.Is(err, ErrBatchNotRenewable):
		return badRequest("batch tokens cannot be renewed: a batch token lives until its expire_time; create a new one before then")
	case errors.Is(err, ErrBatchNotRevocable):
		return badRequest("batch tokens cannot be revoked: a batch token is valid until its expire_time; to cut it off sooner, change or delete the policies it names, or revoke its parent when it has one")
	case errors.Is(err, ErrNoBatchKey):
		return badRequest("%s", err.Error())
	}
	return err
}

var displayNameSanitize = regexp.MustCompile(`[^a-zA-Z0-9-]`)

// create serves create and create-orphan: it reads the request, decides the
// new token's properties from it and from the caller's token (the parent),
// stores the token and answers with its auth section.
func (b *backend) create(ctx context.Context, req *logical.Request, f *fields, orphan bool) (*logical.Response, error) {
	return b.createWith(ctx, req, f, func(cr *createRequest, parent *Entry) (*Entry, error) {
		return cr.entry("auth/token/"+req.Path, parent, orphan)
	})
}

// createWith reads and checks a create request, finds the parent, lets
// decide make the entry, and stores the token.
func (b *backend) createWith(ctx context.Context, req *logical.Request, f *fields, decide func(*createRequest, *Entry) (*Entry, error)) (*logical.Response, error) {
	cr, err := readCreateRequest(f)
	if err != nil {
		return nil, err
	}
	if err := cr.check(); err != nil {
		return nil, err
	}
	parent, err := b.creator(ctx, req.ClientToken)
	if err != nil {
		return nil, err
	}
	e, err := decide(cr, parent)
	if err != nil {
		return nil, err
	}
	warnings, err := b.s.create(ctx, e)
	if err != nil {
		return nil, storeError(err)
	}
	return &logical.Response{Auth: authFor(e, e.TTL), Warnings: warnings}, nil
}

// createRequest holds the parameters of auth/token/create.
type createRequest struct {
	id, displayName          string
	policies                 []string
	meta                     map[string]string
	noParent, noDefault      bool
	renewable                bool
	ttl, explicitMax, period time.Duration
	numUses                  int64
	tokenType, entityAlias   string
}

// readCreateRequest reads the parameters of a create, always in this order; the
// first unreadable one is the error.
func readCreateRequest(f *fields) (*createRequest, error) {
	var cr createRequest
	var err error
	if cr.id, err = f.str("id"); err != nil {
		return nil, err
	}
	if cr.policies, err = f.strList("policies"); err != nil {
		return nil, err
	}
	if cr.meta, err = f.strMap("meta"); err != nil {
		return nil, err
	}
	if cr.noParent, err = f.boolean("no_parent", false); err != nil {
		return nil, err
	}
	if cr.noDefault, err = f.boolean("no_default_policy", false); err != nil {
		return nil, err
	}
	ttl, ttlSet, err := f.duration("ttl")
	if err != nil {
		return nil, err
	}
	cr.ttl = ttl
	if lease, leaseSet, err := f.duration("lease"); err != nil { // Vault's older name for ttl
		return nil, err
	} else if !ttlSet && leaseSet {
		cr.ttl = lease
	}
	if cr.explicitMax, _, err = f.duration("explicit_max_ttl"); err != nil {
		return nil, err
	}
	if cr.period, _, err = f.duration("period"); err != nil {
		return nil, err
	}
	if cr.displayName, err = f.str("display_name"); err != nil {
		return nil, err
	}
	if cr.numUses, err = f.integer("num_uses"); err != nil {
		return nil, err
	}
	if cr.renewable, err = f.boolean("renewable", true); err != nil {
		return nil, err
	}
	if cr.tokenType, err = f.str("type"); err != nil {
		return nil, err
	}
	if cr.entityAlias, err = f.str("entity_alias"); err != nil {
		return nil, err
	}
	return &cr, nil
}

// check refuses the values no caller may ask for.
func (cr *createRequest) check() error {
	switch {
	case cr.tokenType != "" && cr.tokenType != TypeService && cr.tokenType != TypeBatch && cr.tokenType != "default":
		return badRequest("invalid 'type' value %q: give service (the default) or batch", cr.tokenType)
	case cr.tokenType == TypeBatch && cr.numUses != 0:
		return badRequest("batch tokens cannot have \"num_uses\" set: nothing is stored to count uses; omit num_uses or create a service token")
	case cr.tokenType == TypeBatch && cr.period != 0:
		return badRequest("batch tokens cannot have \"period\" set: they cannot be renewed; omit period or create a service token")
	case cr.tokenType == TypeBatch && cr.explicitMax != 0:
		return badRequest("batch tokens cannot have \"explicit_max_ttl\" set: their ttl is already final; give ttl instead")
	case cr.tokenType == TypeBatch && cr.id != "":
		return badRequest("batch tokens cannot have \"id\" set: the id is the signed record; omit id")
	case cr.entityAlias != "":
		return badRequest("'entity_alias' is not supported: Coffer has no identity entities; remove entity_alias")
	case cr.numUses < 0:
		return badRequest("number of uses cannot be negative")
	case cr.numUses > 1<<31-1:
		return badRequest("num_uses: %d is too large", cr.numUses)
	case cr.ttl < 0:
		return badRequest("ttl must be positive")
	case cr.explicitMax < 0:
		return badRequest("explicit_max_ttl must be positive")
	case cr.period < 0:
		return badRequest("period must be positive")
	}
	return nil
}

// creator returns the caller's token, which becomes the parent; a batch
// token or a use-limited token may not create children.
func (b *backend) creator(ctx context.Context, clientToken string) (*Entry, error) {
	parent, err := b.s.Lookup(ctx, clientToken)
	if err != nil {
		return nil, err
	}
	if parent == nil {
		return nil, badRequest("parent token lookup failed: no parent found; authenticate with a valid token")
	}
	if parent.Type == TypeBatch {
		return nil, badRequest("batch tokens cannot create more tokens: create tokens with a service token")
	}
	if parent.NumUses != 0 {
		return nil, badRequest("restricted use token cannot generate child tokens")
	}
	return parent, nil
}

// entry decides the new token created on path by parent: its display name,
// id, policies, parent (none for an orphan), period and TTLs, refusing what
// needs a root parent when parent is not one.
func (cr *createRequest) entry(path string, parent *Entry, orphan bool) (*Entry, error) {
	isRoot := hasPolicy(parent.Policies, "root")
	e := &Entry{
		Parent:      parent.ID,
		Path:        path,
		Meta:        cr.meta,
		DisplayName: "token",
		NumUses:     int(cr.numUses),
		TTL:         cr.ttl,
		Period:      cr.period,
		Renewable:   cr.renewable,
	}
	if cr.tokenType == TypeBatch {
		e.Type = TypeBatch // the store refuses what a batch token cannot be
	}
	if cr.displayName != "" {
		full := displayNameSanitize.ReplaceAllString("token-"+cr.displayName, "-")
		e.DisplayName = strings.TrimSuffix(full, "-")
	}
	if cr.id != "" {
		if !isRoot {
			return nil, badRequest("root privileges required to specify token id; omit id or create the token with a root token")
		}
		e.ID = cr.id
	}

	policies, err := cr.childPolicies(parent, isRoot)
	if err != nil {
		return nil, err
	}
	e.Policies = policies

	switch {
	case cr.noParent:
		if !isRoot {
			return nil, badRequest("root privileges required to create orphan token with no_parent=true; use auth/token/create-orphan, which your policy may grant")
		}
		e.Parent = ""
	case orphan:
		e.Parent = ""
	}
	if e.Parent != "" {
		e.EntityID = parent.EntityID
	}

	if cr.period > 0 && !isRoot {
		return nil, badRequest("root privileges required to create periodic token; remove period or use a root token")
	}
	e.ExplicitMaxTTL = cr.explicitMax
	if hasPolicy(e.Policies, "root") && cr.ttl == 0 && cr.period == 0 && cr.explicitMax == 0 && !parent.ExpireTime.IsZero() {
		return nil, badRequest("expiring root tokens cannot create non-expiring root tokens; give a ttl")
	}
	return e, nil
}

// childPolicies returns the policies of the new token: the parent's when none
// are asked for; otherwise a non-root parent may only hand out a subset of its
// own. "default" is added (when the parent has it, for a non-root parent)
// unless no_default_policy. Only a root parent may create a root token.
func (cr *createRequest) childPolicies(parent *Entry, isRoot bool) ([]string, error) {
	policies := cr.policies
	addDefault := false
	switch {
	case len(policies) == 0:
		policies = SanitizePolicies(parent.Policies, false)
	case !isRoot:
		asked := SanitizePolicies(policies, false)
		held := SanitizePolicies(parent.Policies, false)
		var extra []string
		for _, p := range asked {
			if !hasPolicy(held, p) {
				extra = append(extra, p)
			}
		}
		if len(extra) > 0 {
			return nil, badRequest("child policies must be subset of parent: the parent token lacks %q; ask only for policies the parent holds (%q) or use a root token", extra, held)
		}
		addDefault = !cr.noDefault && hasPolicy(parent.Policies, "default")
	default:
		addDefault = !cr.noDefault
	}
	out := SanitizePolicies(policies, addDefault)
	if cr.noDefault {
		out = deleteString(out, "default")
	}
	if hasPolicy(out, "root") && !isRoot {
		return nil, badRequest("root tokens may not be created without parent token being root")
	}
	return out, nil
}

func deleteString(list []string, s string) []string {
	out := list[:0]
	for _, v := range list {
		if v != s {
			out = append(out, v)
		}
	}
	return out
}

// authFor is the "auth" section Vault returns for a token granted for ttl.
func authFor(e *Entry, ttl time.Duration) *logical.Auth {
	return &logical.Auth{
		ClientToken:    e.ID,
		Accessor:       e.Accessor,
		Policies:       e.Policies,
		TokenPolicies:  e.Policies,
		Metadata:       e.Meta,
		LeaseDuration:  int(ttl / time.Second),
		Renewable:      e.Renewable,
		EntityID:       e.EntityID,
		TokenType:      e.Type,
		Orphan:         e.Orphan,
		NumUses:        max(e.NumUses, 0),
		Period:         e.Period,
		TTL:            ttl,
		ExplicitMaxTTL: e.ExplicitMaxTTL,
		DisplayName:    e.DisplayName,
	}
}

// lookupData is the "data" Vault's lookup returns for e at now.
func lookupData(e *Entry, now time.Time) map[string]any {
	d := map[string]any{
		"id":               e.ID,
		"accessor":         e.Accessor,
		"policies":         e.Policies,
		"path":             e.Path,
		"meta":             e.Meta,
		"display_name":     e.DisplayName,
		"num_uses":         max(e.NumUses, 0),
		"orphan":           e.Orphan,
		"creation_time":    e.CreationTime.Unix(),
		"creation_ttl":     int64(e.TTL / time.Second),
		"expire_time":      nil,
		"ttl":              int64(0),
		"explicit_max_ttl": int64(e.ExplicitMaxTTL / time.Second),
		"entity_id":        e.EntityID,
		"type":             e.Type,
		"renewable":        e.Renewable,
		"issue_time":       e.CreationTime.UTC(),
	}
	if e.Period > 0 {
		d["period"] = int64(e.Period / time.Second)
	}
	if e.Role != "" {
		d["role"] = e.Role
	}
	if !e.ExpireTime.IsZero() {
		d["expire_time"] = e.ExpireTime.UTC()
		d["ttl"] = max(int64(e.ExpireTime.Sub(now)/time.Second), 0)
	}
	return d
}

func (b *backend) lookupToken(ctx context.Context, id string) (*logical.Response, error) {
	if id == "" {
		return nil, badRequest("missing token ID; give the token to look up")
	}
	e, err := b.s.lookup(ctx, id, true)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return nil, errBadToken
	}
	return &logical.Response{Data: lookupData(e, b.s.now())}, nil
}

func (b *backend) lookup(ctx context.Context, req *logical.Request, f *fields) (*logical.Response, error) {
	id, err := f.str("token")
	if err != nil {
		return nil, err
	}
	if id == "" {
		id = req.ClientToken
	}
	return b.lookupToken(ctx, id)
}

func (b *backend) lookupSelf(ctx context.Context, req *logical.Request, f *fields) (*logical.Response, error) {
	f.seen["token"] = true // Vault's schema has it and ignores it here
	return b.lookupToken(ctx, req.ClientToken)
}

func (b *backend) lookupAccessor(ctx context.Context, _ *logical.Request, f *fields) (*logical.Response, error) {
	acc, err := f.str("accessor")
	if err != nil {
		return nil, err
	}
	if acc == "" {
		return nil, badRequest("missing accessor")
	}
	e, err := b.s.LookupAccessor(ctx, acc)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return nil, badRequest("invalid accessor")
	}
	d := lookupData(e, b.s.now())
	d["id"] = "" // an accessor never reveals its token
	return &logical.Response{Data: d}, nil
}

func (b *backend) renewToken(ctx context.Context, id string, f *fields) (*logical.Response, error) {
	inc, _, err := f.duration("increment")
	if err != nil {
		return nil, err
	}
	if inc < 0 {
		return nil, badRequest("increment must not be negative")
	}
	if id == "" {
		return nil, badRequest("missing token ID; give the token to renew")
	}
	e, ttl, warnings, err := b.s.renew(ctx, id, inc)
	if err != nil {
		return nil, storeError(err)
	}
	return &logical.Response{Auth: authFor(e, ttl), Warnings: warnings}, nil
}

func (b *backend) renew(ctx context.Context, _ *logical.Request, f *fields) (*logical.Response, error) {
	id, err := f.str("token")
	if err != nil {
		return nil, err
	}
	return b.renewToken(ctx, id, f)
}

func (b *backend) renewSelf(ctx context.Context, req *logical.Request, f *fields) (*logical.Response, error) {
	f.seen["token"] = true
	return b.renewToken(ctx, req.ClientToken, f)
}

func (b *backend) renewAccessor(ctx context.Context, _ *logical.Request, f *fields) (*logical.Response, error) {
	acc, err := f.str("accessor")
	if err != nil {
		return nil, err
	}
	if acc == "" {
		return nil, badRequest("missing accessor")
	}
	e, err := b.s.LookupAccessor(ctx, acc)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return nil, badRequest("invalid accessor")
	}
	resp, err := b.renewToken(ctx, e.ID, f)
	if err != nil {
		return nil, err
	}
	resp.Auth.ClientToken = ""
	return resp, nil
}

func (b *backend) revoke(ctx context.Context, _ *logical.Request, f *fields) (*logical.Response, error) {
	id, err := f.str("token")
	if err != nil {
		return nil, err
	}
	if id == "" {
		return nil, badRequest("missing token ID; give the token to revoke")
	}
	return nil, storeError(b.s.Revoke(ctx, id))
}

func (b *backend) revokeSelf(ctx context.Context, req *logical.Request, _ *fields) (*logical.Response, error) {
	if req.ClientToken == "" {
		return nil, badRequest("missing token ID; authenticate with the token to revoke")
	}
	return nil, storeError(b.s.Revoke(ctx, req.ClientToken))
}

func (b *backend) revokeAccessor(ctx context.Context, _ *logical.Request, f *fields) (*logical.Response, error) {
	acc, err := f.str("accessor")
	if err != nil {
		return nil, err
	}
	if acc == "" {
		return nil, badRequest("missing accessor")
	}
	if err := b.s.RevokeAccessor(ctx, acc); err != nil {
		if errors.Is(err, ErrAccessorNotFound) {
			return &logical.Response{Warnings: []string{"No token found with this accessor"}}, nil
		}
		return nil, err
	}
	return nil, nil
}

func (b *backend) revokeOrphan(ctx context.Context, _ *logical.Request, f *fields) (*logical.Response, error) {
	id, err := f.str("token")
	if err != nil {
		return nil, err
	}
	if id == "" {
		return nil, badRequest("missing token ID; give the token to revoke")
	}
	if err := b.s.RevokeOrphan(ctx, id); err != nil {
		if errors.Is(err, ErrTokenNotFound) {
			return nil, badRequest("token to revoke not found")
		}
		return nil, storeError(err)
	}
	return nil, nil
}
