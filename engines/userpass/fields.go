package userpass

import (
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cofferhq/coffer/logical"
)

// Request fields arrive decoded from JSON (numbers as float64 or
// json.Number) or, from the vault CLI's k=v arguments, as strings. The
// parsers accept both, as Vault's field schema does, and name the field in
// every error so the user knows what to correct.

// parseString reads a string field. Numbers are refused rather than
// converted: a password sent as a JSON number is almost surely a mistake.
func parseString(field string, v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", logical.InvalidRequest("%s: expected a string, got %s", field, describe(v))
	}
	return s, nil
}

// parseStringList reads a list field: a JSON list of strings or a
// comma-separated string ("a,b"). Empty items are dropped.
func parseStringList(field string, v any) ([]string, error) {
	var items []string
	switch x := v.(type) {
	case nil:
		return nil, nil
	case string:
		items = strings.Split(x, ",")
	case []string:
		items = x
	case []any:
		for _, it := range x {
			s, ok := it.(string)
			if !ok {
				return nil, logical.InvalidRequest("%s: expected a list of strings or a comma-separated string, found %s in the list", field, describe(it))
			}
			items = append(items, s)
		}
	default:
		return nil, logical.InvalidRequest("%s: expected a list of strings or a comma-separated string, got %s", field, describe(v))
	}
	out := make([]string, 0, len(items))
	for _, s := range items {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out, nil
}

// parsePolicies reads a policy list and sanitizes it as Vault does:
// trimmed, lowercased, sorted, without duplicates, and "root" alone when it
// is present. "default" is kept if given; login adds it anyway unless
// token_no_default_policy is set.
func parsePolicies(field string, v any) ([]string, error) {
	list, err := parseStringList(field, v)
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

// parseInt reads an integer field.
func parseInt(field string, v any) (int64, error) {
	bad := func() error {
		return logical.InvalidRequest("%s: expected an integer, got %s", field, describe(v))
	}
	switch n := v.(type) {
	case int:
		return int64(n), nil
	case int64:
		return n, nil
	case float64:
		if n != math.Trunc(n) || math.IsInf(n, 0) || math.Abs(n) > 1<<53 {
			return 0, bad()
		}
		return int64(n), nil
	case json.Number:
		i, err := n.Int64()
		if err != nil {
			return 0, bad()
		}
		return i, nil
	case string:
		i, err := strconv.ParseInt(strings.TrimSpace(n), 10, 64)
		if err != nil {
			return 0, bad()
		}
		return i, nil
	}
	return 0, bad()
}

// parseNumUses reads token_num_uses: 0 (unlimited) or more.
func parseNumUses(field string, v any) (int, error) {
	n, err := parseInt(field, v)
	if err != nil {
		return 0, err
	}
	if n < 0 || n > math.MaxInt32 {
		return 0, logical.InvalidRequest("%s: must be between 0 (unlimited) and %d, got %d", field, math.MaxInt32, n)
	}
	return int(n), nil
}

// parseBool reads a boolean field (true/false, or their string forms).
func parseBool(field string, v any) (bool, error) {
	switch b := v.(type) {
	case bool:
		return b, nil
	case string:
		if r, err := strconv.ParseBool(strings.TrimSpace(b)); err == nil {
			return r, nil
		}
	}
	return false, logical.InvalidRequest("%s: expected true or false, got %s", field, describe(v))
}

// parseDuration reads a non-negative duration field: a number of seconds,
// a Go duration string ("90s", "1h30m"), or a string holding a number of
// seconds. "" is 0.
func parseDuration(field string, v any) (time.Duration, error) {
	bad := func() error {
		return logical.InvalidRequest("%s: expected a duration such as \"30m\" or \"72h\" or a number of seconds, got %s", field, describe(v))
	}
	var d time.Duration
	if s, ok := v.(string); ok {
		s = strings.TrimSpace(s)
		if s == "" {
			return 0, nil
		}
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return secs(field, n)
		}
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, bad()
		}
	} else {
		n, err := parseInt(field, v)
		if err != nil {
			return 0, bad()
		}
		if d, err = secs(field, n); err != nil {
			return 0, err
		}
	}
	if d < 0 {
		return 0, logical.InvalidRequest("%s: must not be negative, got %s; use 0 for the mount's default", field, d)
	}
	return d, nil
}

func secs(field string, n int64) (time.Duration, error) {
	if n < 0 {
		return 0, logical.InvalidRequest("%s: must not be negative, got %d; use 0 for the mount's default", field, n)
	}
	if n > math.MaxInt64/int64(time.Second) {
		return 0, logical.InvalidRequest("%s: %d seconds is out of range", field, n)
	}
	return time.Duration(n) * time.Second, nil
}

// parseCIDRs reads token_bound_cidrs: CIDR blocks, or bare addresses which
// stand for themselves alone (/32 or /128), as Vault accepts them. They are
// returned in canonical form.
func parseCIDRs(field string, v any) ([]string, error) {
	list, err := parseStringList(field, v)
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

// parseTokenType reads token_type. Coffer creates service tokens only, so
// "batch" is refused rather than silently ignored.
func parseTokenType(field string, v any) (string, error) {
	s, err := parseString(field, v)
	if err != nil {
		return "", err
	}
	switch s = strings.ToLower(strings.TrimSpace(s)); s {
	case "", "default":
		return "default", nil
	case "service":
		return s, nil
	case "batch", "default-batch", "default-service":
		return "", logical.InvalidRequest("%s: %q is not supported: coffer issues service tokens only; use \"service\" or \"default\"", field, s)
	}
	return "", logical.InvalidRequest("%s: expected \"service\" or \"default\", got %q", field, s)
}

// describe renders a bad value for an error message, briefly. The secret
// fields (password, password_hash) must be strings, so a string shown here
// is never one of them.
func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		if len(x) > 64 {
			x = x[:64] + "..."
		}
		return strconv.Quote(x)
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	case bool:
		return strconv.FormatBool(x)
	case float64, json.Number, int, int64:
		return "a number"
	}
	return fmt.Sprintf("a %T", v)
}
