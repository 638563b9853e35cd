package acl

import (
	"fmt"
	"slices"
	"strings"
)

// ACL is a compiled set of policies: the permissions of one token. It is
// immutable once built and safe for concurrent use; build a new one when the
// token's policies change.
//
// Evaluation follows Vault: an exact path rule wins outright; otherwise, of the
// glob and "+" patterns matching the request path, the single one of highest
// priority (see outranks) decides, and its capabilities are not combined with
// those of any other pattern. A path no rule matches is denied. Rules spelled
// the same way in several policies were merged when the ACL was built.
type ACL struct {
	root  bool
	exact map[string]Capability // patterns without "*" or "+"
	tree  *node                 // every other pattern; nil if there are none
}

// node is one level of a tree over path segments. A pattern with k full
// segments before its end or glob sits k levels down; "+" segments follow the
// plus edge. Looking a path up walks its segments from the root, following the
// literal edge and the plus edge, and compares the candidates it meets with
// outranks: no scan over all patterns, no allocation.
type node struct {
	lit  map[string]*node
	plus *node
	end  *rule // the non-glob "+" pattern ending at this node, if any
	// globs holds the glob patterns whose last, partial segment follows this
	// node, by that partial text; globLens lists the partials' lengths,
	// longest first, so that the longest partial matching a segment is found
	// with one map lookup per distinct length.
	globs    map[string]*rule
	globLens []int
}

// Decision is the outcome of evaluating one request path.
type Decision struct {
	// Pattern is the policy path that decided, as written in the policy
	// ("secret/+/config", "secret/*"); empty when the ACL is root or when no
	// rule matched (default deny).
	Pattern string
	// Capabilities granted on the path: AllCapabilities for root, Deny alone
	// when the deciding rule denies, 0 when nothing matched.
	Capabilities Capability
	// Root is true when the ACL holds the root policy.
	Root bool
}

// Allows reports whether the decision permits op.
func (d Decision) Allows(op Operation) bool { return d.Capabilities.Allows(op) }

// Sudo reports whether the decision grants sudo (Deny never does).
func (d Decision) Sudo() bool {
	return d.Capabilities&Deny == 0 && d.Capabilities&Sudo != 0
}

// NewACL compiles policies into an ACL. The root policy (by name) makes the
// ACL allow everything and its paths are ignored. Policies are normally the
// output of Parse; hand-built ones are validated the same way, and a path
// granting nothing or written against the pattern grammar is an error.
func NewACL(policies ...*Policy) (*ACL, error) {
	a := &ACL{exact: make(map[string]Capability)}
	merged := make(map[string]Capability)
	var order []string
	for i, p := range policies {
		if p == nil {
			return nil, fmt.Errorf("new acl: policy %d is nil; pass policies returned by Parse", i)
		}
		if IsRoot(p.Name) {
			a.root = true
			continue
		}
		for _, pr := range p.Paths {
			pat, err := normalizePattern(pr.Path)
			if err != nil {
				return nil, fmt.Errorf("new acl: policy %q: %w", p.Name, err)
			}
			if pr.Capabilities == 0 {
				return nil, fmt.Errorf("new acl: policy %q: path %q grants no capability; give it capabilities or \"deny\"", p.Name, pat)
			}
			old, seen := merged[pat]
			if !seen {
				order = append(order, pat)
			}
			merged[pat] = mergeCaps(old, pr.Capabilities)
		}
	}
	if a.root {
		a.exact = nil
		return a, nil
	}
	for _, pat := range order {
		r := newRule(pat, merged[pat])
		if r.exact() {
			a.exact[pat] = r.caps
			continue
		}
		if a.tree == nil {
			a.tree = &node{}
		}
		a.tree.insert(r)
	}
	return a, nil
}

// insert places r in the tree below n.
func (n *node) insert(r *rule) {
	segs := strings.Split(r.stripped, "/")
	last := len(segs)
	if r.prefix {
		last-- // the final segment is the glob's partial text
	}
	for _, seg := range segs[:last] {
		if seg == "+" {
			if n.plus == nil {
				n.plus = &node{}
			}
			n = n.plus
			continue
		}
		child := n.lit[seg]
		if child == nil {
			if n.lit == nil {
				n.lit = make(map[string]*node)
			}
			child = &node{}
			n.lit[seg] = child
		}
		n = child
	}
	if !r.prefix {
		n.end = r // two rules cannot share a node: equal patterns were merged
		return
	}
	if n.globs == nil {
		n.globs = make(map[string]*rule)
	}
	n.globs[r.partial] = r // two rules cannot share a partial here: equal patterns were merged
	if !slices.Contains(n.globLens, len(r.partial)) {
		n.globLens = append(n.globLens, len(r.partial))
		slices.SortFunc(n.globLens, func(a, b int) int { return b - a })
	}
}

// search returns the highest-priority rule among best and the rules below n
// matching path, whose segment to match next starts at byte start (start past
// the end of path: every segment has been consumed).
//
// Of the globs hanging at one node, the one with the longest partial segment
// outranks the others: they share their "+" positions and differ only in
// length, so the longest that matches is the only one worth comparing.
func (n *node) search(path string, start int, best *rule) *rule {
	if start > len(path) {
		if n.end != nil && (best == nil || outranks(n.end, best)) {
			best = n.end
		}
		return best
	}
	end := strings.IndexByte(path[start:], '/')
	if end < 0 {
		end = len(path)
	} else {
		end += start
	}
	seg := path[start:end]
	for _, l := range n.globLens {
		if l > len(seg) {
			continue
		}
		if g := n.globs[seg[:l]]; g != nil {
			if best == nil || outranks(g, best) {
				best = g
			}
			break
		}
	}
	if child := n.lit[seg]; child != nil {
		best = child.search(path, end+1, best)
	}
	if n.plus != nil {
		best = n.plus.search(path, end+1, best)
	}
	return best
}

// Decide evaluates path, a request path without /v1/ and without a leading
// slash (one leading slash is tolerated).
func (a *ACL) Decide(path string) Decision {
	if a.root {
		return Decision{Capabilities: AllCapabilities, Root: true}
	}
	if len(path) > 0 && path[0] == '/' {
		path = path[1:]
	}
	if c, ok := a.exact[path]; ok {
		return Decision{Pattern: path, Capabilities: c}
	}
	if a.tree == nil {
		return Decision{}
	}
	if r := a.tree.search(path, 0, nil); r != nil {
		return Decision{Pattern: r.pattern, Capabilities: r.caps}
	}
	return Decision{}
}

// DecideOp evaluates path for op. It is Decide, except for a list, whose path
// ends in "/" as Vault sends it: Vault's rule for lists applies, in this order
// (the first that matches decides):
//
//  1. an exact rule on the path as sent ("secret/metadata/foo/");
//  2. an exact rule on the path without its trailing slash
//     ("secret/metadata/foo"), so a policy on the folder grants listing it;
//  3. the glob and "+" rules matching the path without its trailing slash;
//  4. the glob and "+" rules matching the path as sent.
func (a *ACL) DecideOp(path string, op Operation) Decision {
	if op != OpList || a.root {
		return a.Decide(path)
	}
	if len(path) > 0 && path[0] == '/' {
		path = path[1:]
	}
	if c, ok := a.exact[path]; ok {
		return Decision{Pattern: path, Capabilities: c}
	}
	trimmed, hadSlash := strings.CutSuffix(path, "/")
	if c, ok := a.exact[trimmed]; ok {
		return Decision{Pattern: trimmed, Capabilities: c}
	}
	if a.tree == nil {
		return Decision{}
	}
	if hadSlash {
		if r := a.tree.search(trimmed, 0, nil); r != nil {
			return Decision{Pattern: r.pattern, Capabilities: r.caps}
		}
	}
	if r := a.tree.search(path, 0, nil); r != nil {
		return Decision{Pattern: r.pattern, Capabilities: r.caps}
	}
	return Decision{}
}

// Capabilities returns the capabilities granted on path (see Decision).
func (a *ACL) Capabilities(path string) Capability {
	return a.Decide(path).Capabilities
}

// Allowed reports whether op is permitted on path (see DecideOp), and
// whether the deciding rule grants sudo. The caller must also refuse a path
// for which RequiresSudo is true unless sudo is: Allowed does not know which
// paths need it.
func (a *ACL) Allowed(path string, op Operation) (allowed, sudo bool) {
	d := a.DecideOp(path, op)
	return d.Allows(op), d.Sudo()
}

// IsRoot reports whether the ACL holds the root policy.
func (a *ACL) IsRoot() bool { return a.root }
