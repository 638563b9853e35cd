package core

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/cofferhq/coffer/core/acl"
	"github.com/cofferhq/coffer/core/tokens"
	"github.com/cofferhq/coffer/internal/clock"
	"github.com/cofferhq/coffer/logical"
)

// Wrapped responses are stored under the barrier, local to the cluster like
// the wrapping tokens themselves:
//
//	sys/wrapping/responses/<wrapping token accessor>   JSON wrappedResponse
//
// A wrapping token has the response-wrapping policy, one use and the
// requested TTL. Unwrapping deletes the record under wrapMu and revokes the
// token, so a response is handed out at most once.
const (
	wrappingPrefix  = "sys/wrapping/responses/"
	wrappingVersion = 1
)

type wrappedResponse struct {
	V            int            `json:"v"`
	Data         map[string]any `json:"data"`
	Auth         *logical.Auth  `json:"auth"`
	Warnings     []string       `json:"warnings"`
	CreationPath string         `json:"creation_path"`
	CreationTime time.Time      `json:"creation_time"`
	TTL          int64          `json:"ttl"`
}

// wrap stores resp under a new single-use wrapping token.
func (c *Core) wrap(ctx context.Context, path string, ttl time.Duration, resp *logical.Response) (*WrapInfo, error) {
	te := &tokens.Entry{
		Policies:    []string{acl.ResponseWrappingPolicyName},
		Path:        path,
		NumUses:     1,
		TTL:         ttl,
		Orphan:      true,
		DisplayName: "response-wrapping",
	}
	if err := c.tokens.Create(ctx, te); err != nil {
		return nil, fmt.Errorf("create wrapping token: %w", err)
	}
	now := clock.Now().UTC()
	wr := wrappedResponse{V: wrappingVersion, Data: resp.Data, Auth: resp.Auth, Warnings: resp.Warnings,
		CreationPath: path, CreationTime: now, TTL: int64(ttl / time.Second)}
	if err := putJSON(ctx, c.barrier, wrappingPrefix+te.Accessor, wr); err != nil {
		_ = c.tokens.Revoke(ctx, te.ID)
		return nil, fmt.Errorf("store wrapped response: %w", err)
	}
	wi := &WrapInfo{Token: te.ID, Accessor: te.Accessor, TTL: wr.TTL, CreationTime: now, CreationPath: path}
	if resp.Auth != nil {
		wi.WrappedAccessor = resp.Auth.Accessor
	}
	return wi, nil
}

var errBadWrapToken = logical.Errorf(http.StatusBadRequest, "wrapping token is not valid or does not exist: it was already unwrapped, has expired, or is not a wrapping token")

// wrappingEntry resolves the wrapping token of an unwrap or lookup: the
// "token" field, else the caller's own token when it is a wrapping token.
func (s *systemBackend) wrappingEntry(ctx context.Context, req *logical.Request) (*tokens.Entry, error) {
	tok, err := fieldString(req.Data, "token")
	if err != nil {
		return nil, err
	}
	var te *tokens.Entry
	if tok != "" {
		if te, err = s.c.tokens.Lookup(ctx, tok); err != nil {
			return nil, err
		}
	} else {
		te = caller(ctx)
	}
	if te == nil || !slices.Contains(te.Policies, acl.ResponseWrappingPolicyName) {
		return nil, errBadWrapToken
	}
	return te, nil
}

func (s *systemBackend) unwrap(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	if req.Operation != logical.UpdateOperation && req.Operation != logical.CreateOperation {
		return nil, logical.ErrUnsupportedOperation
	}
	te, err := s.wrappingEntry(ctx, req)
	if err != nil {
		return nil, err
	}
	s.c.wrapMu.Lock()
	defer s.c.wrapMu.Unlock()
	var wr wrappedResponse
	ok, err := getJSON(ctx, s.c.barrier, wrappingPrefix+te.Accessor, &wr)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errBadWrapToken
	}
	if err := s.c.barrier.Delete(ctx, wrappingPrefix+te.Accessor); err != nil {
		return nil, fmt.Errorf("consume wrapped response: %w", err)
	}
	if err := s.c.tokens.Revoke(ctx, te.ID); err != nil {
		s.c.logger.Warn().Err(err).Msg("unwrapped, but the wrapping token could not be revoked; it has no response left")
	}
	return &logical.Response{Data: wr.Data, Auth: wr.Auth, Warnings: wr.Warnings}, nil
}

func (s *systemBackend) wrapLookup(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	te, err := s.wrappingEntry(ctx, req)
	if err != nil {
		return nil, err
	}
	var wr wrappedResponse
	ok, err := getJSON(ctx, s.c.barrier, wrappingPrefix+te.Accessor, &wr)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errBadWrapToken
	}
	return &logical.Response{Data: map[string]any{
		"creation_path": wr.CreationPath,
		"creation_time": wr.CreationTime.Format(time.RFC3339Nano),
		"creation_ttl":  wr.TTL,
	}}, nil
}
