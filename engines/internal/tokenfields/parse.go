package tokenfields

import (
	"math"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/cofferhq/coffer/logical"
)

// Request values are read with logical's Parse functions; the readers below
// add the rules of Vault's token fields on top of them.

// ParsePolicies reads a policy list and sanitizes it (see SanitizePolicies).
// "default" is kept if given; login adds it anyway unless
// token_no_default_policy is set.
func ParsePolicies(field string, v any) ([]string, error) {
	list, err := logical.ParseStrings(field, v)
	if err != nil {
		return nil, err
	}
	return SanitizePolicies(list), nil
}

// SanitizePolicies trims, lowercases, sorts and deduplicates policy names,
// as Vault does; "root" stands alone when it is present.
func SanitizePolicies(list []string) []string {
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

// ParseNumUses reads a use count (token_num_uses, secret_id_num_uses): 0
// (unlimited) or more, at most what the token store keeps (an int32).
func ParseNumUses(field string, v any) (int, error) {
	n, err := logical.ParseInt(field, v)
	if err != nil {
		return 0, err
	}
	if n < 0 || n > math.MaxInt32 {
		return 0, logical.InvalidRequest("%s: must be between 0 (unlimited) and %d, got %d", field, math.MaxInt32, n)
	}
	return int(n), nil
}

// ParseTTL reads a duration field (see logical.ParseDuration), which must
// not be negative: 0 means the mount's default.
func ParseTTL(field string, v any) (time.Duration, error) {
	d, err := logical.ParseDuration(field, v)
	if err != nil {
		return 0, err
	}
	if d < 0 {
		return 0, logical.InvalidRequest("%s: must not be negative, got %s; use 0 for the mount's default", field, d)
	}
	return d, nil
}

// ParseCIDRs reads a list of CIDR blocks, or bare addresses which stand
// for themselves alone (/32 or /128), as Vault accepts them. They are
// returned in canonical form.
func ParseCIDRs(field string, v any) ([]string, error) {
	list, err := logical.ParseStrings(field, v)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(list))
	for _, s := range list {
		p, err := ParsePrefix(s)
		if err != nil {
			return nil, logical.InvalidRequest("%s: %q is neither a CIDR block such as 10.0.0.0/8 nor an IP address", field, s)
		}
		out = append(out, p.String())
	}
	return out, nil
}

// ParsePrefix reads one CIDR block or bare address (a single-address
// prefix), masked to its canonical form.
func ParsePrefix(s string) (netip.Prefix, error) {
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

// ParseTokenType reads token_type. Coffer's logins issue service tokens only
// (batch tokens come from auth/token/create), so "batch" is refused rather
// than silently ignored.
func ParseTokenType(field string, v any) (string, error) {
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

// AddrAllowed reports whether the client's address (an IP, with or without
// a port) lies in one of the CIDR blocks. An unknown or unparsable address
// is refused.
func AddrAllowed(remote string, cidrs []string) bool {
	var addr netip.Addr
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		addr = ap.Addr()
	} else if a, err := netip.ParseAddr(remote); err == nil {
		addr = a
	} else {
		return false
	}
	addr = addr.Unmap()
	for _, c := range cidrs {
		p, err := ParsePrefix(c)
		if err == nil && p.Contains(addr) {
			return true
		}
	}
	return false
}

// Subset reports whether every block of inner lies inside some block of
// outer (Vault's rule for a secret id's CIDRs against its role's). An
// empty outer allows anything.
func Subset(inner, outer []string) bool {
	if len(outer) == 0 {
		return true
	}
	for _, s := range inner {
		p, err := ParsePrefix(s)
		if err != nil {
			return false
		}
		ok := false
		for _, o := range outer {
			q, err := ParsePrefix(o)
			if err == nil && q.Addr().BitLen() == p.Addr().BitLen() && q.Bits() <= p.Bits() && q.Contains(p.Addr()) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}
