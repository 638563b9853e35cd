package logical

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Typed reading of Request.Data. A field's value arrives decoded from JSON
// (numbers as json.Number, or float64 from a decoder without UseNumber) or
// from a query string or the vault CLI's k=v arguments (every value a
// string). The readers accept both forms, as Vault's field schema does, and
// every error they return wraps ErrInvalidRequest and names the field and
// the type it expects, so the user knows what to correct.
//
// The Parse functions read one value (v) that the caller took from the
// request; name is used only in errors ("options.cas" is fine). The Field
// functions read d[name] and report whether the field was given: absent
// and null are not given, and neither is a blank string for FieldBool and
// FieldDuration (an empty query parameter). A one-element []string (a
// query parameter as url.Values holds it) is read as its element.

// ParseString reads a string. A number is taken in its decimal form, as
// Vault's TypeString does; anything else is refused.
func ParseString(name string, v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case json.Number:
		return x.String(), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case int:
		return strconv.Itoa(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	}
	return "", InvalidRequest("%s: expected a string, got %s", name, Describe(v))
}

// ParseSecret reads a string that is a secret (a password, a hash). Only a
// string is accepted: a password sent as a JSON number is almost surely a
// mistake. The error never shows the value, only its kind.
func ParseSecret(name string, v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		what := Describe(v)
		if isNumber(v) {
			what = "a number"
		}
		return "", InvalidRequest("%s: expected a string, got %s", name, what)
	}
	return s, nil
}

// ParseBool reads true or false, or their string forms ("true", "1", "f"...:
// those of strconv.ParseBool).
func ParseBool(name string, v any) (bool, error) {
	switch b := v.(type) {
	case bool:
		return b, nil
	case string:
		if r, err := strconv.ParseBool(strings.TrimSpace(b)); err == nil {
			return r, nil
		}
	}
	return false, InvalidRequest("%s: expected true or false, got %s", name, Describe(v))
}

// ParseInt reads an integer: a JSON number without a fraction (a float64
// only up to 2^53, where it is still exact), or a string holding one.
func ParseInt(name string, v any) (int64, error) {
	bad := func() error {
		return InvalidRequest("%s: expected an integer, got %s", name, Describe(v))
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

// ParseIntRange reads an integer (see ParseInt) that must lie in [lo, hi].
func ParseIntRange(name string, v any, lo, hi int64) (int64, error) {
	n, err := ParseInt(name, v)
	if err != nil {
		return 0, err
	}
	if n < lo || n > hi {
		return 0, InvalidRequest("%s: must be between %d and %d, got %d", name, lo, hi, n)
	}
	return n, nil
}

// ParseDuration reads a duration: an integer number of seconds (a number
// or a string holding one), a Go duration string ("90s", "1h30m", "-1s"),
// or a whole number of days ("7d"), as Vault's TypeDurationSecond does. A
// blank string is 0. Negative durations are returned: callers that refuse
// them say so in their own words.
func ParseDuration(name string, v any) (time.Duration, error) {
	bad := func() error {
		return InvalidRequest("%s: expected a duration such as \"30m\", \"72h\" or \"7d\", or a number of seconds, got %s", name, Describe(v))
	}
	s, isStr := v.(string)
	if !isStr {
		n, err := ParseInt(name, v)
		if err != nil {
			return 0, bad()
		}
		return scaled(name, n, time.Second, "seconds")
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return scaled(name, n, time.Second, "seconds")
	}
	if days, found := strings.CutSuffix(s, "d"); found {
		n, err := strconv.ParseInt(days, 10, 64)
		if err != nil {
			return 0, bad()
		}
		return scaled(name, n, 24*time.Hour, "days")
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, bad()
	}
	return d, nil
}

// scaled returns n units, or an error if that overflows a time.Duration.
func scaled(name string, n int64, unit time.Duration, units string) (time.Duration, error) {
	if n > math.MaxInt64/int64(unit) || n < math.MinInt64/int64(unit) {
		return 0, InvalidRequest("%s: %d %s is out of range", name, n, units)
	}
	return time.Duration(n) * unit, nil
}

// ParseStrings reads a list of strings: a JSON list of strings or a
// comma-separated string ("a, b"), as Vault's TypeCommaStringSlice does.
// Items are trimmed and empty ones dropped; the result is never nil unless
// v is.
func ParseStrings(name string, v any) ([]string, error) {
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
				return nil, InvalidRequest("%s: expected a list of strings or a comma-separated string, found %s in the list", name, Describe(it))
			}
			items = append(items, s)
		}
	default:
		return nil, InvalidRequest("%s: expected a list of strings or a comma-separated string, got %s", name, Describe(v))
	}
	out := make([]string, 0, len(items))
	for _, s := range items {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out, nil
}

// ParseStringMap reads key/value pairs, as Vault's TypeKVPairs does: a JSON
// object whose values are strings, or a list of "key=value" strings (see
// ParseStrings for the list forms). A value that is not a string is
// refused.
func ParseStringMap(name string, v any) (map[string]string, error) {
	out := map[string]string{}
	switch x := v.(type) {
	case map[string]any:
		for k, raw := range x {
			s, ok := raw.(string)
			if !ok {
				return nil, InvalidRequest("%s: value of %q must be a string, got %s", name, k, Describe(raw))
			}
			out[k] = s
		}
	case map[string]string:
		for k, s := range x {
			out[k] = s
		}
	case []any, []string, string:
		list, err := ParseStrings(name, v)
		if err != nil {
			return nil, err
		}
		for _, kv := range list {
			k, val, found := strings.Cut(kv, "=")
			if !found || k == "" {
				return nil, InvalidRequest("%s: expected key=value pairs, got %q", name, kv)
			}
			out[k] = val
		}
	default:
		return nil, InvalidRequest("%s: expected an object of strings or a list of key=value pairs, got %s", name, Describe(v))
	}
	return out, nil
}

// ParseObject reads a JSON object.
func ParseObject(name string, v any) (map[string]any, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, InvalidRequest("%s: expected a JSON object, got %s", name, Describe(v))
	}
	return m, nil
}

// field reads d[name] with parse; see the package's rules above.
func field[T any](d map[string]any, name string, parse func(string, any) (T, error), blankIsAbsent bool) (T, bool, error) {
	var zero T
	v, ok := d[name]
	if l, isList := v.([]string); isList && len(l) == 1 {
		v = l[0]
	}
	if !ok || v == nil {
		return zero, false, nil
	}
	if s, isStr := v.(string); isStr && blankIsAbsent && strings.TrimSpace(s) == "" {
		return zero, false, nil
	}
	t, err := parse(name, v)
	if err != nil {
		return zero, true, err
	}
	return t, true, nil
}

// FieldString reads d[name] with ParseString.
func FieldString(d map[string]any, name string) (string, bool, error) {
	return field(d, name, ParseString, false)
}

// FieldBool reads d[name] with ParseBool; a blank string is not given.
func FieldBool(d map[string]any, name string) (bool, bool, error) {
	return field(d, name, ParseBool, true)
}

// FieldInt reads d[name] with ParseInt.
func FieldInt(d map[string]any, name string) (int64, bool, error) {
	return field(d, name, ParseInt, false)
}

// FieldDuration reads d[name] with ParseDuration; a blank string is not given.
func FieldDuration(d map[string]any, name string) (time.Duration, bool, error) {
	return field(d, name, ParseDuration, true)
}

// FieldStrings reads d[name] with ParseStrings.
func FieldStrings(d map[string]any, name string) ([]string, bool, error) {
	return field(d, name, ParseStrings, false)
}

// FieldStringMap reads d[name] with ParseStringMap.
func FieldStringMap(d map[string]any, name string) (map[string]string, bool, error) {
	return field(d, name, ParseStringMap, false)
}

// FieldObject reads d[name] with ParseObject.
func FieldObject(d map[string]any, name string) (map[string]any, bool, error) {
	return field(d, name, ParseObject, false)
}

// IgnoredFieldsWarning is Vault's warning naming the request fields an
// endpoint did not read, sorted; "" when there are none.
func IgnoredFieldsWarning(names []string) string {
	if len(names) == 0 {
		return ""
	}
	names = slices.Sorted(slices.Values(names))
	return fmt.Sprintf("Endpoint ignored these unrecognized parameters: [%s]", strings.Join(names, " "))
}

func isNumber(v any) bool {
	switch v.(type) {
	case float64, float32, json.Number, int, int32, int64, uint32, uint64:
		return true
	}
	return false
}

// Describe renders a bad value briefly for an error message, for the
// readers here and a backend's own: a string quoted and cut at 64 bytes, a
// number or boolean as itself, an object or list by its kind. Never give it
// a secret (see ParseSecret).
func Describe(v any) string {
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
	}
	if isNumber(v) {
		return fmt.Sprint(v)
	}
	return fmt.Sprintf("a %T", v)
}

// NameOK reports whether name is a name Vault accepts for a role or a key in
// a path segment: letters, digits and "_", with "-" and "." also allowed
// anywhere but first or last.
func NameOK(name string) bool {
	word := func(c byte) bool {
		return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		inner := i > 0 && i < len(name)-1
		if !word(c) && !(inner && (c == '-' || c == '.')) {
			return false
		}
	}
	return name != ""
}
