package core

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/cofferhq/coffer/forwarder"
	"github.com/cofferhq/coffer/logical"
	"github.com/cofferhq/coffer/storage"
)

// Requests served where they are received (logical.ClusterLocal).
//
// A backend may serve some writes on a performance secondary itself: transit
// computes without writing, AppRole writes its secret ids under prefixes
// that are local to each cluster. The router then does not forward them, and
// gives the backend a storage that refuses any write outside those local
// prefixes with logical.ErrReadOnly, so a backend that wants to change
// replicated configuration (transit creating its key on first use) cannot
// diverge from the primary: the router forwards that request instead.

// clusterLocal is mb's backend as a logical.ClusterLocal, nil when it is not
// one or the mount is local (everything of it is served here anyway).
func clusterLocal(mb *mountedBackend) logical.ClusterLocal {
	if mb.entry.Local {
		return nil
	}
	cl, _ := mb.backend.(logical.ClusterLocal)
	return cl
}

// servedLocally reports whether a write to mb is served on this cluster
// although the mount is replicated.
func servedLocally(mb *mountedBackend, lreq *logical.Request) bool {
	cl := clusterLocal(mb)
	return cl != nil && cl.ServedLocally(lreq)
}

// localPrefixesOf are the storage prefixes (full keys) of mb that are local
// to each cluster: all of a local mount, or what a ClusterLocal backend names.
func localPrefixesOf(mb *mountedBackend) []string {
	if mb.entry.Local {
		return []string{mb.entry.StoragePrefix()}
	}
	cl := clusterLocal(mb)
	if cl == nil {
		return nil
	}
	var out []string
	for _, p := range cl.LocalStoragePrefixes() {
		out = append(out, mb.entry.StoragePrefix()+p)
	}
	return out
}

// localOnly is a backend's storage view on a secondary for a request it
// serves locally: reads pass, writes of keys outside the local prefixes
// (relative to the view) fail with logical.ErrReadOnly before anything is
// written.
type localOnly struct {
	logical.Storage
	local []string
	mount string
}

func (s *localOnly) check(key string) error {
	for _, p := range s.local {
		if strings.HasPrefix(key, p) {
			return nil
		}
	}
	return fmt.Errorf("%w (%s%s): the primary makes this change", logical.ErrReadOnly, s.mount, key)
}

func (s *localOnly) Put(ctx context.Context, e *storage.Entry) error {
	if err := s.check(e.Key); err != nil {
		return err
	}
	return s.Storage.Put(ctx, e)
}

func (s *localOnly) Delete(ctx context.Context, key string) error {
	if err := s.check(key); err != nil {
		return err
	}
	return s.Storage.Delete(ctx, key)
}

func (s *localOnly) Transaction(ctx context.Context, ops []*storage.TxnOp) error {
	for _, op := range ops {
		if op == nil || op.Entry == nil {
			return storage.ErrInvalidOperation
		}
		if err := s.check(op.Entry.Key); err != nil {
			return err
		}
	}
	return s.Storage.Transaction(ctx, ops)
}

// localOnlyStorage is the storage of a request mb serves locally on a
// secondary.
func localOnlyStorage(mb *mountedBackend) logical.Storage {
	var local []string
	if cl := clusterLocal(mb); cl != nil {
		local = cl.LocalStoragePrefixes()
	}
	return &localOnly{Storage: mb.storage, local: local, mount: mb.entry.RoutePath()}
}

// errForwardInstead: a request served locally on a secondary needs a change
// only the primary makes (a transit key created on first use); nothing was
// written here, and the primary serves the whole request.
var errForwardInstead = errors.New("served by the primary instead")

// callBackend runs lreq on mb's backend. On a secondary, a write the backend
// serves itself runs against localOnlyStorage; when it wants to write a
// replicated key, errForwardInstead says to forward it, with lreq's storage
// restored.
func (c *Core) callBackend(ctx context.Context, mb *mountedBackend, lreq *logical.Request, secondary bool, path string) (*logical.Response, error) {
	if !secondary || !isWrite(lreq.Operation) || !servedLocally(mb, lreq) {
		return mb.backend.HandleRequest(ctx, lreq)
	}
	lreq.Storage = localOnlyStorage(mb)
	resp, err := mb.backend.HandleRequest(ctx, lreq)
	lreq.Storage = mb.storage
	if errors.Is(err, logical.ErrReadOnly) {
		if ferr := forwarder.Allowed(string(lreq.Operation), path); ferr != nil {
			return nil, logical.Errorf(http.StatusBadRequest, "%s needs a change only the primary makes, and the primary does not take it forwarded (%v): send it to the primary", path, ferr)
		}
		return nil, fmt.Errorf("%w: %w", errForwardInstead, err)
	}
	return resp, err
}
