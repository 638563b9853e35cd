package acl

import (
	"fmt"
	"strings"
	"testing"
)

// mustPolicy builds a policy from "pattern=cap,cap" rules.
func mustPolicy(t testing.TB, name string, rules ...string) *Policy {
	t.Helper()
	var b strings.Builder
	for _, r := range rules {
		pat, caps, _ := strings.Cut(r, "=")
		fmt.Fprintf(&b, "path %q {\n  capabilities = [%s]\n}\n", pat, quoteList(caps))
	}
	p, err := Parse(name, b.String())
	if err != nil {
		t.Fatalf("policy %s: %v", name, err)
	}
	return p
}

func quoteList(csv string) string {
	parts := strings.Split(csv, ",")
	for i, p := range parts {
		parts[i] = fmt.Sprintf("%q", p)
	}
	return strings.Join(parts, ", ")
}

func mustACL(t testing.TB, policies ...*Policy) *ACL {
	t.Helper()
	a, err := NewACL(policies...)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestPrecedenceTable checks the matching rules against Vault's documented
// precedence: given two patterns P1 and P2 matching a path, P1 is lower
// priority if (1) its first "+" or "*" occurs earlier, (2) it ends in "*" and
// P2 does not, (3) it has more "+" segments, (4) it is shorter, (5) it is
// smaller lexicographically; an exact path beats every pattern; the one
// highest-priority rule decides alone.
func TestPrecedenceTable(t *testing.T) {
	tests := []struct {
		name     string
		policies [][]string // each inner slice is one policy's rules
		path     string
		winner   string // deciding pattern, "" for default deny
		caps     Capability
	}{
		// The example of Vault's policy documentation: the first wildcard is at
		// the same place, both end in "*", the second has two "+" segments.
		{"docs: secret/* beats secret/+/+/foo/* by rule 3",
			[][]string{{"secret/*=read", "secret/+/+/foo/*=update"}}, "secret/a/b/foo/c", "secret/*", Read},
		{"docs: secret/+/+/foo/* alone matches",
			[][]string{{"secret/+/+/foo/*=update"}}, "secret/a/b/foo/c", "secret/+/+/foo/*", Update},

		{"exact beats every pattern",
			[][]string{{"secret/foo=read", "secret/*=update", "secret/+=list", "secret/fo*=delete"}}, "secret/foo", "secret/foo", Read},
		{"exact deny beats a broad grant",
			[][]string{{"secret/*=read,list"}, {"secret/admin=deny"}}, "secret/admin", "secret/admin", Deny},

		// Rule 1: the later first wildcard wins.
		{"rule 1: secret/foo/* beats secret/*",
			[][]string{{"secret/*=read", "secret/foo/*=update"}}, "secret/foo/bar", "secret/foo/*", Update},
		{"rule 1: secret/foo/* beats secret/+/bar",
			[][]string{{"secret/+/bar=read", "secret/foo/*=update"}}, "secret/foo/bar", "secret/foo/*", Update},
		{"rule 1: foo/a* beats foo/+",
			[][]string{{"foo/+=read", "foo/a*=update"}}, "foo/abc", "foo/a*", Update},
		{"rule 1: foo/bar/+/baz beats foo/+/bar/baz",
			[][]string{{"foo/+/bar/baz=read", "foo/bar/+/baz=update"}}, "foo/bar/bar/baz", "foo/bar/+/baz", Update},
		{"rule 2: secret/+/bar beats secret/* (wildcards at the same place)",
			[][]string{{"secret/*=read", "secret/+/bar=update"}}, "secret/x/bar", "secret/+/bar", Update},
		{"rule 1: secret/x/* beats secret/+/bar/*",
			[][]string{{"secret/+/bar/*=read", "secret/x/*=update"}}, "secret/x/bar/y", "secret/x/*", Update},

		// Rule 2: not ending in "*" wins.
		{"rule 2: foo/+ beats foo/*",
			[][]string{{"foo/*=read", "foo/+=update"}}, "foo/x", "foo/+", Update},
		{"rule 2: foo/+/bar beats foo/+/ba*",
			[][]string{{"foo/+/ba*=read", "foo/+/bar=update"}}, "foo/x/bar", "foo/+/bar", Update},
		{"rule 2 does not apply when only the glob matches",
			[][]string{{"foo/+/ba*=read", "foo/+/bar=update"}}, "foo/x/barn", "foo/+/ba*", Read},

		// Rule 3: fewer "+" segments win.
		{"rule 3: foo/+/bar/baz beats foo/+/+/baz",
			[][]string{{"foo/+/+/baz=read", "foo/+/bar/baz=update"}}, "foo/x/bar/baz", "foo/+/bar/baz", Update},
		{"rule 3: secret/+/* beats secret/+/+/*",
			[][]string{{"secret/+/+/*=read", "secret/+/*=update"}}, "secret/a/b/c", "secret/+/*", Update},

		// Rule 4: longer wins.
		{"rule 4: foo/+/bar/ba* beats foo/+/bar/b*",
			[][]string{{"foo/+/bar/b*=read", "foo/+/bar/ba*=update"}}, "foo/x/bar/baz", "foo/+/bar/ba*", Update},
		{"rule 4: the longest glob wins",
			[][]string{{"secret/*=read"}, {"secret/data/*=update"}, {"secret/data/app*=list"}}, "secret/data/app1/x", "secret/data/app*", List},
		{"rule 4: foo/+/bar/* beats foo/+/ba*",
			[][]string{{"foo/+/ba*=read", "foo/+/bar/*=update"}}, "foo/x/bar/y", "foo/+/bar/*", Update},

		// Rule 5: lexicographically greater wins.
		{"rule 5: s/+/a/+ beats s/+/+/b",
			[][]string{{"s/+/+/b=read", "s/+/a/+=update"}}, "s/x/a/b", "s/+/a/+", Update},

		// No union across patterns: only the winner counts.
		{"no union: secret/foo* alone decides secret/foobar",
			[][]string{{"secret/*=read"}, {"secret/foo*=list"}}, "secret/foobar", "secret/foo*", List},
		{"deny on a more specific pattern beats a broader grant",
			[][]string{{"secret/*=read,list"}, {"secret/private/*=deny"}}, "secret/private/x", "secret/private/*", Deny},
		{"a broader deny loses to a more specific grant",
			[][]string{{"secret/*=deny"}, {"secret/public/*=read"}}, "secret/public/x", "secret/public/*", Read},

		// Merging the same pattern across policies.
		{"merge: union of capabilities",
			[][]string{{"secret/app/*=read"}, {"secret/app/*=update"}, {"secret/app/*=list"}}, "secret/app/x", "secret/app/*", Read | Update | List},
		{"merge: deny in one policy denies the merged rule",
			[][]string{{"secret/app/*=read,update"}, {"secret/app/*=deny"}}, "secret/app/x", "secret/app/*", Deny},
		{"merge: deny on a merged exact path",
			[][]string{{"secret/foo=read"}, {"secret/foo=sudo"}, {"secret/foo=deny"}}, "secret/foo", "secret/foo", Deny},
		{"merge: within one policy too",
			[][]string{{"a/+=read", "a/+=list"}}, "a/b", "a/+", Read | List},

		// "+" is exactly one segment; "*" is a string prefix.
		{"+: secret/+/bar matches secret/x/bar",
			[][]string{{"secret/+/bar=read"}}, "secret/x/bar", "secret/+/bar", Read},
		{"+: secret/+/bar does not match secret/x/y/bar",
			[][]string{{"secret/+/bar=read"}}, "secret/x/y/bar", "", 0},
		{"+: secret/+/bar does not match secret/bar",
			[][]string{{"secret/+/bar=read"}}, "secret/bar", "", 0},
		{"+: an empty segment is a segment, as in Vault",
			[][]string{{"secret/+/bar=read"}}, "secret//bar", "secret/+/bar", Read},
		{"+: trailing + needs exactly one more segment",
			[][]string{{"secret/+=read"}}, "secret/a/b", "", 0},
		{"+: a lone + matches any one-segment path",
			[][]string{{"+=read"}}, "sys", "+", Read},
		{"+/*: needs the + segment and the slash",
			[][]string{{"secret/+/*=read"}}, "secret/x", "", 0},
		{"+/*: matches below",
			[][]string{{"secret/+/*=read"}}, "secret/x/y/z", "secret/+/*", Read},
		{"+ then a partial glob",
			[][]string{{"secret/+/app*=read"}}, "secret/dev/app1/creds", "secret/+/app*", Read},
		{"glob: secret/* does not match secret",
			[][]string{{"secret/*=read"}}, "secret", "", 0},
		{"glob: secret/* matches secret/ (listing)",
			[][]string{{"secret/*=list"}}, "secret/", "secret/*", List},
		{"glob: a partial segment crosses into deeper segments",
			[][]string{{"secret/fo*=read"}}, "secret/foo/bar", "secret/fo*", Read},
		{"glob: * matches everything",
			[][]string{{"*=read"}}, "any/path/at/all", "*", Read},

		{"default deny: nothing matches",
			[][]string{{"secret/*=read"}}, "kv/app", "", 0},
		{"default deny: no policies", nil, "secret/foo", "", 0},
		{"a leading slash in the request is tolerated",
			[][]string{{"secret/foo=read"}}, "/secret/foo", "secret/foo", Read},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ps []*Policy
			for i, rules := range tt.policies {
				ps = append(ps, mustPolicy(t, fmt.Sprintf("p%d", i), rules...))
			}
			a := mustACL(t, ps...)
			d := a.Decide(tt.path)
			if d.Pattern != tt.winner || d.Capabilities != tt.caps {
				t.Errorf("Decide(%q) = %q %v, want %q %v", tt.path, d.Pattern, d.Capabilities, tt.winner, tt.caps)
			}
			if got := a.Capabilities(tt.path); got != tt.caps {
				t.Errorf("Capabilities(%q) = %v, want %v", tt.path, got, tt.caps)
			}
			// The same answer whatever the order of the policies.
			rev := make([]*Policy, len(ps))
			for i, p := range ps {
				rev[len(ps)-1-i] = p
			}
			if d2 := mustACL(t, rev...).Decide(tt.path); d2 != d {
				t.Errorf("policy order changed the decision: %+v vs %+v", d2, d)
			}
		})
	}
}

func TestAllowedAndSudo(t *testing.T) {
	a := mustACL(t,
		mustPolicy(t, "ops", "sys/audit/*=create,update,sudo", "sys/mounts=read", "secret/locked=deny"),
		mustPolicy(t, "dev", "secret/locked=sudo,read"),
	)
	tests := []struct {
		path          string
		op            Operation
		allowed, sudo bool
	}{
		{"sys/audit/file", OpUpdate, true, true},
		{"sys/audit/file", OpDelete, false, true},
		{"sys/mounts", OpRead, true, false},
		{"sys/mounts", OpUpdate, false, false},
		{"secret/locked", OpRead, false, false}, // merged deny: no sudo either
		{"nowhere", OpRead, false, false},
	}
	for _, tt := range tests {
		allowed, sudo := a.Allowed(tt.path, tt.op)
		if allowed != tt.allowed || sudo != tt.sudo {
			t.Errorf("Allowed(%q, %s) = %v, %v; want %v, %v", tt.path, tt.op, allowed, sudo, tt.allowed, tt.sudo)
		}
	}
}

func TestRootPolicyAllowsEverything(t *testing.T) {
	deny := mustPolicy(t, "deny-all", "*=deny", "sys/seal=deny")
	for _, a := range []*ACL{mustACL(t, RootPolicy()), mustACL(t, deny, RootPolicy())} {
		if !a.IsRoot() {
			t.Fatal("IsRoot() is false")
		}
		for _, path := range []string{"sys/seal", "secret/x", "", "auth/token/accessors/"} {
			for _, op := range []Operation{OpCreate, OpRead, OpUpdate, OpPatch, OpDelete, OpList} {
				if allowed, sudo := a.Allowed(path, op); !allowed || !sudo {
					t.Errorf("root: Allowed(%q, %s) = %v, %v", path, op, allowed, sudo)
				}
			}
		}
	}
	if mustACL(t, deny).IsRoot() {
		t.Error("an ACL without root reports IsRoot")
	}
}

func TestBuiltinPolicies(t *testing.T) {
	a := mustACL(t, Default())
	tests := []struct {
		path string
		op   Operation
		want bool
	}{
		{"auth/token/lookup-self", OpRead, true},
		{"auth/token/renew-self", OpUpdate, true},
		{"auth/token/revoke-self", OpUpdate, true},
		{"auth/token/lookup", OpUpdate, false},
		{"sys/capabilities-self", OpUpdate, true},
		{"cubbyhole/notes", OpCreate, true},
		{"cubbyhole/", OpList, true},
		{"sys/wrapping/unwrap", OpUpdate, true},
		{"sys/tools/hash/sha2-256", OpUpdate, true},
		{"secret/data/app", OpRead, false},
		{"sys/policies/acl/default", OpUpdate, false},
	}
	for _, tt := range tests {
		if allowed, sudo := a.Allowed(tt.path, tt.op); allowed != tt.want || sudo {
			t.Errorf("default: Allowed(%q, %s) = %v, %v; want %v, false", tt.path, tt.op, allowed, sudo, tt.want)
		}
	}
	w := mustACL(t, ResponseWrapping())
	if ok, _ := w.Allowed("cubbyhole/response", OpRead); !ok {
		t.Error("response-wrapping cannot read cubbyhole/response")
	}
	if ok, _ := w.Allowed("cubbyhole/other", OpRead); ok {
		t.Error("response-wrapping reads beyond its response")
	}
}

func TestNewACLValidatesHandBuiltPolicies(t *testing.T) {
	tests := []struct {
		name string
		p    *Policy
	}{
		{"nil", nil},
		{"no capabilities", &Policy{Name: "x", Paths: []PathRule{{Path: "a"}}}},
		{"bad pattern", &Policy{Name: "x", Paths: []PathRule{{Path: "a/*/b", Capabilities: Read}}}},
	}
	for _, tt := range tests {
		if _, err := NewACL(tt.p); err == nil {
			t.Errorf("%s: NewACL accepted it", tt.name)
		}
	}
	a := mustACL(t, &Policy{Name: "x", Paths: []PathRule{{Path: "/a", Capabilities: Deny | Read}}})
	if got := a.Capabilities("a"); got != Deny {
		t.Errorf("hand-built deny|read = %v, want deny alone", got)
	}
}

func TestRequiresSudo(t *testing.T) {
	tests := []struct {
		path string
		want bool
	}{
		{"sys/seal", true},
		{"sys/step-down", true},
		{"sys/rotate", true},
		{"sys/audit", true},
		{"sys/audit/file", true},
		{"sys/auth/userpass", true},
		{"sys/auth/userpass/tune", true},
		{"sys/auth", false},
		{"sys/raw", true},
		{"sys/raw/core/mounts", true},
		{"sys/remount", true},
		{"sys/leases/revoke-prefix/aws/", true},
		{"sys/leases/lookup", false},
		{"sys/leases/lookup/aws/creds", true},
		{"sys/replication/performance/primary/secondary-token", true},
		{"sys/replication/dr/primary/secondary-token", true},
		{"sys/replication/reindex", true},
		{"sys/replication/status", false},
		{"auth/token/accessors/", true},
		{"auth/token/revoke-orphan", true},
		{"auth/token/revoke", false},
		{"/sys/seal", true},
		{"sys/mounts", false},
		{"sys/sealed", false},
		{"secret/sys/seal", false},
	}
	for _, tt := range tests {
		if got := RequiresSudo(tt.path); got != tt.want {
			t.Errorf("RequiresSudo(%q) = %v, want %v", tt.path, got, tt.want)
		}
	}
	paths := SudoPaths()
	paths[0] = "changed"
	if SudoPaths()[0] == "changed" {
		t.Error("SudoPaths returns the package's own slice")
	}
}
