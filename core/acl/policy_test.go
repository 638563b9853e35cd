package acl

import (
	"errors"
	"strings"
	"testing"
)

type pathCaps struct {
	path string
	caps Capability
}

func pathsOf(p *Policy) []pathCaps {
	var out []pathCaps
	for _, r := range p.Paths {
		out = append(out, pathCaps{r.Path, r.Capabilities})
	}
	return out
}

func TestParseHCLAndJSONGiveTheSamePolicy(t *testing.T) {
	hclText := `
# Application access.
path "secret/data/app/*" {
  capabilities = ["create", "read", "update"]   // trailing comment
}

/* Nobody reads the admin secrets. */
path "secret/data/admin" {
  capabilities = ["deny"]
}

path "/secret/+/team/config" {
  capabilities = ["read", "list", "sudo"]
  comment      = "shared team config"
}
`
	jsonText := `{
  "path": {
    "secret/data/app/*": {"capabilities": ["create", "read", "update"]},
    "secret/data/admin": {"capabilities": ["deny"]},
    "/secret/+/team/config": {"capabilities": ["read", "list", "sudo"], "comment": "shared team config"}
  }
}`
	want := []pathCaps{
		{"secret/data/app/*", Create | Read | Update},
		{"secret/data/admin", Deny},
		{"secret/+/team/config", Read | List | Sudo},
	}
	h, err := Parse("app", hclText)
	if err != nil {
		t.Fatal(err)
	}
	j, err := Parse("app", jsonText)
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]*Policy{"hcl": h, "json": j} {
		got := pathsOf(p)
		if len(got) != len(want) {
			t.Fatalf("%s: paths %v, want %v", name, got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%s: path %d = %v, want %v", name, i, got[i], want[i])
			}
		}
		if p.Raw == "" || p.Name != "app" {
			t.Errorf("%s: name %q, raw kept %v", name, p.Name, p.Raw != "")
		}
	}
	if lines := []int{h.Paths[0].Line, h.Paths[1].Line, h.Paths[2].Line}; lines[0] != 3 || lines[1] != 8 || lines[2] != 12 {
		t.Errorf("HCL lines %v, want [3 8 12]", lines)
	}
	if lines := []int{j.Paths[0].Line, j.Paths[1].Line, j.Paths[2].Line}; lines[0] != 3 || lines[1] != 4 || lines[2] != 5 {
		t.Errorf("JSON lines %v, want [3 4 5]", lines)
	}
}

func TestParseAcceptsVaultForms(t *testing.T) {
	tests := []struct {
		name, text string
		want       []pathCaps
	}{
		{"deny absorbs the rest", `path "a" { capabilities = ["read", "deny", "list"] }`,
			[]pathCaps{{"a", Deny}}},
		{"old-style policy read", `path "a" { policy = "read" }`,
			[]pathCaps{{"a", Read | List}}},
		{"old-style policy write", `path "a" { policy = "write" }`,
			[]pathCaps{{"a", Create | Read | Update | Delete | List}}},
		{"old-style sudo plus capabilities", `path "a" { policy = "sudo"
capabilities = ["patch"] }`,
			[]pathCaps{{"a", Create | Read | Update | Delete | List | Sudo | Patch}}},
		{"subscribe and recover are kept", `path "a" { capabilities = ["subscribe", "recover"] }`,
			[]pathCaps{{"a", Subscribe | Recover}}},
		{"top-level name is ignored", "name = \"other\"\npath \"a\" { capabilities = [\"read\"] }",
			[]pathCaps{{"a", Read}}},
		{"same path twice is kept twice", "path \"a\" { capabilities = [\"read\"] }\npath \"a\" { capabilities = [\"list\"] }",
			[]pathCaps{{"a", Read}, {"a", List}}},
		{"comment-only policy", "# nothing yet\n", nil},
		{"JSON array form", `{"path": [{"a": {"capabilities": ["read"]}}, {"b/*": {"capabilities": ["list"]}}]}`,
			[]pathCaps{{"a", Read}, {"b/*", List}}},
		{"wildcards", `path "+/x/+/*" { capabilities = ["read"] }`,
			[]pathCaps{{"+/x/+/*", Read}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse("p", tt.text)
			if err != nil {
				t.Fatal(err)
			}
			got := pathsOf(p)
			if len(got) != len(tt.want) {
				t.Fatalf("paths %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("path %d = %v, want %v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestParseErrorsNameTheLine(t *testing.T) {
	tests := []struct {
		name       string
		text       string
		line, col  int // col 0: not checked
		wantInMsgs []string
	}{
		{"unknown capability", "path \"a\" {\n  capabilities = [\"read\"]\n}\npath \"secret/*\" {\n  capabilities = [\"list\", \"reed\"]\n}",
			5, 27, []string{`unknown capability "reed"`, "valid capabilities are", `path "secret/*"`}},
		{"unknown capability line 3", "# c\n\npath \"b\" { capabilities = [\"reed\"] }",
			3, 28, []string{`"reed"`}},
		{"block without capabilities", "path \"a\" { capabilities = [\"read\"] }\n\npath \"b\" {\n  comment = \"x\"\n}",
			3, 1, []string{`path "b" has no capabilities`, `["deny"]`}},
		{"empty capabilities", "path \"b\" {\n  capabilities = []\n}", 1, 1, []string{"has no capabilities"}},
		{"plus inside a segment", "\npath \"secret/a+b/c\" { capabilities = [\"read\"] }", 2, 6, []string{`"+" must be a whole segment`, `"a+b"`}},
		{"plus star", "path \"secret/+*\" { capabilities = [\"read\"] }", 1, 6, []string{`"+*" is not allowed`}},
		{"star in the middle", "path \"secret/*/x\" { capabilities = [\"read\"] }", 1, 6, []string{`"*" is only allowed as the last character`}},
		{"double star", "path \"secret/**\" { capabilities = [\"read\"] }", 1, 6, []string{`last character`}},
		{"templated path", "path \"identity/entity/id/{{identity.entity.id}}\" { capabilities = [\"read\"] }", 1, 6, []string{"templated policy paths are not supported"}},
		{"empty path", "path \"\" { capabilities = [\"read\"] }", 1, 6, []string{"the path is empty"}},
		{"allowed_parameters", "path \"a\" {\n  capabilities = [\"update\"]\n  allowed_parameters = { \"x\" = [] }\n}", 3, 3, []string{"allowed_parameters is not supported"}},
		{"denied_parameters", "path \"a\" {\n  capabilities = [\"update\"]\n  denied_parameters = { \"x\" = [] }\n}", 3, 3, []string{"denied_parameters is not supported"}},
		{"required_parameters", "path \"a\" {\n  capabilities = [\"update\"]\n  required_parameters = [\"x\"]\n}", 3, 3, []string{"required_parameters is not supported"}},
		{"unknown key in block", "path \"a\" {\n  capabilities = [\"read\"]\n  capabilites = [\"read\"]\n}", 3, 3, []string{`unknown key "capabilites"`}},
		{"unknown top-level key", "\n\npaths \"a\" { capabilities = [\"read\"] }", 3, 1, []string{`unknown top-level key "paths"`}},
		{"capabilities not a list", "path \"a\" {\n  capabilities = \"read\"\n}", 2, 18, []string{"must be a list of strings"}},
		{"capabilities of numbers", "path \"a\" {\n  capabilities = [1]\n}", 2, 19, []string{"must be a list of strings"}},
		{"duplicate attribute", "path \"a\" {\n  capabilities = [\"read\"]\n  capabilities = [\"list\"]\n}", 3, 3, []string{`"capabilities" is set twice`}},
		{"bad old-style policy", "path \"a\" {\n  policy = \"admin\"\n}", 2, 12, []string{`policy must be one of`}},
		{"HCL syntax error", "path \"a\" {\n  capabilities = [\"read\"\n}\n", 3, 1, []string{"syntax error"}},
		{"HCL unclosed block", "path \"a\" {\n  capabilities = [\"read\"]\n", 0, 0, []string{"syntax error"}},
		{"path without name", "path {\n  capabilities = [\"read\"]\n}", 1, 1, []string{"exactly one quoted path"}},
		{"path with two names", "path \"a\" \"b\" {\n  capabilities = [\"read\"]\n}", 1, 1, []string{"exactly one quoted path"}},
		{"JSON syntax error", "{\n  \"path\": {\n    \"a\": {\"capabilities\": [\"read\"],}\n  }\n}", 3, 0, []string{"JSON syntax error"}},
		{"JSON unclosed", `{"path": {"a": {"capabilities": ["read"]}}`, 1, 0, []string{"JSON syntax error"}},
		{"JSON unknown capability", "{\n  \"path\": {\n    \"a\": {\"capabilities\": [\"read\"]},\n    \"b\": {\"capabilities\": [\"reed\"]}\n  }\n}", 4, 0, []string{`unknown capability "reed"`, `path "b"`}},
		{"empty text", "  \n", 0, 0, []string{"the policy text is empty"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("dev", tt.text)
			if err == nil {
				t.Fatal("Parse accepted the policy")
			}
			if !errors.Is(err, ErrInvalidPolicy) {
				t.Errorf("error %v does not wrap ErrInvalidPolicy", err)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not a *ParseError", err)
			}
			if tt.line != 0 && pe.Line != tt.line {
				t.Errorf("line %d, want %d (%v)", pe.Line, tt.line, err)
			}
			if tt.col != 0 && pe.Column != tt.col {
				t.Errorf("column %d, want %d (%v)", pe.Column, tt.col, err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, `policy "dev": `) {
				t.Errorf("message %q does not name the policy", msg)
			}
			if tt.line != 0 && !strings.Contains(msg, "line ") {
				t.Errorf("message %q does not name the line", msg)
			}
			for _, w := range tt.wantInMsgs {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q does not contain %q", msg, w)
				}
			}
		})
	}
}

func TestParseNames(t *testing.T) {
	p, err := Parse("  Dev-Team ", `path "a" { capabilities = ["read"] }`)
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "dev-team" {
		t.Errorf("name %q, want it normalized to dev-team", p.Name)
	}
	for _, name := range []string{"root", "ROOT", " root", "response-wrapping"} {
		_, err := Parse(name, `path "a" { capabilities = ["read"] }`)
		if !errors.Is(err, ErrReservedName) || !errors.Is(err, ErrInvalidPolicy) {
			t.Errorf("Parse(%q) = %v, want ErrReservedName", name, err)
		}
	}
	if _, err := Parse("", `path "a" { capabilities = ["read"] }`); !errors.Is(err, ErrInvalidPolicy) {
		t.Errorf("empty name: %v", err)
	}
	if _, err := Parse("default", DefaultPolicy); err != nil {
		t.Errorf("the default policy must be replaceable: %v", err)
	}
}

func TestBuiltinPolicyNames(t *testing.T) {
	tests := []struct {
		name                 string
		immutable, deletable bool
	}{
		{"root", true, false},
		{"Root", true, false},
		{"response-wrapping", true, false},
		{"default", false, false},
		{"dev", false, true},
	}
	for _, tt := range tests {
		if got := IsImmutable(tt.name); got != tt.immutable {
			t.Errorf("IsImmutable(%q) = %v", tt.name, got)
		}
		if got := IsDeletable(tt.name); got != tt.deletable {
			t.Errorf("IsDeletable(%q) = %v", tt.name, got)
		}
	}
}
