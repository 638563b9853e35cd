package kv

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/cofferhq/coffer/logical"
)

// Request fields are read with logical's Parse and Field functions. The two
// readers below stay here because their rules are kv's own.

// parseStringMap reads custom_metadata, which differs from
// logical.ParseStringMap in two ways: numbers and booleans are taken in
// their string form (as Vault's kv does, where token meta refuses them),
// and with keepNulls a null value is kept as a nil entry (a merge patch's
// "remove this key"); otherwise a null is an error.
func parseStringMap(field string, v any, keepNulls bool) (map[string]*string, error) {
	m, err := logical.ParseObject(field, v)
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
			return nil, logical.InvalidRequest("%s: value of %q must be a string, got %s", field, k, logical.Describe(raw))
		}
		out[k] = &s
	}
	return out, nil
}

// parseVersions reads the versions field of delete/, undelete/ and destroy/:
// a list of version numbers, a comma-separated string ("1,2"), or a single
// number. A list of integers is kv's alone, and so is accepting a lone
// number for it.
func parseVersions(v any) ([]uint64, error) {
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
		n, err := logical.ParseInt("versions", it)
		if err != nil || n < 0 {
			return nil, logical.InvalidRequest("versions: expected a list of version numbers such as [1, 2], got %s", logical.Describe(v))
		}
		out = append(out, uint64(n))
	}
	return out, nil
}
