package audit

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/logical"
)

// A request whose data is larger than the bounds is logged without it, with
// data_omitted saying so: the line stays small whatever the client sent
// (finding 4 of issue 11: 1 MiB of [0,0,...] made a 41 MB line).
func TestLargeRequestDataIsOmitted(t *testing.T) {
	zeros := make([]any, 512*1024)
	for i := range zeros {
		zeros[i] = json.Number("0")
	}
	longKeys := map[string]any{}
	for i := range 40 {
		longKeys[strings.Repeat(string(rune('a'+i%26)), 2000)+string(rune('A'+i))] = "x"
	}
	cases := map[string]map[string]any{
		"many values":   {"a": zeros},
		"long map keys": longKeys,
		"many entries": func() map[string]any {
			m := map[string]any{}
			for i := range MaxRequestDataValues + 1 {
				m[strings.Repeat("k", 1+i%7)+string(rune(0x4e00+i))] = i
			}
			return m
		}(),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			d, path := newFileDevice(t, nil)
			in := &LogInput{
				Request: &logical.Request{ID: "big", Operation: logical.UpdateOperation, MountPoint: "secret/", Path: "data/x", Data: data},
				Err:     logical.ErrPermissionDenied,
			}
			if err := d.LogRequest(context.Background(), in); err != nil {
				t.Fatal(err)
			}
			if err := d.LogResponse(context.Background(), in); err != nil {
				t.Fatal(err)
			}
			for _, line := range readLines(t, path) {
				if len(line) > 4096 {
					t.Errorf("audit line of %d bytes, want a few hundred", len(line))
				}
				m := decode(t, line)
				req := at(t, m, "request").(map[string]any)
				if _, ok := req["data"]; ok {
					t.Error("request.data is present")
				}
				if s, _ := req["data_omitted"].(string); !strings.Contains(s, "not logged") {
					t.Errorf("request.data_omitted = %q, want why the data is missing", s)
				}
			}
		})
	}
}

// Data within the bounds is logged as before, and the bounds are inclusive.
func TestRequestDataWithinBoundsIsLogged(t *testing.T) {
	vals := make([]any, MaxRequestDataValues-1) // plus the map entry itself
	for i := range vals {
		vals[i] = "v"
	}
	d, path := newFileDevice(t, nil)
	in := &LogInput{Request: &logical.Request{ID: "ok", Operation: logical.UpdateOperation, MountPoint: "secret/", Path: "x",
		Data: map[string]any{"list": vals}}}
	if err := d.LogRequest(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	m := decode(t, readLines(t, path)[0])
	if got := len(at(t, m, "request", "data", "list").([]any)); got != len(vals) {
		t.Fatalf("logged %d values, want %d", got, len(vals))
	}
	if _, ok := at(t, m, "request").(map[string]any)["data_omitted"]; ok {
		t.Error("data_omitted set on data within the bounds")
	}
}
