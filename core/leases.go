package core

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/cofferhq/coffer/core/tokens"
	"github.com/cofferhq/coffer/logical"
)

// sys/leases/*: the leases that exist today are the tokens' (a service
// token that expires), local to each cluster like the tokens themselves;
// dynamic secrets will add theirs. Vault's paths, shapes and answers:
//
//	lookup                 PUT {lease_id}            the lease's times
//	lookup/<prefix>        LIST (sudo)               lease ids one level under prefix
//	renew[/<lease_id>]     PUT {lease_id, increment} a token lease: 400, renew tokens at auth/token/renew*
//	revoke[/<lease_id>]    PUT {lease_id}            revoke it (an unknown lease: nothing to do)
//	revoke-prefix/<prefix> PUT (sudo)                revoke every lease under prefix
//	revoke-force/<prefix>  PUT (sudo)                the same, going on past errors
//	tidy                   PUT                       remove expired tokens and dangling records
func (s *systemBackend) leases(ctx context.Context, req *logical.Request, p string) (*logical.Response, error) {
	op := req.Operation
	write := op == logical.UpdateOperation || op == logical.CreateOperation
	store := s.c.tokens
	leaseArg := func(rest string) (string, error) {
		id, err := fieldString(req.Data, "lease_id")
		if err != nil {
			return "", err
		}
		if id == "" {
			id = rest
		}
		if id == "" {
			return "", logical.InvalidRequest("missing lease_id: give the lease id (sys/leases/lookup/<prefix> lists them)")
		}
		return id, nil
	}
	cmd, rest, _ := strings.Cut(p, "/")
	switch {
	case cmd == "lookup" && (op == logical.ListOperation || (op == logical.ReadOperation && rest != "")):
		return s.listLeases(ctx, rest)
	case cmd == "lookup" && write:
		id, err := leaseArg(rest)
		if err != nil {
			return nil, err
		}
		l, err := store.LookupLease(ctx, id)
		if err != nil {
			return nil, leaseError(err)
		}
		return &logical.Response{Data: tokens.LeaseData(l, store.Now())}, nil
	case cmd == "renew" && write:
		id, err := leaseArg(rest)
		if err != nil {
			return nil, err
		}
		if _, err := store.LookupLease(ctx, id); err != nil {
			return nil, leaseError(err)
		}
		return nil, logical.Errorf(http.StatusBadRequest, "tokens cannot be renewed through this endpoint: renew the token with auth/token/renew, renew-self or renew-accessor")
	case cmd == "revoke" && write:
		id, err := leaseArg(rest)
		if err != nil {
			return nil, err
		}
		return nil, store.RevokeLease(ctx, id)
	case (cmd == "revoke-prefix" || cmd == "revoke-force") && write:
		if rest == "" {
			return nil, logical.InvalidRequest("missing prefix: give it in the path, sys/leases/%s/<prefix>", cmd)
		}
		_, err := store.RevokeLeasePrefix(ctx, rest, cmd == "revoke-force")
		return nil, err
	case cmd == "tidy" && write && rest == "":
		res, err := store.Tidy(ctx)
		if err != nil {
			return nil, err
		}
		return &logical.Response{StatusCode: http.StatusAccepted, Warnings: []string{fmt.Sprintf(
			"Tidy operation done: %d expired tokens revoked, %d dangling accessors and %d dangling parent links removed",
			res.Expired, res.Accessors, res.ParentLinks)}}, nil
	case cmd == "lookup" || cmd == "renew" || cmd == "revoke" || cmd == "revoke-prefix" || cmd == "revoke-force" || cmd == "tidy":
		return nil, fmt.Errorf("%w: %s on sys/leases/%s", logical.ErrUnsupportedOperation, op, p)
	}
	return nil, logical.Errorf(http.StatusNotFound, "no handler for route \"sys/leases/%s\": sys/leases serves lookup, renew, revoke, revoke-prefix, revoke-force and tidy", p)
}

// listLeases answers LIST sys/leases/lookup/<prefix>: the lease ids one
// level under prefix, folders with a trailing "/"; 404 when there is none.
func (s *systemBackend) listLeases(ctx context.Context, prefix string) (*logical.Response, error) {
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	ls, err := s.c.tokens.Leases(ctx, prefix)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var keys []string
	for _, l := range ls {
		k := strings.TrimPrefix(l.ID, prefix)
		if i := strings.Index(k, "/"); i >= 0 {
			k = k[:i+1]
		}
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil, logical.ErrNotFound
	}
	sort.Strings(keys)
	return &logical.Response{Data: map[string]any{"keys": keys}}, nil
}

func leaseError(err error) error {
	if errors.Is(err, tokens.ErrLeaseNotFound) {
		return logical.Errorf(http.StatusBadRequest, "invalid lease: no lease has this id on this cluster (leases are local to the cluster that issued them; list them with LIST sys/leases/lookup/<prefix>)")
	}
	return err
}
