package kv

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/cofferhq/coffer/logical"
	"github.com/cofferhq/coffer/storage/inmem"
)

func TestFactoryVersion(t *testing.T) {
	for _, tc := range []struct {
		opts    map[string]string
		want    string
		wantErr bool
	}{
		{nil, "v1", false},
		{map[string]string{"version": ""}, "v1", false},
		{map[string]string{"version": "1"}, "v1", false},
		{map[string]string{"version": "2"}, "v2", false},
		{map[string]string{"version": "3"}, "", true},
		{map[string]string{"version": "two"}, "", true},
	} {
		b, err := Factory(context.Background(), logical.BackendConfig{Storage: logical.NewView(inmem.New(), "x/"), Options: tc.opts})
		if tc.wantErr {
			if err == nil {
				t.Errorf("%v: no error", tc.opts)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%v: %v", tc.opts, err)
		}
		got := "v1"
		if _, ok := b.(*V2); ok {
			got = "v2"
		}
		if got != tc.want {
			t.Errorf("%v: got %s, want %s", tc.opts, got, tc.want)
		}
	}
}

func TestParseInt(t *testing.T) {
	for _, tc := range []struct {
		in   any
		want int64
		ok   bool
	}{
		{float64(3), 3, true},
		{json.Number("42"), 42, true},
		{"7", 7, true},
		{" 8 ", 8, true},
		{int(5), 5, true},
		{float64(2.5), 0, false},
		{"abc", 0, false},
		{"", 0, false},
		{true, 0, false},
		{nil, 0, false},
		{map[string]any{}, 0, false},
		{json.Number("1.5"), 0, false},
	} {
		got, err := logical.ParseInt("max_versions", tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseInt(%#v) = %d, %v; want %d ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
		if err != nil && logical.StatusCode(err) != 400 {
			t.Errorf("parseInt(%#v): status %d, want 400", tc.in, logical.StatusCode(err))
		}
	}
}

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in   any
		want time.Duration
		ok   bool
	}{
		{"1h", time.Hour, true},
		{"90m", 90 * time.Minute, true},
		{"0s", 0, true},
		{"", 0, true},
		{"30", 30 * time.Second, true},
		{float64(60), time.Minute, true},
		{"-1s", -time.Second, true},
		{"soon", 0, false},
		{true, 0, false},
		{float64(1.5), 0, false},
	} {
		got, err := logical.ParseDuration("delete_version_after", tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseDuration(%#v) = %v, %v; want %v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestParseVersions(t *testing.T) {
	for _, tc := range []struct {
		in   any
		want []uint64
		ok   bool
	}{
		{[]any{float64(1), float64(3)}, []uint64{1, 3}, true},
		{[]any{"2", json.Number("4")}, []uint64{2, 4}, true},
		{"1,2, 3", []uint64{1, 2, 3}, true},
		{float64(5), []uint64{5}, true},
		{nil, nil, true},
		{[]any{}, []uint64{}, true},
		{"abc", nil, false},
		{[]any{float64(1), "x"}, nil, false},
		{[]any{float64(-1)}, nil, false},
		{map[string]any{"1": true}, nil, false},
		{[]any{float64(1.5)}, nil, false},
	} {
		got, err := parseVersions(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("parseVersions(%#v): err %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if tc.ok && len(got)+len(tc.want) > 0 && !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parseVersions(%#v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// TestMergePatch runs the examples of RFC 7386, appendix A.
func TestMergePatch(t *testing.T) {
	for _, tc := range []struct{ target, patch, want string }{
		{`{"a":"b"}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"b"}`, `{"b":"c"}`, `{"a":"b","b":"c"}`},
		{`{"a":"b"}`, `{"a":null}`, `{}`},
		{`{"a":"b","b":"c"}`, `{"a":null}`, `{"b":"c"}`},
		{`{"a":["b"]}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"c"}`, `{"a":["b"]}`, `{"a":["b"]}`},
		{`{"a":{"b":"c"}}`, `{"a":{"b":"d","c":null}}`, `{"a":{"b":"d"}}`},
		{`{"a":[{"b":"c"}]}`, `{"a":[1]}`, `{"a":[1]}`},
		{`{"e":null}`, `{"a":1}`, `{"e":null,"a":1}`},
		{`{}`, `{"a":{"bb":{"ccc":null}}}`, `{"a":{"bb":{}}}`},
		{`{"a":"x"}`, `{"a":{"b":1}}`, `{"a":{"b":1}}`},
	} {
		var target, p, want map[string]any
		for _, x := range []struct {
			s string
			v *map[string]any
		}{{tc.target, &target}, {tc.patch, &p}, {tc.want, &want}} {
			if err := json.Unmarshal([]byte(x.s), x.v); err != nil {
				t.Fatal(err)
			}
		}
		before, _ := json.Marshal(target)
		got := mergePatch(target, p)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("merge %s with %s: got %v, want %s", tc.target, tc.patch, got, tc.want)
		}
		if after, _ := json.Marshal(target); string(after) != string(before) {
			t.Errorf("merge %s with %s modified the target: %s", tc.target, tc.patch, after)
		}
	}
}
