package core

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/cofferhq/coffer/core/acl"
	"github.com/cofferhq/coffer/core/tokens"
	"github.com/cofferhq/coffer/forwarder"
	"github.com/cofferhq/coffer/logical"
	"github.com/cofferhq/coffer/storage"
	"github.com/google/uuid"
)

// Request is one API call on a logical path (everything but the sys
// endpoints httpapi serves itself), as core sees it.
type Request struct {
	// Operation comes from the HTTP method; core refines update into create
	// when the backend reports that nothing exists at the path.
	Operation logical.Operation
	// Path is the full request path after /v1/ ("secret/data/app"), as the
	// client sent it: HandleRequest normalizes it (NormalizePath).
	Path string
	// Data is the request's data when Admit is nil.
	Data map[string]any
	// Admit, when set, supplies the request's data once core knows who is
	// asking, so that nothing is read for a request that is refused: core
	// calls it at most once, after the token and its policies allowed the
	// request (authenticated true), or before serving a path that needs no
	// token such as a login (authenticated false). It returns the data, read
	// under the limits that apply to such a request, or the error to answer
	// with instead (a body too large, malformed, or too many unauthenticated
	// requests at once); that error is returned as is, unaudited, as a
	// malformed request always was.
	Admit      func(authenticated bool) (map[string]any, error)
	Token      string
	WrapTTL    time.Duration
	Headers    http.Header
	RemoteAddr string
}

// Response is a backend's response plus what core added: the request id and,
// for a wrapped response, the wrapping token's description.
type Response struct {
	RequestID string
	*logical.Response
	WrapInfo *WrapInfo
}

// WrapInfo describes a response-wrapping token (the envelope's wrap_info).
type WrapInfo = logical.WrapInfo

type callerKey struct{}

// caller is the authenticated token of the request being served, for the
// system backend's self-service endpoints.
func caller(ctx context.Context) *tokens.Entry {
	te, _ := ctx.Value(callerKey{}).(*tokens.Entry)
	return te
}

// unauthenticated reports whether path needs no token: logins and the
// wrapping endpoints that authenticate by the wrapping token itself.
func unauthenticated(mb *mountedBackend, rel string) bool {
	if mb.entry.Table == AuthTable && !mb.entry.builtin {
		return strings.HasPrefix(rel, "login/") || rel == "login"
	}
	if mb.entry.Type == "system" {
		r := strings.TrimSuffix(rel, "/")
		switch r {
		case "wrapping/lookup", "replication/status", "replication/performance/status", "replication/dr/status",
			// A DR secondary's operations: its DR operation token authorises them.
			"replication/dr/secondary/promote", "replication/dr/secondary/update-primary", "replication/dr/secondary/disable":
			return true
		}
		return false
	}
	return false
}

// HandleRequest runs the request pipeline: route, authenticate, authorize
// (ACL and sudo), audit the request, call the backend, create the token of a
// login, wrap the response when asked, audit the response.
func (c *Core) HandleRequest(ctx context.Context, req *Request) (*Response, error) {
	if c.barrier.Sealed() || c.replacingNow.Load() {
		if c.standby.Load() {
			return nil, ErrStandby // a sealed standby: the active node serves it
		}
		return c.handleSealed(ctx, req)
	}
	if c.standby.Load() {
		return c.standbyRequest(ctx, req)
	}
	defer c.measureRequest(time.Now(), req)
	resp, err := c.handleRequest(ctx, req)
	if errors.Is(err, storage.ErrNotActive) {
		// The storage refused the write: this node lost its cluster's lock
		// (its session ended while it was paused or cut off) and is about
		// to become a standby. Nothing was applied.
		return nil, fmt.Errorf("%w (it lost the cluster's lock; nothing was applied: retry, the active node will serve it): %w", ErrStandby, err)
	}
	return resp, err
}

// handleRequest is HandleRequest on an unsealed node.
func (c *Core) handleRequest(ctx context.Context, req *Request) (*Response, error) {
	path, err := NormalizePath(req.Path, req.Operation)
	if err != nil {
		return nil, err
	}
	if c.replication().DRMode() == ModeSecondary && !strings.HasPrefix(path, "sys/replication/") {
		return nil, logical.Errorf(http.StatusBadRequest, "path disabled in DR secondary mode: this cluster is a DR secondary and serves no client request; send requests to its primary, or promote it (sys/replication/dr/secondary/promote)")
	}
	mb, rel := c.router.match(path)
	if mb == nil {
		return nil, logical.Errorf(http.StatusNotFound, "no handler for route %q: no secrets engine or auth method is mounted there (list them with sys/mounts and sys/auth)", path)
	}
	if path, rel, err = canonical(mb, path, rel); err != nil {
		return nil, err
	}
	lreq := &logical.Request{
		ID:          uuid.NewString(),
		Operation:   req.Operation,
		Path:        rel,
		MountPoint:  mb.entry.RoutePath(),
		MountType:   mb.entry.Type,
		Data:        req.Data,
		Storage:     mb.storage,
		ClientToken: req.Token,
		Headers:     req.Headers,
		RemoteAddr:  req.RemoteAddr,
	}
	if lreq.Data == nil {
		lreq.Data = map[string]any{}
	}

	if isWrite(lreq.Operation) && !strings.HasPrefix(path, "sys/replication/") {
		if err := c.replication().WriteRefusal(); err != nil {
			return nil, err
		}
	}
	var te *tokens.Entry
	authenticated := !unauthenticated(mb, rel)
	if authenticated {
		te, err = c.authorize(ctx, mb, path, lreq)
		if err != nil {
			c.auditDenied(ctx, lreq, te, err)
			return nil, err
		}
		ctx = context.WithValue(ctx, callerKey{}, te)
	}
	if req.Admit != nil {
		data, err := req.Admit(authenticated)
		if err != nil {
			return nil, err
		}
		if data != nil {
			lreq.Data = data
		}
	}

	// Read-after-write: a request carrying X-Vault-Index is served once this
	// cluster has that state; a secondary may forward it instead.
	secondaryMode := c.replMode() == ModeSecondary
	setID, have := c.replicationState()
	forwardIt := secondaryMode && c.shouldForward(mb, rel, lreq)
	if hs := req.Headers.Values(headerIndex); len(hs) > 0 {
		need, err := c.requiredIndex(hs, setID)
		if err != nil {
			return nil, err
		}
		if need > have {
			if !secondaryMode || !strings.EqualFold(req.Headers.Get(headerInconsistent), "forward-active-node") || !c.forwardableByIndex(mb, rel, path, lreq) {
				return nil, logical.Errorf(http.StatusPreconditionFailed, "this cluster has not yet reached the replication state the request requires (replicated index %d, at %d): retry shortly, or send %s: forward-active-node", need, have, headerInconsistent)
			}
			forwardIt = true
		}
	}
	if err := c.auditRequest(ctx, lreq, te); err != nil {
		return nil, err
	}
	if forwardIt {
		return c.serveForwarded(ctx, req, lreq, te, path, setID)
	}
	lresp, err := c.callBackend(ctx, mb, lreq, secondaryMode, path)
	if errors.Is(err, errForwardInstead) {
		return c.serveForwarded(ctx, req, lreq, te, path, setID)
	}
	if err == nil && lresp != nil && lresp.Auth != nil && lresp.Auth.ClientToken == "" {
		err = c.issueLoginToken(ctx, path, mb, lresp.Auth)
	}
	resp := &Response{RequestID: lreq.ID, Response: lresp}
	if lresp != nil && lresp.WrapInfo != nil {
		resp.WrapInfo = lresp.WrapInfo
	}
	if err == nil && isWrite(lreq.Operation) {
		if secondaryMode {
			_, have = c.replicationState()
		} else {
			setID, have = c.replicationState()
		}
		c.setIndexHeader(resp, setID, have)
	}
	return c.finish(ctx, req, lreq, te, path, resp, err)
}

// handleSealed serves a request while the barrier is sealed or an
// activation replaces the data: sys/replication/* goes to the replication
// layer unauthenticated (HandleSealed decides what it serves then: the
// status, and the retry of a pending activation); everything else is
// ErrSealed. Nothing is audited: the audit devices are down.
func (c *Core) handleSealed(ctx context.Context, req *Request) (*Response, error) {
	path, err := NormalizePath(req.Path, req.Operation)
	if err != nil {
		return nil, err
	}
	p, ok := strings.CutPrefix(path, "sys/")
	if !ok || !strings.HasPrefix(p, "replication/") {
		return nil, ErrSealed
	}
	lreq := &logical.Request{
		ID: uuid.NewString(), Operation: req.Operation, Path: p, MountPoint: "sys/", MountType: "system",
		Data: req.Data, Headers: req.Headers, RemoteAddr: req.RemoteAddr,
	}
	if req.Admit != nil {
		if lreq.Data, err = req.Admit(false); err != nil {
			return nil, err
		}
	}
	if lreq.Data == nil {
		lreq.Data = map[string]any{}
	}
	lresp, err := c.replication().HandleSealed(ctx, lreq, p)
	if err != nil {
		return nil, err
	}
	return &Response{RequestID: lreq.ID, Response: lresp}, nil
}

// forwardableByIndex reports whether a request that needs a newer state may
// be forwarded to the primary: only what the primary would accept (forwarder's
// allow-list) on a replicated target; never sys/replication/* or a local path.
func (c *Core) forwardableByIndex(mb *mountedBackend, rel, path string, lreq *logical.Request) bool {
	if forwarder.Allowed(string(lreq.Operation), path) != nil || !forwardedTarget(mb, rel) {
		return false
	}
	return mb.entry.Type != "system" || c.shouldForward(mb, rel, lreq)
}

// serveForwarded forwards lreq to the primary and finishes the response here.
func (c *Core) serveForwarded(ctx context.Context, req *Request, lreq *logical.Request, te *tokens.Entry, path, setID string) (*Response, error) {
	lresp, idx, err := c.forward(ctx, path, lreq)
	resp := &Response{RequestID: lreq.ID, Response: lresp}
	if err == nil {
		c.setIndexHeader(resp, setID, idx)
	}
	return c.finish(ctx, req, lreq, te, path, resp, err)
}

// setIndexHeader adds X-Vault-Index to a write's response.
func (c *Core) setIndexHeader(resp *Response, setID string, replicated uint64) {
	if resp.Response == nil {
		resp.Response = &logical.Response{}
	}
	if resp.Response.Headers == nil {
		resp.Response.Headers = http.Header{}
	}
	resp.Response.Headers.Set(headerIndex, c.indexHeader(setID, replicated))
}

// finish wraps the response when asked, retires a token whose last use this
// was, and writes the audit response line.
func (c *Core) finish(ctx context.Context, req *Request, lreq *logical.Request, te *tokens.Entry, path string, resp *Response, err error) (*Response, error) {
	lresp := resp.Response
	if err == nil && req.WrapTTL > 0 && lresp != nil && (lresp.Data != nil || lresp.Auth != nil) {
		resp.WrapInfo, err = c.wrap(ctx, path, req.WrapTTL, lresp)
		if err == nil {
			resp.Response = &logical.Response{Warnings: lresp.Warnings, Headers: lresp.Headers}
		}
	}
	if te != nil && te.RevocationPending() {
		// The request spent the token's last use: it succeeded, the token goes now.
		if rerr := c.tokens.Revoke(ctx, te.ID); rerr != nil && !errors.Is(rerr, tokens.ErrTokenNotFound) {
			c.logger.Warn().Err(rerr).Msg("revoking a token after its last use failed; the expiration manager retries")
		}
	}
	if aerr := c.auditResponse(ctx, lreq, te, resp, err); aerr != nil && err == nil {
		return nil, aerr
	}
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// authorize looks the token up, refines the operation, checks the ACL and
// sudo, and spends one use of a use-limited token.
func (c *Core) authorize(ctx context.Context, mb *mountedBackend, path string, lreq *logical.Request) (*tokens.Entry, error) {
	if lreq.ClientToken == "" {
		return nil, fmt.Errorf("%w: missing client token: set X-Vault-Token (VAULT_TOKEN) or log in first", ErrPermissionDenied)
	}
	te, err := c.tokens.Lookup(ctx, lreq.ClientToken)
	if err != nil {
		return nil, err
	}
	if te == nil {
		return nil, fmt.Errorf("%w: invalid token: it is unknown, expired or revoked; log in again", ErrPermissionDenied)
	}
	// The token method has an existence check for its roles only (a new role
	// needs "create", as in Vault); its other writes are all "update".
	if lreq.Operation == logical.UpdateOperation && mb.entry.Type != "system" && (mb.entry.Type != "token" || tokenRolePath(lreq.Path)) {
		exists, err := mb.backend.ExistenceCheck(ctx, lreq)
		if err != nil {
			return te, err
		}
		if !exists {
			lreq.Operation = logical.CreateOperation
		}
	}
	if mb.entry.Type == "system" && strings.HasPrefix(lreq.Path, "internal/ui/mounts") {
		// The vault CLI's kv preflight: any valid token may learn which mount
		// serves a path and its kv version (Vault grants it to any token with
		// access inside the mount; Coffer's decision: to any valid token, as
		// mount metadata holds no secret). docs/architecture.md says so.
		return te, nil
	}
	a, err := c.policies.aclFor(ctx, te.Policies)
	if err != nil {
		return te, fmt.Errorf("load policies of token: %w", err)
	}
	allowed, sudo := a.Allowed(path, acl.Operation(lreq.Operation))
	if !allowed || (acl.RequiresSudo(path) && !sudo && !a.IsRoot()) {
		return te, fmt.Errorf("%w: the token's policies (%s) do not grant %q on %q", ErrPermissionDenied, strings.Join(te.Policies, ", "), lreq.Operation, path)
	}
	if te.NumUses > 0 {
		if te, err = c.tokens.UseToken(ctx, te); err != nil {
			return nil, err
		}
		if te == nil {
			return nil, fmt.Errorf("%w: the token has no uses left", ErrPermissionDenied)
		}
	}
	return te, nil
}

// issueLoginToken creates the token an auth method's login response asks for.
func (c *Core) issueLoginToken(ctx context.Context, path string, mb *mountedBackend, a *logical.Auth) error {
	pols := normalizePolicies(a.Policies, false)
	if slices.Contains(pols, "root") {
		// Vault's rule: a login never yields a root token, whatever policy
		// a role or user names (sys/generate-root makes root tokens).
		return logical.Errorf(http.StatusBadRequest, "auth methods cannot create root tokens: remove the root policy from the role or user behind %s (root tokens come from sys/generate-root)", path)
	}
	te := &tokens.Entry{
		Policies:       pols,
		Path:           path,
		Meta:           a.Metadata,
		DisplayName:    a.DisplayName,
		NumUses:        a.NumUses,
		TTL:            a.TTL,
		ExplicitMaxTTL: a.ExplicitMaxTTL,
		Period:         a.Period,
		Renewable:      true,
		Orphan:         true,
	}
	if te.TTL == 0 && mb.entry.Config.DefaultLeaseTTL > 0 {
		te.TTL = time.Duration(mb.entry.Config.DefaultLeaseTTL) * time.Second
	}
	if err := c.tokens.Create(ctx, te); err != nil {
		return fmt.Errorf("create login token: %w", err)
	}
	a.ClientToken, a.Accessor = te.ID, te.Accessor
	a.Policies, a.TokenPolicies = pols, pols
	a.Orphan, a.Renewable, a.TokenType = true, te.Renewable, "service"
	a.LeaseDuration = int(tokenTTLSeconds(te))
	return nil
}

func tokenTTLSeconds(te *tokens.Entry) int64 {
	if te.ExpireTime.IsZero() {
		return 0
	}
	return int64(time.Until(te.ExpireTime).Round(time.Second) / time.Second)
}

// normalizePolicies lowercases, dedups and sorts; adds "default" when asked
// and the set is not root.
func normalizePolicies(in []string, addDefault bool) []string {
	seen := map[string]bool{}
	var out []string
	for _, p := range in {
		p = acl.NormalizeName(p)
		if p == "" || seen[p] {
			continue
		}
		seen[p] = true
		out = append(out, p)
	}
	if addDefault && !seen[acl.DefaultPolicyName] && !seen[acl.RootPolicyName] {
		out = append(out, acl.DefaultPolicyName)
	}
	sortStrings(out)
	return out
}

func isWrite(op logical.Operation) bool {
	switch op {
	case logical.CreateOperation, logical.UpdateOperation, logical.PatchOperation, logical.DeleteOperation:
		return true
	}
	return false
}
