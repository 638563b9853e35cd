package core

import (
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/cofferhq/coffer/logical"
)

func TestNormalizePath(t *testing.T) {
	tests := []struct {
		in   string
		op   logical.Operation
		want string
	}{
		{"sys/policies/acl/admin/", logical.UpdateOperation, "sys/policies/acl/admin"},
		{"sys/replication/reindex/", logical.UpdateOperation, "sys/replication/reindex"},
		{"/secret//data///app", logical.ReadOperation, "secret/data/app"},
		{"secret/./data/./app/.", logical.CreateOperation, "secret/data/app"},
		{"secret/metadata/foo", logical.ListOperation, "secret/metadata/foo/"},
		{"secret/metadata/foo//", logical.ListOperation, "secret/metadata/foo/"},
		{"secret/metadata/foo/./", logical.ListOperation, "secret/metadata/foo/"},
		{"secret/.../x", logical.ReadOperation, "secret/.../x"}, // only "." and ".." are special
		{"secret/ a /x", logical.ReadOperation, "secret/ a /x"},
		{"secret/données/clé", logical.ReadOperation, "secret/données/clé"},
		{"", logical.ListOperation, ""},
		{"//", logical.ReadOperation, ""},
	}
	for _, tt := range tests {
		got, err := NormalizePath(tt.in, tt.op)
		if err != nil || got != tt.want {
			t.Errorf("NormalizePath(%q, %s) = %q, %v; want %q", tt.in, tt.op, got, err, tt.want)
		}
	}
}

func TestNormalizePathRefuses(t *testing.T) {
	tests := []struct {
		in, says string
	}{
		{"secret/data/\xff\xfe", "not valid UTF-8 (byte 0xff at offset 12)"},
		{"secret/data/a\xc3", "not valid UTF-8"},
		{"secret/data/a\x00b", "NUL byte"},
		{"secret/data/../../sys/seal", `".."`},
		{"secret/..", `".."`},
	}
	for _, tt := range tests {
		_, err := NormalizePath(tt.in, logical.UpdateOperation)
		if err == nil || StatusOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), tt.says) {
			t.Errorf("NormalizePath(%q) = %v (status %d); want a 400 saying %s", tt.in, err, StatusOf(err), tt.says)
		}
	}
}

func TestSystemCanonicalPath(t *testing.T) {
	s := &systemBackend{}
	tests := []struct{ in, want string }{
		{"policies/acl/ADMIN", "policies/acl/admin"},
		{"policy/Admin", "policy/admin"},
		{"policies/acl/", "policies/acl/"},
		{"mounts/secret", "mounts/secret"},
		{"mounts/Secret", "mounts/Secret"}, // mount paths are case-sensitive
	}
	for _, tt := range tests {
		if got, err := s.CanonicalPath(tt.in); err != nil || got != tt.want {
			t.Errorf("CanonicalPath(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{"mounts/ secret", "policies/acl/admin ", "audit/file\t", "auth/userpass /tune"} {
		if _, err := s.CanonicalPath(in); err == nil || StatusOf(err) != http.StatusBadRequest {
			t.Errorf("CanonicalPath(%q) = %v, want a 400", in, err)
		}
	}
}

// The normalized path is a fixed point, valid UTF-8 without NUL, and has no
// empty, "." or ".." segment; a list path ends in exactly one slash.
func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{"sys/policies/acl/admin/", "/a//b/./c/", "secret/../x", "a\x00b", "\xff", "", "//", "a/.../b"} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, p string, list bool) {
		op := logical.UpdateOperation
		if list {
			op = logical.ListOperation
		}
		got, err := NormalizePath(p, op)
		if err != nil {
			if StatusOf(err) != http.StatusBadRequest {
				t.Fatalf("NormalizePath(%q): %v is not a 400", p, err)
			}
			return
		}
		again, err := NormalizePath(got, op)
		if err != nil || again != got {
			t.Fatalf("NormalizePath(%q) = %q, then %q, %v: not a fixed point", p, got, again, err)
		}
		if strings.IndexByte(got, 0) >= 0 || !utf8.ValidString(got) {
			t.Fatalf("NormalizePath(%q) = %q holds NUL or invalid UTF-8", p, got)
		}
		body, slash := strings.CutSuffix(got, "/")
		if slash != (list && got != "") {
			t.Fatalf("NormalizePath(%q, list %v) = %q: wrong trailing slash", p, list, got)
		}
		if body == "" {
			return
		}
		for _, seg := range strings.Split(body, "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("NormalizePath(%q) = %q has segment %q", p, got, seg)
			}
		}
	})
}
