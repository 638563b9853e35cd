package acl

import "testing"

// Vault's rule for lists (finding 11 of issue 11): a policy on the exact path
// "secret/metadata/foo" with list grants LIST secret/metadata/foo/, and the
// rules on the path without its trailing slash come before those on the path
// as sent.
func TestListMatchesTheRulesOfThePathWithoutItsSlash(t *testing.T) {
	a := mustACL(t, mustPolicy(t, "p",
		"secret/metadata/foo=list",
		"secret/metadata/bar=read",
		"secret/metadata/bar/=list",
		"team/+=list",
		"team/a/*=deny",
		"open/*=list",
		"glob/x=deny",
		"glob/*=list",
	))
	tests := []struct {
		path    string
		op      Operation
		allowed bool
		pattern string
	}{
		{"secret/metadata/foo/", OpList, true, "secret/metadata/foo"},
		{"secret/metadata/foo", OpList, true, "secret/metadata/foo"},
		{"secret/metadata/foo/", OpRead, false, ""},                    // only lists drop the slash
		{"secret/metadata/bar/", OpList, true, "secret/metadata/bar/"}, // the path as sent first
		{"team/a/", OpList, true, "team/+"},                            // "+" on the path without the slash...
		{"team/a/x", OpRead, false, "team/a/*"},                        // ...outranks the glob only for the list
		{"open/", OpList, true, "open/*"},
		{"glob/x/", OpList, false, "glob/x"}, // a deny on the exact path holds for the list too
		{"nothing/", OpList, false, ""},
	}
	for _, tt := range tests {
		d := a.DecideOp(tt.path, tt.op)
		allowed, _ := a.Allowed(tt.path, tt.op)
		if allowed != tt.allowed || d.Pattern != tt.pattern {
			t.Errorf("%s %q: allowed %v by %q, want %v by %q", tt.op, tt.path, allowed, d.Pattern, tt.allowed, tt.pattern)
		}
	}
}

func TestRequiresSudoOnAListPath(t *testing.T) {
	for _, p := range []string{"sys/replication/reindex/", "sys/rotate/", "sys/raw/x/", "auth/token/revoke-orphan/"} {
		if !RequiresSudo(p) {
			t.Errorf("RequiresSudo(%q) = false: a trailing slash must not drop the sudo requirement", p)
		}
	}
	if RequiresSudo("sys/replication/status/") {
		t.Error("RequiresSudo(sys/replication/status/) = true, want false")
	}
}
