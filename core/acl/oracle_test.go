package acl

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

// oracle is the dumb evaluator: it keeps the merged rules in a list, matches
// each against the path with a regular expression, and picks the winner with
// the five documented precedence rules, computed afresh from the pattern text.
type oracle struct {
	root  bool
	rules []oracleRule
}

type oracleRule struct {
	pattern string
	caps    Capability
	re      *regexp.Regexp
}

func newOracle(policies []*Policy) *oracle {
	o := &oracle{}
	merged := map[string]Capability{}
	for _, p := range policies {
		if p.Name == RootPolicyName {
			o.root = true
		}
		for _, r := range p.Paths {
			c := merged[r.Path] | r.Capabilities
			if c&Deny != 0 {
				c = Deny
			}
			merged[r.Path] = c
		}
	}
	for pat, caps := range merged {
		o.rules = append(o.rules, oracleRule{pat, caps, patternRegexp(pat)})
	}
	return o
}

// patternRegexp translates a pattern: "+" is one segment, a trailing "*" is
// any suffix, everything else is literal.
func patternRegexp(pat string) *regexp.Regexp {
	glob := strings.HasSuffix(pat, "*")
	segs := strings.Split(strings.TrimSuffix(pat, "*"), "/")
	for i, s := range segs {
		if s == "+" {
			segs[i] = "[^/]*"
		} else {
			segs[i] = regexp.QuoteMeta(s)
		}
	}
	expr := "^" + strings.Join(segs, "/")
	if glob {
		expr += ".*"
	}
	return regexp.MustCompile(expr + "$")
}

// lowerPriority reports whether p1 is lower priority than p2, rule by rule as
// Vault's documentation states them.
func lowerPriority(p1, p2 string) bool {
	firstWild := func(p string) int {
		i := strings.IndexAny(p, "+*")
		if i < 0 {
			return len(p) + 1
		}
		return i
	}
	glob := func(p string) bool { return strings.HasSuffix(p, "*") }
	plus := func(p string) int {
		n := 0
		for _, s := range strings.Split(strings.TrimSuffix(p, "*"), "/") {
			if s == "+" {
				n++
			}
		}
		return n
	}
	bare := func(p string) string { return strings.TrimSuffix(p, "*") }
	switch {
	case firstWild(p1) != firstWild(p2): // (1)
		return firstWild(p1) < firstWild(p2)
	case glob(p1) != glob(p2): // (2)
		return glob(p1)
	case plus(p1) != plus(p2): // (3)
		return plus(p1) > plus(p2)
	case len(bare(p1)) != len(bare(p2)): // (4)
		return len(bare(p1)) < len(bare(p2))
	}
	return bare(p1) < bare(p2) // (5)
}

func (o *oracle) decide(path string) Decision {
	if o.root {
		return Decision{Capabilities: AllCapabilities, Root: true}
	}
	return o.decideBare(strings.TrimPrefix(path, "/")) // one leading slash is tolerated
}

func (o *oracle) decideBare(path string) Decision {
	var best *oracleRule
	for i := range o.rules {
		r := &o.rules[i]
		if !r.re.MatchString(path) {
			continue
		}
		if !strings.ContainsAny(r.pattern, "+*") { // an exact path wins outright
			return Decision{Pattern: r.pattern, Capabilities: r.caps}
		}
		if best == nil || lowerPriority(best.pattern, r.pattern) {
			best = r
		}
	}
	if best == nil {
		return Decision{}
	}
	return Decision{Pattern: best.pattern, Capabilities: best.caps}
}

// decideOp is Vault's list rule spelled out: the exact rule on the path, the
// exact rule on the path without its trailing slash, the best pattern on the
// path without the slash, the best pattern on the path.
func (o *oracle) decideOp(path string, op Operation) Decision {
	if op != OpList || o.root {
		return o.decide(path)
	}
	path = strings.TrimPrefix(path, "/")
	trimmed := strings.TrimSuffix(path, "/")
	for _, p := range []string{path, trimmed} {
		for _, r := range o.rules {
			if r.pattern == p && !strings.ContainsAny(p, "+*") {
				return Decision{Pattern: p, Capabilities: r.caps}
			}
		}
	}
	candidates := []string{path}
	if trimmed != path {
		candidates = []string{trimmed, path}
	}
	for _, p := range candidates {
		if d := o.decideBare(p); d.Pattern != "" {
			return d
		}
	}
	return Decision{}
}

// TestACLAgainstOracle compares the tree with the oracle on random policy sets
// drawn from a small alphabet, so that patterns overlap a lot. A failure prints
// the seed; rerun just that seed by editing the loop.
func TestACLAgainstOracle(t *testing.T) {
	segs := []string{"a", "b", "ab", "+", ""}
	partials := []string{"", "a", "ab", "b"}
	capsPool := []Capability{Read, Update, List, Read | List, Sudo | Create, Deny}
	for seed := uint64(1); seed <= 300; seed++ {
		rng := rand.New(rand.NewPCG(seed, 0xC0FFEE))
		randPattern := func() string {
			n := 1 + rng.IntN(4)
			parts := make([]string, n)
			for i := range parts {
				parts[i] = segs[rng.IntN(len(segs))]
			}
			p := strings.Join(parts, "/")
			if rng.IntN(2) == 0 {
				if strings.HasSuffix(p, "+") {
					p += "/"
				}
				p += partials[rng.IntN(len(partials))] + "*"
			}
			return p
		}
		var policies []*Policy
		for i := range 1 + rng.IntN(6) {
			p := &Policy{Name: "p" + string(rune('a'+i))}
			for range 1 + rng.IntN(8) {
				pat := randPattern()
				if _, err := normalizePattern(pat); err != nil || strings.HasPrefix(pat, "/") {
					continue
				}
				p.Paths = append(p.Paths, PathRule{Path: pat, Capabilities: capsPool[rng.IntN(len(capsPool))]})
			}
			policies = append(policies, p)
		}
		a, err := NewACL(policies...)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		o := newOracle(policies)
		pathSegs := []string{"a", "b", "ab", "abc", "ba", ""}
		for range 200 {
			n := 1 + rng.IntN(5)
			parts := make([]string, n)
			for i := range parts {
				parts[i] = pathSegs[rng.IntN(len(pathSegs))]
			}
			path := strings.Join(parts, "/")
			op := OpRead
			if rng.IntN(2) == 0 {
				op, path = OpList, path+"/"
			}
			got, want := a.DecideOp(path, op), o.decideOp(path, op)
			if got != want {
				var rules []string
				for _, p := range policies {
					for _, r := range p.Paths {
						rules = append(rules, p.Name+":"+r.Path+"="+r.Capabilities.String())
					}
				}
				t.Fatalf("seed %d: DecideOp(%q, %s) = %q %v, oracle says %q %v\nrules: %s",
					seed, path, op, got.Pattern, got.Capabilities, want.Pattern, want.Capabilities, strings.Join(rules, " "))
			}
		}
	}
}

// TestOracleAgreesWithDocumentedOrder keeps the oracle honest on the rules'
// own examples.
func TestOracleAgreesWithDocumentedOrder(t *testing.T) {
	pairs := [][2]string{ // lower, higher
		{"secret/+/+/foo/*", "secret/*"},
		{"foo/+", "foo/a*"},
		{"foo/*", "foo/+"},
		{"foo/+/+/baz", "foo/+/bar/baz"},
		{"foo/+/bar/b*", "foo/+/bar/ba*"},
		{"s/+/+/b", "s/+/a/+"},
	}
	for _, p := range pairs {
		if !lowerPriority(p[0], p[1]) || lowerPriority(p[1], p[0]) {
			t.Errorf("oracle orders %q and %q wrongly", p[0], p[1])
		}
		if !outranks(newRule(p[1], Read), newRule(p[0], Read)) || outranks(newRule(p[0], Read), newRule(p[1], Read)) {
			t.Errorf("outranks orders %q and %q wrongly", p[0], p[1])
		}
	}
}
