package acl

import (
	"fmt"
	"strings"
)

// A pattern is a policy path. Its grammar (Vault's, with two deliberate
// tightenings marked *):
//
//	pattern  = segment { "/" segment } [ "*" ]
//	segment  = "+" | literal            (a literal may be empty)
//
//   - A trailing "*" makes the pattern a glob: it matches every path that
//     starts with the pattern minus the "*" (so "secret/*" matches "secret/"
//     and "secret/a/b" but not "secret").
//   - "+" stands for exactly one path segment, any text without "/" (the empty
//     segment of "a//b" included, as in Vault).
//   - A leading "/" is dropped.
//   - "+*" is rejected (Vault rejects it too).
//   - * "*" anywhere but at the end is rejected (Vault takes it literally,
//     which matches nothing anyone meant).
//   - * "+" inside a segment ("a+b") is rejected (Vault takes it literally), so
//     a path whose segment contains "+" can only be granted through a glob.
//   - Templated paths ("{{identity.entity.id}}") are rejected: Coffer has no
//     identity store to fill them from.

// normalizePattern drops a leading "/" and checks the grammar above. The error
// is a sentence without position; the parser adds the line.
func normalizePattern(p string) (string, error) {
	p = strings.TrimPrefix(p, "/")
	if p == "" {
		return "", fmt.Errorf("the path is empty; write the request path without /v1/, for example \"secret/data/app\"")
	}
	if strings.Contains(p, "{{") {
		return "", fmt.Errorf("path %q: templated policy paths are not supported by Coffer; write the path out in full", p)
	}
	if i := strings.IndexByte(p, '*'); i >= 0 && i != len(p)-1 {
		return "", fmt.Errorf("path %q: \"*\" is only allowed as the last character (a prefix glob); use \"+\" for one segment in the middle", p)
	}
	if strings.Contains(p, "+*") {
		return "", fmt.Errorf("path %q: \"+*\" is not allowed; use \"+\" for one whole segment or \"+/*\" for everything below it", p)
	}
	if strings.IndexByte(p, '+') >= 0 {
		for _, seg := range strings.Split(strings.TrimSuffix(p, "*"), "/") {
			if seg != "+" && strings.IndexByte(seg, '+') >= 0 {
				return "", fmt.Errorf("path %q: \"+\" must be a whole segment (\"a/+/b\"), found in %q", p, seg)
			}
		}
	}
	return p, nil
}

// rule is one compiled pattern with the merged capabilities of every policy
// path spelled the same way, and the keys of Vault's precedence order.
type rule struct {
	pattern string     // as written, normalized ("secret/+/x*")
	caps    Capability // union; Deny alone if any contributor denied

	stripped  string // pattern without the trailing "*"
	prefix    bool   // pattern ends in "*"
	partial   string // for a glob: the text its last segment must start with
	wildcards int    // number of "+" segments
	firstWild int    // byte offset of the first "+" or of the glob; len+1 for an exact path
}

func newRule(pattern string, caps Capability) *rule {
	r := &rule{pattern: pattern, caps: caps}
	r.stripped = strings.TrimSuffix(pattern, "*")
	r.prefix = len(r.stripped) != len(pattern)
	r.firstWild = len(r.stripped) + 1
	if r.prefix {
		r.firstWild = len(r.stripped)
		r.partial = r.stripped[strings.LastIndexByte(r.stripped, '/')+1:]
	}
	off := 0
	for seg := range strings.SplitSeq(r.stripped, "/") {
		if seg == "+" {
			if r.wildcards == 0 {
				r.firstWild = off
			}
			r.wildcards++
		}
		off += len(seg) + 1
	}
	return r
}

// exact reports whether the rule has neither glob nor "+": it matches one path.
func (r *rule) exact() bool { return !r.prefix && r.wildcards == 0 }

// merge adds another policy's capabilities for the same pattern: the union,
// except that Deny absorbs everything.
func mergeCaps(a, b Capability) Capability {
	if (a|b)&Deny != 0 {
		return Deny
	}
	return a | b
}

// outranks reports whether a has higher priority than b when both match a
// request path. It is Vault's documented order, read from b's side: b is lower
// priority if (1) its first "+" or "*" comes earlier, (2) it ends in "*" and a
// does not, (3) it has more "+" segments, (4) it is shorter, (5) it is smaller
// lexicographically. Lengths and text are compared without the trailing "*".
// An exact path outranks every wildcard pattern (its firstWild is past its
// end), though the ACL never needs to ask: exact paths are looked up first.
func outranks(a, b *rule) bool {
	if a.firstWild != b.firstWild {
		return a.firstWild > b.firstWild
	}
	if a.prefix != b.prefix {
		return b.prefix
	}
	if a.wildcards != b.wildcards {
		return a.wildcards < b.wildcards
	}
	if len(a.stripped) != len(b.stripped) {
		return len(a.stripped) > len(b.stripped)
	}
	return a.stripped > b.stripped
}
