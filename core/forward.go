package core

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cofferhq/coffer/bus"
	"github.com/cofferhq/coffer/logical"
	"github.com/cofferhq/coffer/replication"
	"github.com/google/uuid"
)

// Write forwarding and read-after-write consistency (docs/replication.md).
//
// On a secondary, a write to a replicated path is authenticated and
// authorized here, then sent to the primary over the secondary's sealed RPC
// as a logical request; the primary applies it without a token check and
// answers with the response and its WAL index. The secondary holds the
// answer until it has applied that index, or best_effort_wal_wait_duration
// has passed (then the answer carries a warning).
//
// X-Vault-Index: base64("v1:<replication set id>:<local index>:<replicated
// index>:<hex HMAC-SHA256>"), Vault's layout. The set id is the primary's
// cluster id (a cluster outside replication uses its own); the replicated
// index counts in the primary's WAL; the local index is this cluster's own
// WAL index and is informational. The HMAC key is derived from the root key,
// which every cluster of a set shares.

const (
	headerIndex        = "X-Vault-Index"
	headerInconsistent = "X-Vault-Inconsistent"
	defaultWALWait     = 2 * time.Second
)

// forwardBody is a forwarded response as it travels back from the primary.
type forwardBody struct {
	Data       map[string]any `json:"data,omitempty"`
	Auth       *logical.Auth  `json:"auth,omitempty"`
	Warnings   []string       `json:"warnings,omitempty"`
	StatusCode int            `json:"status_code,omitempty"`
}

// shouldForward tells whether a request on a secondary goes to the primary:
// writes to replicated mounts and to the replicated sys tables.
func (c *Core) shouldForward(mb *mountedBackend, rel string, lreq *logical.Request) bool {
	if !isWrite(lreq.Operation) {
		return false
	}
	switch mb.entry.Type {
	case "token":
		return false
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
	if mb.entry.Local || unauthenticated(mb, rel) {
		return false
	}
	return true
}

// forward sends lreq to the primary and waits for its WAL index here.
func (c *Core) forward(ctx context.Context, path string, lreq *logical.Request) (*logical.Response, uint64, error) {
	c.replMu.RLock()
	sec := c.repl.secondary
	c.replMu.RUnlock()
	if sec == nil {
		return nil, 0, c.refuseOnSecondary(false)
	}
	data, err := json.Marshal(lreq.Data)
	if err != nil {
		return nil, 0, fmt.Errorf("encode forwarded request: %w", err)
	}
	freq := &replication.ForwardRequest{ID: uuid.NewString(), Operation: string(lreq.Operation), Path: path, Data: data, RemoteAddr: lreq.RemoteAddr}
	if te := caller(ctx); te != nil {
		freq.CallerDisplayName, freq.CallerPolicies = te.DisplayName, te.Policies
	}
	reply, err := sec.Forward(ctx, freq)
	if err != nil {
		if errors.Is(err, bus.ErrUnreachable) || errors.Is(err, context.DeadlineExceeded) {
			return nil, 0, logical.Errorf(http.StatusServiceUnavailable, "the primary could not be reached to forward this write (%v): it was not applied; retry when the primary is back (reads on this cluster keep working)", err)
		}
		if replication.IsRevoked(err) {
			return nil, 0, logical.Errorf(http.StatusServiceUnavailable, "this secondary was revoked by its primary: writes cannot be forwarded; re-activate it with a new token")
		}
		return nil, 0, logical.Errorf(http.StatusServiceUnavailable, "forwarding the write to the primary failed: %v", err)
	}
	if reply.Status >= 400 {
		return nil, reply.WALIndex, &logical.CodedError{Code: reply.Status, Msg: strings.Join(reply.Errors, "; ")}
	}
	var fb forwardBody
	if len(reply.Body) > 0 {
		dec := json.NewDecoder(bytes.NewReader(reply.Body))
		dec.UseNumber()
		if err := dec.Decode(&fb); err != nil {
			return nil, reply.WALIndex, fmt.Errorf("decode the primary's forwarded response: %w", err)
		}
	}
	resp := &logical.Response{Data: fb.Data, Auth: fb.Auth, Warnings: fb.Warnings, StatusCode: fb.StatusCode}
	wait := c.cfg.Replication.BestEffortWALWait
	if wait <= 0 {
		wait = defaultWALWait
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if err := sec.WaitRemoteWAL(wctx, reply.WALIndex); err != nil {
		resp.Warnings = append(resp.Warnings, fmt.Sprintf("the write was applied on the primary (WAL index %d) but this cluster had not replicated it after %s: a read here may not show it yet", reply.WALIndex, wait))
	}
	return resp, reply.WALIndex, nil
}

// HandleForwarded applies, on the primary, a request a secondary forwarded.
// The secondary authenticated and authorized it; the RPC is authenticated as
// that secondary, so no token is checked here.
func (c *Core) HandleForwarded(ctx context.Context, secondaryID string, fr *replication.ForwardRequest) *replication.ForwardReply {
	fail := func(err error) *replication.ForwardReply {
		return &replication.ForwardReply{Status: statusOf(err), Errors: []string{err.Error()}, WALIndex: c.wal.LastIndex()}
	}
	if c.barrier.Sealed() {
		return fail(ErrSealed)
	}
	data := map[string]any{}
	if len(fr.Data) > 0 {
		dec := json.NewDecoder(bytes.NewReader(fr.Data))
		dec.UseNumber()
		if err := dec.Decode(&data); err != nil {
			return fail(logical.InvalidRequest("forwarded body: %v", err))
		}
	}
	path := strings.TrimPrefix(fr.Path, "/")
	mb, rel := c.router.match(path)
	if mb == nil {
		return fail(logical.Errorf(http.StatusNotFound, "no handler for route %q on the primary", path))
	}
	lreq := &logical.Request{
		ID: uuid.NewString(), Operation: logical.Operation(fr.Operation), Path: rel,
		MountPoint: mb.entry.RoutePath(), MountType: mb.entry.Type, Data: data, Storage: mb.storage,
		RemoteAddr: fr.RemoteAddr, Headers: http.Header{"X-Coffer-Forwarded-By": {secondaryID}},
	}
	if err := c.auditRequest(ctx, lreq, nil); err != nil {
		return fail(err)
	}
	lresp, err := mb.backend.HandleRequest(ctx, lreq)
	if aerr := c.auditResponse(ctx, lreq, nil, &Response{RequestID: lreq.ID, Response: lresp}, err); aerr != nil && err == nil {
		err = aerr
	}
	if err != nil {
		return fail(err)
	}
	reply := &replication.ForwardReply{Status: http.StatusOK, WALIndex: c.wal.LastIndex()}
	if lresp != nil {
		body, err := json.Marshal(forwardBody{Data: lresp.Data, Auth: lresp.Auth, Warnings: lresp.Warnings, StatusCode: lresp.StatusCode})
		if err != nil {
			return fail(err)
		}
		reply.Body = body
	}
	return reply
}

// statusOf maps an error to the HTTP status the client would have had.
func statusOf(err error) int {
	switch {
	case errors.Is(err, ErrSealed):
		return http.StatusServiceUnavailable
	case errors.Is(err, ErrPermissionDenied):
		return http.StatusForbidden
	case errors.Is(err, ErrNotInitialized), errors.Is(err, ErrAlreadyInitialized), errors.Is(err, ErrInvalidKey):
		return http.StatusBadRequest
	}
	var ir *InvalidRequestError
	if errors.As(err, &ir) {
		return http.StatusBadRequest
	}
	return logical.StatusCode(err)
}

// indexKey derives the X-Vault-Index HMAC key from the root key.
func (c *Core) indexKey() []byte {
	root, err := c.barrier.RootKey()
	if err != nil {
		return nil
	}
	k, err := hkdf.Key(sha256.New, root, nil, "coffer x-vault-index v1", 32)
	if err != nil {
		return nil
	}
	return k
}

// replicationState returns the set id and the replicated index this cluster has reached.
func (c *Core) replicationState() (setID string, replicated uint64) {
	c.replMu.RLock()
	defer c.replMu.RUnlock()
	if s := c.repl.secondary; s != nil {
		return s.Status().PrimaryClusterID, s.LastRemoteWAL()
	}
	return c.clusterID, c.wal.LastIndex()
}

// indexHeader renders X-Vault-Index for a replicated index.
func (c *Core) indexHeader(setID string, replicated uint64) string {
	state := fmt.Sprintf("v1:%s:%d:%d", setID, c.wal.LastIndex(), replicated)
	m := hmac.New(sha256.New, c.indexKey())
	m.Write([]byte(state))
	return base64.StdEncoding.EncodeToString([]byte(state + ":" + hex.EncodeToString(m.Sum(nil))))
}

// requiredIndex returns the highest replicated index the request's
// X-Vault-Index headers ask for; headers of another set or with a bad HMAC
// are refused with 400.
func (c *Core) requiredIndex(h []string, setID string) (uint64, error) {
	var need uint64
	key := c.indexKey()
	for _, raw := range h {
		cooked, err := base64.StdEncoding.DecodeString(raw)
		if err != nil {
			return 0, logical.InvalidRequest("X-Vault-Index is not base64: send back the header a write returned")
		}
		s := string(cooked)
		i := strings.LastIndexByte(s, ':')
		if i < 0 {
			return 0, logical.InvalidRequest("X-Vault-Index has no HMAC")
		}
		state, mac := s[:i], s[i+1:]
		want := hmac.New(sha256.New, key)
		want.Write([]byte(state))
		got, err := hex.DecodeString(mac)
		if err != nil || !hmac.Equal(got, want.Sum(nil)) {
			return 0, logical.InvalidRequest("X-Vault-Index does not verify: it was altered, or comes from another replication set")
		}
		parts := strings.Split(state, ":")
		if len(parts) != 4 || parts[0] != "v1" {
			return 0, logical.InvalidRequest("X-Vault-Index has an unknown layout")
		}
		if parts[1] != setID {
			continue
		}
		n, err := strconv.ParseUint(parts[3], 10, 64)
		if err != nil {
			return 0, logical.InvalidRequest("X-Vault-Index has a bad replicated index")
		}
		need = max(need, n)
	}
	return need, nil
}
