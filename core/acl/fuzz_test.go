package acl

import (
	"errors"
	"testing"
)

// FuzzParse: Parse never panics, rejects only with a *ParseError wrapping
// ErrInvalidPolicy, and whatever it accepts compiles and evaluates.
// Run longer with: go test ./core/acl -run '^$' -fuzz FuzzParse -fuzztime 60s
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		DefaultPolicy,
		ResponseWrappingPolicy,
		`path "secret/+/x/*" { capabilities = ["read", "deny"] }`,
		`path "a" { policy = "write" }`,
		`{"path": {"a/*": {"capabilities": ["list"]}}}`,
		`{"path": [{"a": {"capabilities": ["read"]}}]}`,
		"path \"a\" {\n capabilities = [\"reed\"]\n}",
		`path "a" { allowed_parameters = { "x" = [] } }`,
		`path { }`,
		`name = "x"`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		p, err := Parse("fuzz", text)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || !errors.Is(err, ErrInvalidPolicy) {
				t.Fatalf("error %v (%T) is not a ParseError wrapping ErrInvalidPolicy", err, err)
			}
			return
		}
		a, err := NewACL(p)
		if err != nil {
			t.Fatalf("Parse accepted what NewACL refuses: %v", err)
		}
		for _, r := range p.Paths {
			_ = a.Decide(r.Path)
			_ = a.Decide(r.Path + "/x")
		}
	})
}
