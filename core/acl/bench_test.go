package acl

import (
	"fmt"
	"testing"
)

// benchACL is a token with the default policy and 100 policies of 5 paths
// each, mixing exact paths, globs, "+" segments and both.
func benchACL(b *testing.B) *ACL {
	b.Helper()
	policies := []*Policy{Default()}
	for i := range 100 {
		policies = append(policies, mustPolicy(b, fmt.Sprintf("team%d", i),
			fmt.Sprintf("secret/data/team%d/config=read", i),
			fmt.Sprintf("secret/data/team%d/*=read,list", i),
			fmt.Sprintf("secret/+/team%d/shared=read", i),
			fmt.Sprintf("kv/+/app%d/*=read,update", i),
			fmt.Sprintf("auth/approle/role/app%d*=update", i),
		))
	}
	return mustACL(b, policies...)
}

// BenchmarkACLEvaluate measures one authorization decision.
// go test ./core/acl -run '^$' -bench BenchmarkACLEvaluate -benchmem
func BenchmarkACLEvaluate(b *testing.B) {
	a := benchACL(b)
	cases := []struct {
		name, path string
		op         Operation
		want       bool
	}{
		{"exact", "secret/data/team42/config", OpRead, true},
		{"glob", "secret/data/team42/db/password", OpList, true},
		{"plus", "secret/metadata/team42/shared", OpRead, true},
		{"plus-glob", "kv/prod/app7/db/creds", OpUpdate, true},
		{"partial-glob", "auth/approle/role/app99-ci/secret-id", OpUpdate, true},
		{"miss", "transit/encrypt/payments", OpUpdate, false},
		{"deep-miss", "secret/data/team42x/a/b/c/d/e", OpRead, false},
	}
	for _, c := range cases {
		if ok, _ := a.Allowed(c.path, c.op); ok != c.want {
			b.Fatalf("%s: Allowed(%q) = %v, want %v", c.name, c.path, ok, c.want)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				a.Allowed(c.path, c.op)
			}
		})
	}
	b.Run("mixed", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			c := cases[i%len(cases)]
			a.Allowed(c.path, c.op)
			i++
		}
	})
}

// BenchmarkNewACL measures compiling the same 101 policies (done when a
// token's policies are loaded, not per request).
func BenchmarkNewACL(b *testing.B) {
	var policies []*Policy
	for i := range 100 {
		policies = append(policies, mustPolicy(b, fmt.Sprintf("team%d", i),
			fmt.Sprintf("secret/data/team%d/config=read", i),
			fmt.Sprintf("secret/data/team%d/*=read,list", i),
			fmt.Sprintf("secret/+/team%d/shared=read", i),
			fmt.Sprintf("kv/+/app%d/*=read,update", i),
			fmt.Sprintf("auth/approle/role/app%d*=update", i),
		))
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewACL(policies...); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRequiresSudo measures the sudo-path check made on every request.
func BenchmarkRequiresSudo(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		RequiresSudo("secret/data/team42/config")
	}
}
