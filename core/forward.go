package core

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/cofferhq/coffer/forwarder"
	"github.com/cofferhq/coffer/logical"
	"github.com/cofferhq/coffer/wal"
	"github.com/google/uuid"
)

// Write forwarding and read-after-write consistency (docs/replication.md).
//
// On a secondary, a write to a replicated path is authenticated and
// authorized here, then handed to the forwarding client (package forwarder),
// which sends it to the primary and holds the answer until this cluster has
// applied the primary's WAL index. On the primary, forwarder's server calls
// ApplyForwarded. X-Vault-Index's layout and checks live in forwarder.

const (
	headerIndex        = forwarder.HeaderIndex
	headerInconsistent = forwarder.HeaderInconsistent
)

// shouldForward tells whether a request on a secondary goes to the primary:
// writes to replicated mounts and to the replicated sys tables.
func (c *Core) shouldForward(mb *mountedBackend, rel string, lreq *logical.Request) bool {
	if !isWrite(lreq.Operation) {
		return false
	}
	switch mb.entry.Type {
	case "token":
		return tokenRolePath(rel) // roles are replicated configuration
	case "system":
		p := strings.TrimSuffix(rel, "/")
		local, _ := fieldBool(lreq.Data, "local")
		existingLocal := func(rp string) bool {
			e := c.MountFor(rp)
			return e != nil && e.RoutePath() == rp && e.Local
		}
		switch {
		case strings.HasPrefix(p, "policies/acl/"), strings.HasPrefix(p, "policy/"):
			return true
		case strings.HasPrefix(p, "mounts/auth/"):
			return false
		case strings.HasPrefix(p, "mounts/"), strings.HasPrefix(p, "auth/"):
			t, name := SecretTable, strings.TrimPrefix(p, "mounts/")
			if strings.HasPrefix(p, "auth/") {
				t, name = AuthTable, strings.TrimPrefix(p, "auth/")
			}
			name = strings.TrimSuffix(name, "/tune")
			rp := normalizeMountPath(name)
			if t == AuthTable {
				rp = "auth/" + rp
			}
			if lreq.Operation == logical.DeleteOperation || strings.HasSuffix(p, "/tune") {
				return !existingLocal(rp)
			}
			return !local
		case strings.HasPrefix(p, "audit/"):
			if lreq.Operation == logical.DeleteOperation {
				c.auditMu.RLock()
				e := c.auditEntries[normalizeMountPath(strings.TrimPrefix(p, "audit/"))]
				c.auditMu.RUnlock()
				return e == nil || !e.Local
			}
			return !local
		}
		return false
	}
	if mb.entry.Local || unauthenticated(mb, rel) || servedLocally(mb, lreq) {
		return false
	}
	return true
}

// forward sends lreq to the primary through the secondary's forwarding
// client and waits for its WAL index here.
func (c *Core) forward(ctx context.Context, path string, lreq *logical.Request) (*logical.Response, uint64, error) {
	fc := c.replication().Forwarder()
	if fc == nil {
		// A secondary without a forwarding client is between primaries:
		// starting, switching (update-primary) or demoted. The write was
		// not sent; retrying shortly reaches the primary it follows next.
		return nil, 0, logical.Errorf(http.StatusServiceUnavailable, "this secondary is not following a primary right now (starting, switching primaries, or demoted and waiting for update-primary): the write was not sent; retry shortly")
	}
	var who *forwarder.Caller
	if te := caller(ctx); te != nil {
		who = &forwarder.Caller{DisplayName: te.DisplayName, Policies: te.Policies}
	}
	return fc.Forward(ctx, path, lreq, who)
}

// forwardedTarget reports whether a forwarded request may reach mb on the
// primary: replicated mounts and the system backend (whose paths forwarder's
// allow-list has checked), never a local mount, a login or the token store.
func forwardedTarget(mb *mountedBackend, rel string) bool {
	switch {
	case mb.entry.Type == "system":
		return true
	case mb.entry.Type == "token":
		return tokenRolePath(rel)
	case mb.entry.Local, unauthenticated(mb, rel):
		return false
	}
	return true
}

// tokenRolePath reports whether rel, under auth/token/, is a token role's:
// the only replicated configuration of the token method.
func tokenRolePath(rel string) bool {
	return strings.HasPrefix(rel, "roles/") && len(rel) > len("roles/")
}

// ApplyForwarded applies, on the primary, a request a secondary forwarded
// (forwarder.Applier). The secondary authenticated and authorized it; the
// RPC is authenticated as that secondary, so no token is checked here.
func (c *Core) ApplyForwarded(ctx context.Context, call *forwarder.Call) (*logical.Response, uint64, error) {
	if c.barrier.Sealed() {
		return nil, c.wal.LastIndex(), ErrSealed
	}
	// The same normalisation as a client's request: the allow-list and the
	// target check below see the path the backend will serve.
	path, err := NormalizePath(call.Path, call.Operation)
	if err != nil {
		return nil, c.wal.LastIndex(), err
	}
	mb, rel := c.router.match(path)
	if mb == nil {
		return nil, c.wal.LastIndex(), logical.Errorf(http.StatusNotFound, "no handler for route %q on the primary", path)
	}
	if path, rel, err = canonical(mb, path, rel); err != nil {
		return nil, c.wal.LastIndex(), err
	}
	if err := forwarder.Allowed(string(call.Operation), path); err != nil {
		return nil, c.wal.LastIndex(), logical.Errorf(http.StatusForbidden, "the primary refuses this forwarded request: %v", err)
	}
	if !forwardedTarget(mb, rel) {
		return nil, c.wal.LastIndex(), logical.Errorf(http.StatusForbidden, "the primary refuses this forwarded request: %q is not replicated (a local mount, a login or the token store) and is served by each cluster itself", path)
	}
	lreq := &logical.Request{
		ID: uuid.NewString(), Operation: call.Operation, Path: rel,
		MountPoint: mb.entry.RoutePath(), MountType: mb.entry.Type, Data: call.Data, Storage: mb.storage,
		RemoteAddr: call.RemoteAddr, Headers: http.Header{"X-Coffer-Forwarded-By": {call.SecondaryID}},
	}
	if err := c.auditRequest(ctx, lreq, nil); err != nil {
		return nil, c.wal.LastIndex(), err
	}
	lresp, err := mb.backend.HandleRequest(ctx, lreq)
	if aerr := c.auditResponse(ctx, lreq, nil, &Response{RequestID: lreq.ID, Response: lresp}, err); aerr != nil && err == nil {
		err = aerr
	}
	if err != nil {
		return nil, c.wal.LastIndex(), err
	}
	return lresp, c.wal.LastIndex(), nil
}

// StatusOf maps an error of core or of the logical layer to the HTTP status
// Vault answers it with (the one mapping; httpapi adds only its own request
// errors):
//
//	ErrSealed, ErrReplacing                     503
//	ErrPermissionDenied                         403
//	ErrNotInitialized, ErrAlreadyInitialized,
//	ErrInvalidKey, ErrActivationPending,
//	*InvalidRequestError                        400
//	a logical error (logical.StatusCode)        its own code
//	anything else                               500
func StatusOf(err error) int {
	switch {
	case errors.Is(err, ErrSealed), errors.Is(err, ErrReplacing), errors.Is(err, ErrStandby):
		return http.StatusServiceUnavailable
	case errors.Is(err, ErrPermissionDenied):
		return http.StatusForbidden
	case errors.Is(err, ErrNotInitialized), errors.Is(err, ErrAlreadyInitialized), errors.Is(err, ErrInvalidKey),
		errors.Is(err, ErrActivationPending):
		return http.StatusBadRequest
	}
	var ir *InvalidRequestError
	if errors.As(err, &ir) {
		return http.StatusBadRequest
	}
	if errors.Is(err, wal.ErrEntryTooLarge) {
		return http.StatusRequestEntityTooLarge
	}
	return logical.StatusCode(err)
}

// indexKey derives the X-Vault-Index HMAC key from the root key.
func (c *Core) indexKey() []byte {
	root, err := c.barrier.RootKey()
	if err != nil {
		return nil
	}
	k, err := forwarder.IndexKey(root)
	if err != nil {
		return nil
	}
	return k
}

// replicationState returns the set id and the replicated index this cluster has reached.
func (c *Core) replicationState() (setID string, replicated uint64) {
	if id, idx, ok := c.replication().Position(); ok {
		return id, idx
	}
	return c.ClusterID(), c.wal.LastIndex()
}

// indexHeader renders X-Vault-Index for a replicated index.
func (c *Core) indexHeader(setID string, replicated uint64) string {
	return forwarder.EncodeIndex(c.indexKey(), forwarder.IndexState{SetID: setID, Local: c.wal.LastIndex(), Replicated: replicated})
}

// requiredIndex returns the highest replicated index the request's
// X-Vault-Index headers ask for; headers of another set are ignored, a bad
// one is refused with 400.
func (c *Core) requiredIndex(h []string, setID string) (uint64, error) {
	need, err := forwarder.RequiredIndex(c.indexKey(), h, setID)
	if err != nil {
		return 0, logical.InvalidRequest("%v", err)
	}
	return need, nil
}
