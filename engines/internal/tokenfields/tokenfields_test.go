package tokenfields

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func getter(d map[string]any) func(string) (any, bool) {
	return func(k string) (any, bool) { v, ok := d[k]; return v, ok }
}

func TestParseApplyData(t *testing.T) {
	up, err := Parse(getter(map[string]any{
		"policies": "B, a,a", "ttl": "1h", "token_max_ttl": 7200, "period": "5m",
		"token_bound_cidrs": "10.1.2.3/8", "token_type": "service", "token_num_uses": "3",
	}))
	if err != nil {
		t.Fatal(err)
	}
	var s Settings
	up.Apply(&s)
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	d := s.Data()
	want := map[string]any{
		"token_policies": []string{"a", "b"}, "policies": []string{"a", "b"},
		"token_ttl": int64(3600), "token_max_ttl": int64(7200), "token_explicit_max_ttl": int64(0),
		"token_period": int64(300), "period": int64(300), "token_num_uses": 3,
		"token_no_default_policy": false, "token_type": "service",
		"token_bound_cidrs": []string{"10.0.0.0/8"},
	}
	if !reflect.DeepEqual(d, want) {
		t.Fatalf("Data:\n got  %v\n want %v", d, want)
	}
	if got := s.LoginPolicies(); !reflect.DeepEqual(got, []string{"a", "b", "default"}) {
		t.Fatalf("LoginPolicies: %v", got)
	}
	// Periodic: token_max_ttl is not folded in.
	if s.ExplicitMaxTTL() != 0 {
		t.Fatalf("ExplicitMaxTTL of a periodic token: %s", s.ExplicitMaxTTL())
	}
	s.TokenPeriod = 0
	if s.ExplicitMaxTTL() != 2*time.Hour {
		t.Fatalf("ExplicitMaxTTL: %s", s.ExplicitMaxTTL())
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct {
		data map[string]any
		want string
	}{
		{map[string]any{"token_ttl": "1h", "ttl": "2h"}, "token_ttl and ttl differ"},
		{map[string]any{"token_ttl": "-1s"}, "must not be negative"},
		{map[string]any{"token_num_uses": -1}, "must be between 0 (unlimited)"},
		{map[string]any{"token_type": "batch"}, "service tokens only"},
		{map[string]any{"token_bound_cidrs": "x"}, "neither a CIDR block"},
	} {
		if _, err := Parse(getter(c.data)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%v): %v, want %q", c.data, err, c.want)
		}
	}
	s := Settings{TokenTTL: 2 * time.Hour, TokenMaxTTL: time.Hour}
	if err := s.Check(); err == nil {
		t.Error("Check accepted token_ttl above token_max_ttl")
	}
}

func TestAddrAllowedAndSubset(t *testing.T) {
	cidrs := []string{"10.0.0.0/8", "2001:db8::/32"}
	for addr, want := range map[string]bool{
		"10.1.2.3": true, "10.1.2.3:80": true, "[::ffff:10.0.0.1]:1": true,
		"[2001:db8::1]:443": true, "11.0.0.1": false, "": false, "garbage": false,
	} {
		if got := AddrAllowed(addr, cidrs); got != want {
			t.Errorf("AddrAllowed(%q) = %v, want %v", addr, got, want)
		}
	}
	for _, c := range []struct {
		inner, outer []string
		want         bool
	}{
		{[]string{"10.1.0.0/16", "10.2.3.4/32"}, []string{"10.0.0.0/8"}, true},
		{[]string{"10.0.0.0/7"}, []string{"10.0.0.0/8"}, false},
		{[]string{"11.0.0.0/8"}, []string{"10.0.0.0/8"}, false},
		{[]string{"anything"}, nil, true},
		{nil, []string{"10.0.0.0/8"}, true},
		{[]string{"::/0"}, []string{"0.0.0.0/0"}, false},
	} {
		if got := Subset(c.inner, c.outer); got != c.want {
			t.Errorf("Subset(%v, %v) = %v, want %v", c.inner, c.outer, got, c.want)
		}
	}
}
