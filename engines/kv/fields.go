package kv

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/cofferhq/coffer/logical"
)

// Request fields arrive decoded from JSON (numbers as float64 or
// json.Number) or from a query string (every value a string). The parsers
// below accept both, as Vault's field schema does, and name the field in
// every error so the user knows what to correct.

// parseInt reads an integer field.
func parseInt(field string, v any) (int64, error) {
	bad := func() error {
		return logical.InvalidRequest("%s: expected an integer, got %s", field, describe(v))
	}
	switch n := v.(type) {
	case int:
		return int64(n), nil
	case int32:
		return int64(n), nil
	case int64:
		return n, nil
	case uint32:
		return int64(n), nil
	case uint64:
		if n > math.MaxInt64 {
			return 0, bad()
		}
		return int64(n), nil
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

// parseNonNegInt reads an integer field that must be >= 0 and at most max.
func parseNonNegInt(field string, v any, max int64) (int64, error) {
	n, err := parseInt(field, v)
	if err != nil {
		return 0, err
	}
	if n < 0 || n > max {
		return 0, logical.InvalidRequest("%s: must be between 0 and %d, got %d", field, max, n)
	}
	return n, nil
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

// parseDuration reads a duration field: a number of seconds, or a Go
// duration string ("90s", "1h30m"), or a string holding a number of seconds.
func parseDuration(field string, v any) (time.Duration, error) {
	if s, ok := v.(string); ok {
		s = strings.TrimSpace(s)
		if s == "" {
			return 0, nil
		}
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return secs(field, n)
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, logical.InvalidRequest("%s: expected a duration such as \"30m\" or \"72h\" or a number of seconds, got %q", field, s)
		}
		return d, nil
	}
	n, err := parseInt(field, v)
	if err != nil {
		return 0, logical.InvalidRequest("%s: expected a duration such as \"30m\" or \"72h\" or a number of seconds, got %s", field, describe(v))
	}
	return secs(field, n)
}

func secs(field string, n int64) (time.Duration, error) {
	if n > math.MaxInt64/int64(time.Second) || n < math.MinInt64/int64(time.Second) {
		return 0, logical.InvalidRequest("%s: %d seconds is out of range", field, n)
	}
	return time.Duration(n) * time.Second, nil
}

// parseObject reads a field that must be a JSON object.
func parseObject(field string, v any) (map[string]any, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, logical.InvalidRequest("%s: expected a JSON object, got %s", field, describe(v))
	}
	return m, nil
}

// parseStringMap reads custom_metadata: an object whose values are strings
// (numbers and booleans are taken in their string form, as Vault does).
// With keepNulls, a null value is kept as a nil entry (a merge patch's
// "remove this key"); otherwise it is an error.
func parseStringMap(field string, v any, keepNulls bool) (map[string]*string, error) {
	m, err := parseObject(field, v)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*string, len(m))
	for k, raw := range m {
		var s string
		switch x := raw.(type) {
		case nil:
			if keepNulls {
				out[k] = nil
				continue
			}
			return nil, logical.InvalidRequest("%s: value of %q is null; give a string (use a patch to remove a key)", field, k)
		case string:
			s = x
		case bool:
			s = strconv.FormatBool(x)
		case float64:
			s = strconv.FormatFloat(x, 'f', -1, 64)
		case json.Number:
			s = x.String()
		default:
			return nil, logical.InvalidRequest("%s: value of %q must be a string, got %s", field, k, describe(raw))
		}
		out[k] = &s
	}
	return out, nil
}

// parseVersions reads the versions field of delete/, undelete/ and destroy/:
// a list of version numbers, a comma-separated string ("1,2"), or a single
// number.
func parseVersions(v any) ([]uint64, error) {
	const field = "versions"
	var items []any
	switch x := v.(type) {
	case nil:
		return nil, nil
	case []any:
		items = x
	case []string:
		for _, s := range x {
			items = append(items, s)
		}
	case string:
		for _, s := range strings.Split(x, ",") {
			if s = strings.TrimSpace(s); s != "" {
				items = append(items, s)
			}
		}
	default:
		items = []any{x}
	}
	out := make([]uint64, 0, len(items))
	for _, it := range items {
		n, err := parseInt(field, it)
		if err != nil || n < 0 {
			return nil, logical.InvalidRequest("versions: expected a list of version numbers such as [1, 2], got %s", describe(v))
		}
		out = append(out, uint64(n))
	}
	return out, nil
}

// describe renders a bad value for an error message, briefly.
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
	case bool, float64, json.Number, int, int64:
		return fmt.Sprint(x)
	}
	return fmt.Sprintf("a %T", v)
}
