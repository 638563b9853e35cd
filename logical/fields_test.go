package logical

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

// parseCase is one value given to a Parse function: want is the result
// when ok, and an error must otherwise name the field and mention expect.
type parseCase struct {
	in   any
	want any
	ok   bool
}

// checkParse runs cases through parse and checks results and errors.
func checkParse[T any](t *testing.T, fn string, expect string, parse func(string, any) (T, error), cases []parseCase) {
	t.Helper()
	for _, tc := range cases {
		got, err := parse("the_field", tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("%s(%#v): err %v, want ok=%v", fn, tc.in, err, tc.ok)
			continue
		}
		if err != nil {
			checkErr(t, fn, tc.in, err, expect)
			continue
		}
		if !reflect.DeepEqual(any(got), tc.want) {
			t.Errorf("%s(%#v) = %#v, want %#v", fn, tc.in, got, tc.want)
		}
	}
}

func checkErr(t *testing.T, fn string, in any, err error, expect string) {
	t.Helper()
	if !errors.Is(err, ErrInvalidRequest) || StatusCode(err) != 400 {
		t.Errorf("%s(%#v): %v is not an invalid request (400)", fn, in, err)
	}
	if msg := err.Error(); !strings.Contains(msg, "the_field: ") || !strings.Contains(msg, expect) {
		t.Errorf("%s(%#v): error %q should name the_field and say %q", fn, in, msg, expect)
	}
}

func TestParseString(t *testing.T) {
	checkParse(t, "ParseString", "expected a string", ParseString, []parseCase{
		{"abc", "abc", true},
		{"", "", true},
		{json.Number("42"), "42", true},
		{json.Number("1.50"), "1.50", true},
		{float64(3), "3", true},
		{float64(2.5), "2.5", true},
		{int(7), "7", true},
		{int64(-8), "-8", true},
		{true, nil, false},
		{nil, nil, false},
		{map[string]any{}, nil, false},
		{[]any{"a"}, nil, false},
	})
}

func TestParseSecret(t *testing.T) {
	checkParse(t, "ParseSecret", "expected a string", ParseSecret, []parseCase{
		{"s3cr3t", "s3cr3t", true},
		{"", "", true},
		{json.Number("1234"), nil, false},
		{float64(1234), nil, false},
		{true, nil, false},
		{nil, nil, false},
		{[]any{"pw"}, nil, false},
	})
	// A number sent as a password is a secret all the same: never echoed.
	for _, v := range []any{json.Number("98765"), float64(98765), int(98765)} {
		_, err := ParseSecret("password", v)
		if err == nil || strings.Contains(err.Error(), "98765") || !strings.Contains(err.Error(), "got a number") {
			t.Errorf("ParseSecret(%#v): %v, want an error that hides the value", v, err)
		}
	}
}

func TestParseBool(t *testing.T) {
	checkParse(t, "ParseBool", "expected true or false", ParseBool, []parseCase{
		{true, true, true},
		{false, false, true},
		{"true", true, true},
		{" false ", false, true},
		{"1", true, true},
		{"f", false, true},
		{"maybe", nil, false},
		{"", nil, false},
		{json.Number("1"), nil, false},
		{float64(1), nil, false},
		{nil, nil, false},
		{[]any{}, nil, false},
	})
}

func TestParseInt(t *testing.T) {
	checkParse(t, "ParseInt", "expected an integer", ParseInt, []parseCase{
		{json.Number("42"), int64(42), true},
		{json.Number("-3"), int64(-3), true},
		{float64(3), int64(3), true},
		{float64(-1), int64(-1), true},
		{float64(1 << 53), int64(1 << 53), true},
		{"7", int64(7), true},
		{" 8 ", int64(8), true},
		{int(5), int64(5), true},
		{int32(6), int64(6), true},
		{int64(9), int64(9), true},
		{uint32(10), int64(10), true},
		{uint64(11), int64(11), true},
		{uint64(math.MaxUint64), nil, false},
		{json.Number("1.5"), nil, false},
		{json.Number("99999999999999999999"), nil, false},
		{float64(2.5), nil, false},
		{float64(1<<53 + 2), nil, false},
		{math.Inf(1), nil, false},
		{math.NaN(), nil, false},
		{"abc", nil, false},
		{"", nil, false},
		{"1.0", nil, false},
		{true, nil, false},
		{nil, nil, false},
		{map[string]any{}, nil, false},
	})
}

func TestParseIntRange(t *testing.T) {
	parse := func(name string, v any) (int64, error) { return ParseIntRange(name, v, 0, 10) }
	checkParse(t, "ParseIntRange", "must be between 0 and 10", parse, []parseCase{
		{json.Number("0"), int64(0), true},
		{float64(10), int64(10), true},
		{"5", int64(5), true},
		{float64(-1), nil, false},
		{json.Number("11"), nil, false},
	})
	checkParse(t, "ParseIntRange", "expected an integer", parse, []parseCase{
		{"x", nil, false},
		{nil, nil, false},
	})
}

func TestParseDuration(t *testing.T) {
	const day = 24 * time.Hour
	checkParse(t, "ParseDuration", "expected a duration", ParseDuration, []parseCase{
		{json.Number("60"), time.Minute, true},
		{float64(90), 90 * time.Second, true},
		{float64(0), time.Duration(0), true},
		{int(-5), -5 * time.Second, true},
		{"30", 30 * time.Second, true},
		{" 30 ", 30 * time.Second, true},
		{"1h30m", 90 * time.Minute, true},
		{"-1s", -time.Second, true},
		{"0s", time.Duration(0), true},
		{"7d", 7 * day, true},
		{"-2d", -2 * day, true},
		{"", time.Duration(0), true},
		{"  ", time.Duration(0), true},
		{"soon", nil, false},
		{"1.5", nil, false},
		{"1.5d", nil, false},
		{"d", nil, false},
		{json.Number("1.5"), nil, false},
		{float64(1.5), nil, false},
		{true, nil, false},
		{nil, nil, false},
		{[]any{}, nil, false},
	})
	checkParse(t, "ParseDuration", "out of range", ParseDuration, []parseCase{
		{json.Number("9223372036854775807"), nil, false},
		{"-9223372036854775807", nil, false},
		{"9999999999999d", nil, false},
	})
}

func TestParseStrings(t *testing.T) {
	checkParse(t, "ParseStrings", "expected a list of strings or a comma-separated string", ParseStrings, []parseCase{
		{"a", []string{"a"}, true},
		{"a, b,,c ", []string{"a", "b", "c"}, true},
		{"", []string{}, true},
		{[]any{"x", " y ", ""}, []string{"x", "y"}, true},
		{[]any{}, []string{}, true},
		{[]string{"p", "q"}, []string{"p", "q"}, true},
		{nil, []string(nil), true},
		{[]any{"ok", float64(7)}, nil, false},
		{[]any{json.Number("7")}, nil, false},
		{json.Number("5"), nil, false},
		{float64(5), nil, false},
		{true, nil, false},
		{map[string]any{}, nil, false},
	})
}

func TestParseStringMap(t *testing.T) {
	checkParse(t, "ParseStringMap", "the_field", ParseStringMap, []parseCase{
		{map[string]any{"a": "1", "b": ""}, map[string]string{"a": "1", "b": ""}, true},
		{map[string]any{}, map[string]string{}, true},
		{map[string]string{"k": "v"}, map[string]string{"k": "v"}, true},
		{[]any{"a=1", "b=x=y"}, map[string]string{"a": "1", "b": "x=y"}, true},
		{[]string{"a="}, map[string]string{"a": ""}, true},
		{"a=1,b=2", map[string]string{"a": "1", "b": "2"}, true},
	})
	checkParse(t, "ParseStringMap", "must be a string", ParseStringMap, []parseCase{
		{map[string]any{"k": float64(1.5)}, nil, false},
		{map[string]any{"k": json.Number("1")}, nil, false},
		{map[string]any{"k": nil}, nil, false},
	})
	checkParse(t, "ParseStringMap", "expected key=value pairs", ParseStringMap, []parseCase{
		{"novalue", nil, false},
		{[]any{"=v"}, nil, false},
	})
	checkParse(t, "ParseStringMap", "expected an object of strings", ParseStringMap, []parseCase{
		{json.Number("1"), nil, false},
		{float64(1), nil, false},
		{true, nil, false},
		{nil, nil, false},
	})
}

func TestParseObject(t *testing.T) {
	checkParse(t, "ParseObject", "expected a JSON object", ParseObject, []parseCase{
		{map[string]any{"a": json.Number("1")}, map[string]any{"a": json.Number("1")}, true},
		{map[string]any{}, map[string]any{}, true},
		{"x", nil, false},
		{[]any{"x"}, nil, false},
		{json.Number("3"), nil, false},
		{float64(3), nil, false},
		{nil, nil, false},
	})
}

// TestFields checks the Field functions' rules on top of the Parse ones:
// absent and null are not given, a blank string is not given for bools and
// durations only, and a one-element []string is read as its element.
func TestFields(t *testing.T) {
	d := map[string]any{
		"null":   nil,
		"blank":  "",
		"num":    json.Number("12"),
		"float":  float64(3),
		"str":    "5",
		"bool":   "true",
		"dur":    "1h",
		"query":  []string{"a,b"},
		"query2": []string{"a", "b"},
		"obj":    map[string]any{"k": "v"},
		"bad":    map[string]any{},
	}
	type result struct {
		val any
		ok  bool
		err bool
	}
	wrap := func(v any, ok bool, err error) result { return result{v, ok, err != nil} }
	for _, tc := range []struct {
		name string
		got  result
		want result
	}{
		{"string absent", wrap(FieldString(d, "nope")), result{"", false, false}},
		{"string null", wrap(FieldString(d, "null")), result{"", false, false}},
		{"string blank", wrap(FieldString(d, "blank")), result{"", true, false}},
		{"string number", wrap(FieldString(d, "num")), result{"12", true, false}},
		{"string query", wrap(FieldString(d, "query")), result{"a,b", true, false}},
		{"string wrong", wrap(FieldString(d, "bad")), result{"", true, true}},

		{"bool absent", wrap(FieldBool(d, "nope")), result{false, false, false}},
		{"bool null", wrap(FieldBool(d, "null")), result{false, false, false}},
		{"bool blank", wrap(FieldBool(d, "blank")), result{false, false, false}},
		{"bool string", wrap(FieldBool(d, "bool")), result{true, true, false}},
		{"bool wrong", wrap(FieldBool(d, "num")), result{false, true, true}},

		{"int absent", wrap(FieldInt(d, "nope")), result{int64(0), false, false}},
		{"int null", wrap(FieldInt(d, "null")), result{int64(0), false, false}},
		{"int blank", wrap(FieldInt(d, "blank")), result{int64(0), true, true}},
		{"int number", wrap(FieldInt(d, "num")), result{int64(12), true, false}},
		{"int float", wrap(FieldInt(d, "float")), result{int64(3), true, false}},
		{"int string", wrap(FieldInt(d, "str")), result{int64(5), true, false}},
		{"int wrong", wrap(FieldInt(d, "bool")), result{int64(0), true, true}},

		{"duration absent", wrap(FieldDuration(d, "nope")), result{time.Duration(0), false, false}},
		{"duration null", wrap(FieldDuration(d, "null")), result{time.Duration(0), false, false}},
		{"duration blank", wrap(FieldDuration(d, "blank")), result{time.Duration(0), false, false}},
		{"duration number", wrap(FieldDuration(d, "num")), result{12 * time.Second, true, false}},
		{"duration string", wrap(FieldDuration(d, "dur")), result{time.Hour, true, false}},
		{"duration wrong", wrap(FieldDuration(d, "obj")), result{time.Duration(0), true, true}},

		{"strings absent", wrap(FieldStrings(d, "nope")), result{[]string(nil), false, false}},
		{"strings null", wrap(FieldStrings(d, "null")), result{[]string(nil), false, false}},
		{"strings query", wrap(FieldStrings(d, "query")), result{[]string{"a", "b"}, true, false}},
		{"strings list", wrap(FieldStrings(d, "query2")), result{[]string{"a", "b"}, true, false}},
		{"strings wrong", wrap(FieldStrings(d, "num")), result{[]string(nil), true, true}},

		{"map absent", wrap(FieldStringMap(d, "nope")), result{map[string]string(nil), false, false}},
		{"map null", wrap(FieldStringMap(d, "null")), result{map[string]string(nil), false, false}},
		{"map object", wrap(FieldStringMap(d, "obj")), result{map[string]string{"k": "v"}, true, false}},
		{"map wrong", wrap(FieldStringMap(d, "num")), result{map[string]string(nil), true, true}},

		{"object absent", wrap(FieldObject(d, "nope")), result{map[string]any(nil), false, false}},
		{"object null", wrap(FieldObject(d, "null")), result{map[string]any(nil), false, false}},
		{"object", wrap(FieldObject(d, "obj")), result{map[string]any{"k": "v"}, true, false}},
		{"object wrong", wrap(FieldObject(d, "str")), result{map[string]any(nil), true, true}},
	} {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("%s: got %+v, want %+v", tc.name, tc.got, tc.want)
		}
	}
	// A Field error names the field like a Parse one.
	if _, _, err := FieldInt(d, "bool"); err == nil || !errors.Is(err, ErrInvalidRequest) || !strings.HasPrefix(err.Error(), "invalid request: bool: expected an integer") {
		t.Errorf("FieldInt error: %v", err)
	}
	if _, _, err := FieldString(map[string]any(nil), "x"); err != nil {
		t.Errorf("a nil map: %v", err)
	}
}

func TestIgnoredFieldsWarning(t *testing.T) {
	if w := IgnoredFieldsWarning(nil); w != "" {
		t.Errorf("no names: %q", w)
	}
	names := []string{"colour", "age"}
	if w := IgnoredFieldsWarning(names); w != "Endpoint ignored these unrecognized parameters: [age colour]" {
		t.Errorf("got %q", w)
	}
	if names[0] != "colour" {
		t.Errorf("the caller's slice was sorted in place: %v", names)
	}
}

func TestDescribe(t *testing.T) {
	for in, want := range map[any]string{
		nil:                     "null",
		"x":                     `"x"`,
		strings.Repeat("a", 70): `"` + strings.Repeat("a", 64) + `..."`,
		true:                    "true",
		float64(1.5):            "1.5",
		json.Number("7"):        "7",
		int(3):                  "3",
		struct{}{}:              "a struct {}",
	} {
		if got := Describe(in); got != want {
			t.Errorf("Describe(%#v) = %q, want %q", in, got, want)
		}
	}
	if got := Describe(map[string]any{"secret": "x"}); got != "an object" {
		t.Errorf("an object: %q", got)
	}
	if got := Describe([]any{"secret"}); got != "a list" {
		t.Errorf("a list: %q", got)
	}
}

func TestNameOK(t *testing.T) {
	for name, want := range map[string]bool{
		"web": true, "my-key.v2": true, "_x": true, "A9": true,
		"": false, "-x": false, "x.": false, "a/b": false, "a b": false, "..": false, "ü": false,
	} {
		if got := NameOK(name); got != want {
			t.Errorf("NameOK(%q) = %v, want %v", name, got, want)
		}
	}
}
