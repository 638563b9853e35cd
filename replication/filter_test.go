package replication

import (
	"slices"
	"strings"
	"testing"
)

func TestParseFilter(t *testing.T) {
	for _, tc := range []struct {
		mode  string
		paths []string
		want  []string
		err   string
	}{
		{"deny", []string{"secret", "/auth/userpass", "secret/"}, []string{"auth/userpass/", "secret/"}, ""},
		{"allow", []string{"team-a/"}, []string{"team-a/"}, ""},
		{"block", []string{"secret/"}, nil, "invalid mode"},
		{"deny", nil, nil, "no paths"},
		{"deny", []string{" "}, nil, "an empty path"},
		{"deny", []string{"sys/"}, nil, "cannot be filtered"},
		{"allow", []string{"sys/policy"}, nil, "cannot be filtered"},
		{"deny", []string{"auth/token"}, nil, "cannot be filtered"},
		{"deny", []string{"secret/../sys"}, nil, "without wildcards"},
		{"deny", []string{"secret/*"}, nil, "without wildcards"},
	} {
		f, err := ParseFilter(tc.mode, tc.paths)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseFilter(%q, %q) = %v, %v; want an error with %q", tc.mode, tc.paths, f, err, tc.err)
		case tc.err == "" && (err != nil || !slices.Equal(f.Paths, tc.want)):
			t.Errorf("ParseFilter(%q, %q) = %v, %v; want paths %q", tc.mode, tc.paths, f, err, tc.want)
		}
	}
}

func TestFilterAllowsAndID(t *testing.T) {
	deny, _ := ParseFilter(FilterDeny, []string{"secret/", "auth/userpass/"})
	allow, _ := ParseFilter(FilterAllow, []string{"secret/"})
	var none *Filter
	for _, tc := range []struct {
		f     *Filter
		mount string
		want  bool
	}{
		{deny, "secret/", false}, {deny, "auth/userpass/", false}, {deny, "team/", true},
		{allow, "secret/", true}, {allow, "team/", false}, {allow, "secret/sub/", false},
		{none, "secret/", true},
	} {
		if got := tc.f.Allows(tc.mount); got != tc.want {
			t.Errorf("%+v.Allows(%q) = %v, want %v", tc.f, tc.mount, got, tc.want)
		}
	}
	again, _ := ParseFilter(FilterDeny, []string{"auth/userpass", "secret"})
	if deny.ID() != again.ID() || deny.ID() == allow.ID() || len(deny.ID()) != 16 {
		t.Fatalf("IDs %s %s %s: want equal for the same filter written differently, distinct otherwise", deny.ID(), again.ID(), allow.ID())
	}
}
