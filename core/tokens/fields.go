package tokens

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cofferhq/coffer/logical"
)

// fields reads a request's parameters. They arrive decoded from JSON
// (numbers as float64 or json.Number) or from a query string (strings, or
// lists of strings); every reader accepts both, as Vault's field schema
// does, and names the field in its errors. Parameters no reader asked for
// are reported as a warning, as Vault does.
type fields struct {
	raw  map[string]any
	seen map[string]bool
}

func newFields(raw map[string]any) *fields { return &fields{raw: raw, seen: map[string]bool{}} }

func (f *fields) get(name string) (any, bool) {
	f.seen[name] = true
	v, ok := f.raw[name]
	if !ok || v == nil {
		return nil, false
	}
	if l, isList := v.([]string); isList && len(l) == 1 { // a query parameter
		return l[0], true
	}
	return v, true
}

// unknown returns the warning naming the parameters nobody read, or "".
func (f *fields) unknown() string {
	var names []string
	for k := range f.raw {
		if !f.seen[k] {
			names = append(names, k)
		}
	}
	if len(names) == 0 {
		return ""
	}
	slices.Sort(names)
	return fmt.Sprintf("Endpoint ignored these unrecognized parameters: %v", names)
}

func (f *fields) str(name string) (string, error) {
	v, ok := f.get(name)
	if !ok {
		return "", nil
	}
	switch x := v.(type) {
	case string:
		return x, nil
	case json.Number:
		return x.String(), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case int:
		return strconv.Itoa(x), nil
	}
	return "", logical.InvalidRequest("%s: expected a string, got %s", name, describe(v))
}

func (f *fields) boolean(name string, def bool) (bool, error) {
	v, ok := f.get(name)
	if !ok {
		return def, nil
	}
	switch b := v.(type) {
	case bool:
		return b, nil
	case string:
		if strings.TrimSpace(b) == "" {
			return def, nil
		}
		if r, err := strconv.ParseBool(strings.TrimSpace(b)); err == nil {
			return r, nil
		}
	}
	return false, logical.InvalidRequest("%s: expected true or false, got %s", name, describe(v))
}

func (f *fields) integer(name string) (int64, error) {
	v, ok := f.get(name)
	if !ok {
		return 0, nil
	}
	n, ok := toInt(v)
	if !ok {
		return 0, logical.InvalidRequest("%s: expected an integer, got %s", name, describe(v))
	}
	return n, nil
}

func toInt(v any) (int64, bool) {
	switch n := v.(type) {
	case int:
		return int64(n), true
	case int64:
		return n, true
	case float64:
		if n != math.Trunc(n) || math.Abs(n) > 1<<53 {
			return 0, false
		}
		return int64(n), true
	case json.Number:
		i, err := n.Int64()
		return i, err == nil
	case string:
		i, err := strconv.ParseInt(strings.TrimSpace(n), 10, 64)
		return i, err == nil
	}
	return 0, false
}

// duration reads a duration: a number of seconds, or a string such as
// "90s", "1h30m", "7d" or "3600". It returns whether the field was given.
func (f *fields) duration(name string) (time.Duration, bool, error) {
	v, ok := f.get(name)
	if !ok {
		return 0, false, nil
	}
	bad := logical.InvalidRequest("%s: expected a duration such as \"30m\", \"72h\" or a number of seconds, got %s", name, describe(v))
	if s, isStr := v.(string); isStr {
		s = strings.TrimSpace(s)
		if s == "" {
			return 0, false, nil
		}
		if _, err := strconv.ParseInt(s, 10, 64); err != nil {
			if days, found := strings.CutSuffix(s, "d"); found {
				n, err := strconv.ParseInt(days, 10, 64)
				if err != nil || n > math.MaxInt64/int64(24*time.Hour) || n < math.MinInt64/int64(24*time.Hour) {
					return 0, true, bad
				}
				return time.Duration(n) * 24 * time.Hour, true, nil
			}
			d, err := time.ParseDuration(s)
			if err != nil {
				return 0, true, bad
			}
			return d, true, nil
		}
	}
	n, ok := toInt(v)
	if !ok || n > math.MaxInt64/int64(time.Second) || n < math.MinInt64/int64(time.Second) {
		return 0, true, bad
	}
	return time.Duration(n) * time.Second, true, nil
}

// strList reads a list of strings: a JSON list or a comma-separated string.
func (f *fields) strList(name string) ([]string, error) {
	v, ok := f.get(name)
	if !ok {
		return nil, nil
	}
	var out []string
	switch x := v.(type) {
	case string:
		for _, s := range strings.Split(x, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	case []string:
		out = x
	case []any:
		for _, it := range x {
			s, isStr := it.(string)
			if !isStr {
				return nil, logical.InvalidRequest("%s: expected a list of strings, got an element %s", name, describe(it))
			}
			out = append(out, s)
		}
	default:
		return nil, logical.InvalidRequest("%s: expected a list of strings or a comma-separated string, got %s", name, describe(v))
	}
	return out, nil
}

// strMap reads key/value pairs: a JSON object of strings, or a list of
// "key=value" strings.
func (f *fields) strMap(name string) (map[string]string, error) {
	v, ok := f.get(name)
	if !ok {
		return nil, nil
	}
	out := map[string]string{}
	switch x := v.(type) {
	case map[string]any:
		for k, raw := range x {
			s, isStr := raw.(string)
			if !isStr {
				return nil, logical.InvalidRequest("%s: value of %q must be a string, got %s", name, k, describe(raw))
			}
			out[k] = s
		}
	case map[string]string:
		for k, s := range x {
			out[k] = s
		}
	case []any, []string, string:
		list, err := f.strList(name)
		if err != nil {
			return nil, err
		}
		for _, kv := range list {
			k, val, found := strings.Cut(kv, "=")
			if !found || k == "" {
				return nil, logical.InvalidRequest("%s: expected key=value pairs, got %q", name, kv)
			}
			out[k] = val
		}
	default:
		return nil, logical.InvalidRequest("%s: expected an object of strings, got %s", name, describe(v))
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
