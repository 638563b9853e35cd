package core

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/cofferhq/coffer/core/acl"
	"github.com/cofferhq/coffer/logical"
)

// ACL policies are stored under the barrier, replicated:
//
//	core/policy/acl/<name>   JSON {"v": 1, "name": ..., "policy": <the text as written>}
//
// The root and response-wrapping policies are built in and never stored; the
// default policy is stored at init and may be rewritten but not deleted.
const (
	policyPrefix  = "core/policy/acl/"
	policyVersion = 1
)

type storedPolicy struct {
	V      int    `json:"v"`
	Name   string `json:"name"`
	Policy string `json:"policy"`
}

// policyStore reads, writes and compiles ACL policies. Compiled ACLs are
// cached per policy set and dropped whenever any policy changes.
type policyStore struct {
	s logical.Storage

	mu    sync.Mutex
	cache map[string]*acl.ACL
}

func newPolicyStore(s logical.Storage) *policyStore {
	return &policyStore{s: s, cache: map[string]*acl.ACL{}}
}

// invalidate drops every compiled ACL (a policy changed here or arrived by replication).
func (ps *policyStore) invalidate() {
	ps.mu.Lock()
	ps.cache = map[string]*acl.ACL{}
	ps.mu.Unlock()
}

func (ps *policyStore) get(ctx context.Context, name string) (*acl.Policy, error) {
	name = acl.NormalizeName(name)
	switch name {
	case acl.RootPolicyName:
		return acl.RootPolicy(), nil
	case acl.ResponseWrappingPolicyName:
		return acl.ResponseWrapping(), nil
	}
	var sp storedPolicy
	ok, err := getJSON(ctx, ps.s, policyPrefix+name, &sp)
	if err != nil || !ok {
		return nil, err
	}
	return acl.Parse(sp.Name, sp.Policy)
}

// getRaw returns the text of a policy as written, or ok=false.
func (ps *policyStore) getRaw(ctx context.Context, name string) (string, bool, error) {
	name = acl.NormalizeName(name)
	if name == acl.RootPolicyName {
		return "", true, nil
	}
	if name == acl.ResponseWrappingPolicyName {
		return acl.ResponseWrappingPolicy, true, nil
	}
	var sp storedPolicy
	ok, err := getJSON(ctx, ps.s, policyPrefix+name, &sp)
	return sp.Policy, ok, err
}

// put parses and stores a policy; a parse error names the line.
func (ps *policyStore) put(ctx context.Context, name, text string) error {
	name = acl.NormalizeName(name)
	if name == "" {
		return logical.InvalidRequest("a policy name is required")
	}
	if acl.IsImmutable(name) {
		return logical.InvalidRequest("cannot update the %q policy: it is built in", name)
	}
	if strings.TrimSpace(text) == "" {
		return logical.InvalidRequest("missing policy text: send {\"policy\": \"path \\\"secret/*\\\" { capabilities = [\\\"read\\\"] }\"}")
	}
	if _, err := acl.Parse(name, text); err != nil {
		return logical.InvalidRequest("failed to parse policy: %v", err)
	}
	if err := putJSON(ctx, ps.s, policyPrefix+name, storedPolicy{V: policyVersion, Name: name, Policy: text}); err != nil {
		return err
	}
	ps.invalidate()
	return nil
}

func (ps *policyStore) delete(ctx context.Context, name string) error {
	name = acl.NormalizeName(name)
	if !acl.IsDeletable(name) {
		return logical.InvalidRequest("cannot delete the %q policy", name)
	}
	if err := ps.s.Delete(ctx, policyPrefix+name); err != nil {
		return err
	}
	ps.invalidate()
	return nil
}

func (ps *policyStore) list(ctx context.Context) ([]string, error) {
	names, err := ps.s.List(ctx, policyPrefix)
	if err != nil {
		return nil, err
	}
	out := []string{acl.RootPolicyName}
	for _, n := range names {
		if !strings.HasSuffix(n, "/") {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out, nil
}

// ensureDefault stores the default policy unless one exists.
func (ps *policyStore) ensureDefault(ctx context.Context) error {
	_, ok, err := ps.getRaw(ctx, acl.DefaultPolicyName)
	if err != nil || ok {
		return err
	}
	return putJSON(ctx, ps.s, policyPrefix+acl.DefaultPolicyName, storedPolicy{V: policyVersion, Name: acl.DefaultPolicyName, Policy: acl.DefaultPolicy})
}

// aclFor compiles (or returns the cached) ACL of a set of policy names.
// Names that do not exist are skipped, as in Vault.
func (ps *policyStore) aclFor(ctx context.Context, names []string) (*acl.ACL, error) {
	key := append([]string(nil), names...)
	sort.Strings(key)
	ck := strings.Join(key, "\x00")
	ps.mu.Lock()
	a, ok := ps.cache[ck]
	ps.mu.Unlock()
	if ok {
		return a, nil
	}
	var pols []*acl.Policy
	for _, n := range key {
		p, err := ps.get(ctx, n)
		if err != nil {
			var pe *acl.ParseError
			if errors.As(err, &pe) {
				return nil, fmt.Errorf("stored policy %q no longer parses: %w", n, err)
			}
			return nil, err
		}
		if p != nil {
			pols = append(pols, p)
		}
	}
	a, err := acl.NewACL(pols...)
	if err != nil {
		return nil, err
	}
	ps.mu.Lock()
	ps.cache[ck] = a
	ps.mu.Unlock()
	return a, nil
}
