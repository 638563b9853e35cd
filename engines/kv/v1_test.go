package kv

import (
	"encoding/json"
	"testing"
)

func TestV1ReadWriteDelete(t *testing.T) {
	h := newHarness(t, "1")
	if h.exists("app") {
		t.Fatal("app exists before any write")
	}
	if _, err := h.req(rd, "app", nil); !isNotFound(err) {
		t.Fatalf("read of a missing key: %v, want ErrNotFound", err)
	}
	if resp := h.must(cr, "app", map[string]any{"user": "u", "password": "p"}); resp != nil {
		t.Fatalf("write answered %+v, want nothing (204)", resp)
	}
	if !h.exists("app") {
		t.Fatal("app does not exist after a write")
	}
	jsonEq(t, "read", h.must(rd, "app", nil).Data, map[string]any{"user": "u", "password": "p"})

	// A write replaces the whole map.
	h.must(wr, "app", map[string]any{"password": "q"})
	jsonEq(t, "read after overwrite", h.must(rd, "app", nil).Data, map[string]any{"password": "q"})

	// The record is versioned.
	if rec := h.raw("app"); rec["v"] != float64(1) {
		t.Fatalf("stored record %v has no \"v\":1", rec)
	}

	h.must(del, "app", nil)
	if _, err := h.req(rd, "app", nil); !isNotFound(err) {
		t.Fatalf("read after delete: %v, want ErrNotFound", err)
	}
	if h.exists("app") {
		t.Fatal("app exists after delete")
	}
	h.must(del, "app", nil) // deleting a missing key is fine
}

func TestV1Errors(t *testing.T) {
	h := newHarness(t, "1")
	for _, tc := range []struct {
		name string
		op   string
		path string
		data map[string]any
		code int
		want string
	}{
		{"empty write", "update", "app", map[string]any{}, 400, "missing data fields"},
		{"nil write", "create", "app", nil, 400, "missing data fields"},
		{"folder write", "update", "dir/", map[string]any{"a": "b"}, 400, "ends with"},
		{"no path", "read", "", nil, 400, "missing path"},
		{"patch", "patch", "app", map[string]any{"a": "b"}, 405, "version 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.fails(opOf(tc.op), tc.path, tc.data, tc.code, tc.want)
		})
	}
}

// TestV1KeepsNumbers checks that a number a client wrote comes back exact.
func TestV1KeepsNumbers(t *testing.T) {
	h := newHarness(t, "1")
	h.must(wr, "n", map[string]any{"big": json.Number("9007199254740993"), "f": 1.5, "nested": map[string]any{"ok": true}})
	got, err := json.Marshal(h.must(rd, "n", nil).Data)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"big":9007199254740993,"f":1.5,"nested":{"ok":true}}`; string(got) != want {
		t.Fatalf("read %s, want %s", got, want)
	}
}

func TestV1List(t *testing.T) {
	h := newHarness(t, "1")
	if _, err := h.req(list, "", nil); !isNotFound(err) {
		t.Fatalf("list of an empty mount: %v, want ErrNotFound (404, as Vault)", err)
	}
	for _, k := range []string{"a", "b/c", "b/d/e", "b/d/f", "b", "z/y"} {
		h.must(wr, k, map[string]any{"k": k})
	}
	for _, tc := range []struct {
		path string
		want []string
	}{
		{"", []string{"a", "b", "b/", "z/"}},
		{"b/", []string{"c", "d/"}},
		{"b", []string{"c", "d/"}},
		{"b/d/", []string{"e", "f"}},
		{"nope/", nil},
		{"a/", nil},
	} {
		resp, err := h.req(list, tc.path, nil)
		if tc.want == nil {
			if !isNotFound(err) {
				t.Errorf("list %q: %v %+v, want ErrNotFound", tc.path, err, resp)
			}
			continue
		}
		if err != nil {
			t.Fatalf("list %q: %v", tc.path, err)
		}
		jsonEq(t, "list "+tc.path, resp.Data, map[string]any{"keys": tc.want})
	}
}
