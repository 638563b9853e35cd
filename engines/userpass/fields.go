package userpass

import (
	"math"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/cofferhq/coffer/logical"
)

// Request fields are read with logical's Parse functions (password and
// password_hash with logical.ParseSecret, which takes strings only and
// never echoes the value). The readers below add userpass's own rules on
// top of them.

// parsePolicies reads a policy list and sanitizes it as Vault does:
// trimmed, lowercased, sorted, without duplicates, and "root" alone when it
// is present. "default" is kept if given; login adds it anyway unless
// token_no_default_policy is set.
func parsePolicies(field string, v any) ([]string, error) {
	list, err := logical.ParseStrings(field, v)
	if err != nil {
		return nil, err
	}
	return sanitizePolicies(list), nil
}

func sanitizePolicies(list []string) []string {
	seen := make(map[string]bool, len(list))
	out := make([]string, 0, len(list))
	for _, p := range list {
		p = strings.ToLower(strings.TrimSpace(p))
		if p == "" || seen[p] {
			continue
		}
		if p == "root" {
			return []string{"root"}
		}
		seen[p] = true
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// parseNumUses reads token_num_uses: 0 (unlimited) or more, at most what
// the token store keeps (an int32).
func parseNumUses(field string, v any) (int, error) {
	n, err := logical.ParseInt(field, v)
	if err != nil {
		return 0, err
	}
	if n < 0 || n > math.MaxInt32 {
		return 0, logical.InvalidRequest("%s: must be between 0 (unlimited) and %d, got %d", field, math.MaxInt32, n)
	}
	return int(n), nil
}

// parseTTL reads a token duration field (see logical.ParseDuration), which
// must not be negative: 0 means the mount's default.
func parseTTL(field string, v any) (time.Duration, error) {
	d, err := logical.ParseDuration(field, v)
	if err != nil {
		return 0, err
	}
	if d < 0 {
		return 0, logical.InvalidRequest("%s: must not be negative, got %s; use 0 for the mount's default", field, d)
	}
	return d, nil
}

// parseCIDRs reads token_bound_cidrs: CIDR blocks, or bare addresses which
// stand for themselves alone (/32 or /128), as Vault accepts them. They are
// returned in canonical form.
func parseCIDRs(field string, v any) ([]string, error) {
	list, err := logical.ParseStrings(field, v)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(list))
	for _, s := range list {
		p, err := parsePrefix(s)
		if err != nil {
			return nil, logical.InvalidRequest("%s: %q is neither a CIDR block such as 10.0.0.0/8 nor an IP address", field, s)
		}
		out = append(out, p.String())
	}
	return out, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// parseTokenType reads token_type. Coffer's logins issue service tokens only
// (batch tokens come from auth/token/create), so "batch" is refused rather
// than silently ignored.
func parseTokenType(field string, v any) (string, error) {
	s, err := logical.ParseString(field, v)
	if err != nil {
		return "", err
	}
	switch s = strings.ToLower(strings.TrimSpace(s)); s {
	case "", "default":
		return "default", nil
	case "service":
		return s, nil
	case "batch", "default-batch", "default-service":
		return "", logical.InvalidRequest("%s: %q is not supported: coffer logins issue service tokens only; use \"service\" or \"default\" (a batch token comes from auth/token/create with type=batch)", field, s)
	}
	return "", logical.InvalidRequest("%s: expected \"service\" or \"default\", got %q", field, s)
}
