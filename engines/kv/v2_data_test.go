package kv

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/cofferhq/coffer/logical"
)

func meta(version uint64, created time.Time, deletion string, destroyed bool, custom map[string]string) map[string]any {
	return map[string]any{
		"created_time": ts(created), "custom_metadata": custom, "deletion_time": deletion,
		"destroyed": destroyed, "version": version,
	}
}

func TestV2DataHistory(t *testing.T) {
	h := newHarness(t, "2")
	if _, err := h.req(rd, "data/app", nil); !isNotFound(err) {
		t.Fatalf("read of a missing key: %v, want ErrNotFound", err)
	}
	var created []time.Time
	for i, pw := range []string{"one", "two", "three"} {
		h.now = t0.Add(time.Duration(i) * time.Minute)
		created = append(created, h.now)
		resp := h.must(cr, "data/app", map[string]any{"data": map[string]any{"pw": pw}})
		jsonEq(t, "write response", resp.Data, meta(uint64(i+1), h.now, "", false, nil))
		if resp.StatusCode != 0 {
			t.Fatalf("write status %d, want default", resp.StatusCode)
		}
	}
	for _, tc := range []struct {
		name    string
		version any
		want    string
		ver     uint64
	}{
		{"current", nil, "three", 3},
		{"version 0 is current", "0", "three", 3},
		{"query string", "1", "one", 1},
		{"json number", float64(2), "two", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := map[string]any{}
			if tc.version != nil {
				data["version"] = tc.version
			}
			resp := h.must(rd, "data/app", data)
			jsonEq(t, "read", resp.Data, map[string]any{
				"data":     map[string]any{"pw": tc.want},
				"metadata": meta(tc.ver, created[tc.ver-1], "", false, nil),
			})
		})
	}
	if _, err := h.req(rd, "data/app", map[string]any{"version": "4"}); !isNotFound(err) {
		t.Fatalf("read of version 4: %v, want ErrNotFound", err)
	}
	h.fails(rd, "data/app", map[string]any{"version": "abc"}, 400, "version")
	h.fails(rd, "data/app", map[string]any{"version": "-1"}, 400, "version")

	// Each version and the metadata are separate records.
	for _, k := range []string{"metadata/app", "versions/app/1", "versions/app/2", "versions/app/3"} {
		if rec := h.raw(k); rec == nil || rec["v"] != float64(1) {
			t.Fatalf("record %s = %v, want one with \"v\":1", k, rec)
		}
	}
}

func TestV2DataWriteErrors(t *testing.T) {
	h := newHarness(t, "2")
	for _, tc := range []struct {
		name string
		path string
		data map[string]any
		code int
		want string
	}{
		{"no data", "data/a", map[string]any{}, 400, "no data provided"},
		{"null data", "data/a", map[string]any{"data": nil}, 400, "no data provided"},
		{"data not an object", "data/a", map[string]any{"data": "x"}, 400, "data: expected a JSON object"},
		{"data a list", "data/a", map[string]any{"data": []any{"x"}}, 400, "data: expected a JSON object"},
		{"options not an object", "data/a", map[string]any{"data": map[string]any{}, "options": "cas"}, 400, "options: expected a JSON object"},
		{"cas not a number", "data/a", map[string]any{"data": map[string]any{}, "options": map[string]any{"cas": "abc"}}, 400, "options.cas"},
		{"no key", "data/", map[string]any{"data": map[string]any{}}, 400, "missing path"},
		{"folder", "data/a/", map[string]any{"data": map[string]any{}}, 400, "ends with"},
		{"unknown endpoint", "nope/a", map[string]any{}, 404, "unsupported path"},
		{"bare mount", "", nil, 404, "unsupported path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.fails(wr, tc.path, tc.data, tc.code, tc.want)
		})
	}
	h.fails(list, "data/", nil, 405, "metadata/")
	h.fails(patch, "config", map[string]any{}, 405, "read and write")
	h.fails(rd, "destroy/a", nil, 405, "versions")
	if h.raw("metadata/a") != nil {
		t.Fatal("a failed write left metadata behind")
	}
}

func TestV2CheckAndSet(t *testing.T) {
	h := newHarness(t, "2")
	put := func(cas any) map[string]any {
		d := map[string]any{"data": map[string]any{"k": "v"}}
		if cas != nil {
			d["options"] = map[string]any{"cas": cas}
		}
		return d
	}
	steps := []struct {
		name    string
		cas     any
		wantErr string
		wantVer uint64
	}{
		{"cas 1 on a new key", float64(1), msgCASMismatch, 0},
		{"cas 0 creates", float64(0), "", 1},
		{"cas 0 on an existing key", float64(0), msgCASMismatch, 0},
		{"cas matching", float64(1), "", 2},
		{"cas stale", float64(1), msgCASMismatch, 0},
		{"cas ahead", float64(5), msgCASMismatch, 0},
		{"cas as string", "2", "", 3},
		{"cas negative", float64(-1), msgCASMismatch, 0},
		{"no cas", nil, "", 4},
	}
	for _, s := range steps {
		resp, err := h.req(wr, "data/k", put(s.cas))
		if s.wantErr != "" {
			ce, ok := err.(*logical.CodedError)
			if !ok || ce.Code != http.StatusBadRequest || ce.Msg != s.wantErr {
				t.Fatalf("%s: err %v, want 400 %q", s.name, err, s.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if v := resp.Data["version"]; v != s.wantVer {
			t.Fatalf("%s: version %v, want %d", s.name, v, s.wantVer)
		}
	}
}

func TestV2CASRequired(t *testing.T) {
	data := map[string]any{"data": map[string]any{"k": "v"}}
	withCAS := func(n float64) map[string]any {
		return map[string]any{"data": map[string]any{"k": "v"}, "options": map[string]any{"cas": n}}
	}
	t.Run("mount config", func(t *testing.T) {
		h := newHarness(t, "2")
		h.must(wr, "config", map[string]any{"cas_required": true})
		h.fails(wr, "data/k", data, 400, msgCASRequired)
		h.must(wr, "data/k", withCAS(0))
		h.fails(patch, "data/k", data, 400, msgCASRequired)
		h.must(patch, "data/k", withCAS(1))
		// A key cannot opt out of the mount's requirement; Vault warns.
		resp := h.must(wr, "metadata/k", map[string]any{"cas_required": false})
		if resp == nil || len(resp.Warnings) != 1 || resp.Warnings[0] != warnCASMandated {
			t.Fatalf("metadata write answered %+v, want the cas_required warning", resp)
		}
		h.fails(wr, "data/k", data, 400, msgCASRequired)
	})
	t.Run("key metadata", func(t *testing.T) {
		h := newHarness(t, "2")
		h.must(wr, "metadata/k", map[string]any{"cas_required": true})
		h.fails(wr, "data/k", data, 400, msgCASRequired)
		h.must(wr, "data/k", withCAS(0))
		h.fails(patch, "data/k", data, 400, msgCASRequired)
		h.must(wr, "data/other", data) // other keys are not affected
		h.must(patch, "metadata/k", map[string]any{"cas_required": false})
		h.must(wr, "data/k", data)
	})
}

func TestV2Patch(t *testing.T) {
	h := newHarness(t, "2")
	body := func(d map[string]any) map[string]any { return map[string]any{"data": d} }
	if _, err := h.req(patch, "data/app", body(map[string]any{"a": "b"})); !isNotFound(err) {
		t.Fatalf("patch of a missing key: %v, want ErrNotFound", err)
	}
	h.must(wr, "data/app", body(map[string]any{
		"user": "u", "pw": "p", "nested": map[string]any{"x": "1", "y": "2"},
	}))
	h.now = t0.Add(time.Second)
	resp := h.must(patch, "data/app", body(map[string]any{
		"pw": "q", "user": nil, "nested": map[string]any{"y": nil, "z": "3"}, "new": "n",
	}))
	jsonEq(t, "patch response", resp.Data, meta(2, h.now, "", false, nil))
	jsonEq(t, "patched data", h.must(rd, "data/app", nil).Data["data"], map[string]any{
		"pw": "q", "nested": map[string]any{"x": "1", "z": "3"}, "new": "n",
	})
	jsonEq(t, "version 1 untouched", h.must(rd, "data/app", map[string]any{"version": "1"}).Data["data"], map[string]any{
		"user": "u", "pw": "p", "nested": map[string]any{"x": "1", "y": "2"},
	})

	// cas is honoured.
	h.fails(patch, "data/app", map[string]any{"data": map[string]any{"a": "b"}, "options": map[string]any{"cas": float64(1)}}, 400, msgCASMismatch)
	h.must(patch, "data/app", map[string]any{"data": map[string]any{"a": "b"}, "options": map[string]any{"cas": float64(2)}})

	h.fails(patch, "data/app", map[string]any{}, 400, msgNoData)
	h.fails(patch, "data/app", map[string]any{"data": float64(3)}, 400, "data: expected a JSON object")

	// A deleted latest version cannot be patched: 404 with its metadata.
	h.must(del, "data/app", nil)
	resp = h.must(patch, "data/app", body(map[string]any{"a": "c"}))
	if resp.StatusCode != http.StatusNotFound || resp.Data["version"] != uint64(3) || resp.Data["deletion_time"] != ts(h.now) {
		t.Fatalf("patch of a deleted version answered %d %v, want 404 with version 3's metadata", resp.StatusCode, resp.Data)
	}
	if got := h.must(rd, "metadata/app", nil).Data["current_version"]; got != uint64(3) {
		t.Fatalf("current_version %v after a refused patch, want 3", got)
	}
}

func TestV2DeleteUndeleteDestroy(t *testing.T) {
	h := newHarness(t, "2")
	for i := 1; i <= 4; i++ {
		h.must(wr, "data/app", map[string]any{"data": map[string]any{"n": float64(i)}})
	}
	readStatus := func(v string) (int, map[string]any) {
		t.Helper()
		resp := h.must(rd, "data/app", map[string]any{"version": v})
		code := resp.StatusCode
		if code == 0 {
			code = 200
		}
		return code, resp.Data
	}

	// DELETE data/ soft-deletes the latest version only.
	h.now = t0.Add(time.Hour)
	if resp := h.must(del, "data/app", nil); resp != nil {
		t.Fatalf("delete answered %+v, want nothing (204)", resp)
	}
	code, body := readStatus("0")
	jsonEq(t, "read of a deleted version", body, map[string]any{
		"data": nil, "metadata": meta(4, t0, ts(t0.Add(time.Hour)), false, nil),
	})
	if code != 404 {
		t.Fatalf("read of a deleted version: status %d, want 404", code)
	}
	// Deleting again keeps the first deletion time.
	h.now = t0.Add(2 * time.Hour)
	h.must(del, "data/app", nil)
	if _, body = readStatus("4"); body["metadata"].(map[string]any)["deletion_time"] != ts(t0.Add(time.Hour)) {
		t.Fatalf("second delete moved deletion_time: %v", body)
	}

	steps := []struct {
		name string
		path string
		vers any
		want map[string]int // version -> read status
	}{
		{"delete 1 and 2", "delete/app", []any{float64(1), float64(2)}, map[string]int{"1": 404, "2": 404, "3": 200, "4": 404}},
		{"undelete 1 and 4", "undelete/app", []any{float64(1), "4"}, map[string]int{"1": 200, "2": 404, "3": 200, "4": 200}},
		{"destroy 2 and 3 (comma string)", "destroy/app", "2,3", map[string]int{"1": 200, "2": 404, "3": 404, "4": 200}},
		{"undelete of destroyed stays destroyed", "undelete/app", []any{float64(2), float64(3)}, map[string]int{"2": 404, "3": 404}},
		{"missing versions are skipped", "delete/app", []any{float64(9), float64(1)}, map[string]int{"1": 404, "4": 200}},
	}
	for _, s := range steps {
		if resp := h.must(wr, s.path, map[string]any{"versions": s.vers}); resp != nil {
			t.Fatalf("%s answered %+v, want nothing (204)", s.name, resp)
		}
		for v, want := range s.want {
			if got, body := readStatus(v); got != want {
				t.Fatalf("%s: read of version %s: status %d (%v), want %d", s.name, v, got, body, want)
			}
		}
	}
	// Destroyed versions report it and lose their data record.
	_, body = readStatus("2")
	if md := body["metadata"].(map[string]any); md["destroyed"] != true || body["data"] != nil {
		t.Fatalf("destroyed version reads as %v", body)
	}
	if h.raw("versions/app/2") != nil || h.raw("versions/app/3") != nil {
		t.Fatal("destroy left the data records in storage")
	}
	if h.raw("versions/app/1") == nil {
		t.Fatal("soft delete removed the data record")
	}

	for _, tc := range []struct {
		name string
		data map[string]any
		code int
		want string
	}{
		{"no versions", map[string]any{}, 400, msgNoVersions},
		{"empty list", map[string]any{"versions": []any{}}, 400, msgNoVersions},
		{"not numbers", map[string]any{"versions": "abc"}, 400, "versions:"},
		{"mixed", map[string]any{"versions": []any{float64(1), "x"}}, 400, "versions:"},
		{"object", map[string]any{"versions": map[string]any{}}, 400, "versions:"},
	} {
		for _, ep := range []string{"delete", "undelete", "destroy"} {
			t.Run(tc.name+" "+ep, func(t *testing.T) {
				h.fails(wr, ep+"/app", tc.data, tc.code, tc.want)
			})
		}
	}
	// A key that does not exist: nothing to do, no error (as Vault).
	h.must(wr, "destroy/ghost", map[string]any{"versions": []any{float64(1)}})
	h.must(del, "data/ghost", nil)
	if h.raw("metadata/ghost") != nil {
		t.Fatal("operations on a missing key created it")
	}
}

func TestV2MaxVersions(t *testing.T) {
	versionsOf := func(h *harness, key string) map[string]any {
		return h.must(rd, "metadata/"+key, nil).Data["versions"].(map[string]any)
	}
	for _, tc := range []struct {
		name       string
		config     float64 // mount max_versions
		key        float64 // key max_versions (0: unset)
		writes     int
		wantKept   []string
		wantOldest uint64
	}{
		{"default keeps 10", 0, 0, 12, []string{"3", "4", "5", "6", "7", "8", "9", "10", "11", "12"}, 3},
		{"under the default nothing is pruned", 0, 0, 5, []string{"1", "2", "3", "4", "5"}, 0},
		{"mount limit", 3, 0, 5, []string{"3", "4", "5"}, 3},
		{"key limit", 0, 2, 4, []string{"3", "4"}, 3},
		{"key raises the mount limit", 2, 4, 6, []string{"3", "4", "5", "6"}, 3},
		{"key cannot lower the mount limit", 3, 1, 4, []string{"2", "3", "4"}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, "2")
			if tc.config > 0 {
				h.must(wr, "config", map[string]any{"max_versions": tc.config})
			}
			if tc.key > 0 {
				h.must(wr, "metadata/k", map[string]any{"max_versions": tc.key})
			}
			for i := 1; i <= tc.writes; i++ {
				h.must(wr, "data/k", map[string]any{"data": map[string]any{"i": float64(i)}})
			}
			got := versionsOf(h, "k")
			if len(got) != len(tc.wantKept) {
				t.Fatalf("kept versions %v, want %v", got, tc.wantKept)
			}
			for _, v := range tc.wantKept {
				if got[v] == nil {
					t.Fatalf("version %s was pruned; kept %v", v, got)
				}
			}
			md := h.must(rd, "metadata/k", nil).Data
			if md["oldest_version"] != tc.wantOldest || md["current_version"] != uint64(tc.writes) {
				t.Fatalf("oldest %v current %v, want %d %d", md["oldest_version"], md["current_version"], tc.wantOldest, tc.writes)
			}
			for i := 1; i <= tc.writes; i++ {
				kept := got[strconv.Itoa(i)] != nil
				rec := h.raw(versionKey("k", uint64(i)))
				if kept != (rec != nil) {
					t.Fatalf("version %d: kept in metadata %v, data record present %v", i, kept, rec != nil)
				}
				_, err := h.req(rd, "data/k", map[string]any{"version": strconv.Itoa(i)})
				if kept != (err == nil) {
					t.Fatalf("version %d: kept %v, read error %v", i, kept, err)
				}
			}
		})
	}

	t.Run("lowering prunes on the next write", func(t *testing.T) {
		h := newHarness(t, "2")
		for i := 1; i <= 6; i++ {
			h.must(wr, "data/k", map[string]any{"data": map[string]any{"i": float64(i)}})
		}
		h.must(wr, "config", map[string]any{"max_versions": float64(2)})
		if n := len(versionsOf(h, "k")); n != 6 {
			t.Fatalf("%d versions right after lowering max_versions, want 6 (pruning waits for a write)", n)
		}
		h.must(wr, "data/k", map[string]any{"data": map[string]any{"i": float64(7)}})
		got := versionsOf(h, "k")
		if len(got) != 2 || got["6"] == nil || got["7"] == nil {
			t.Fatalf("after the next write kept %v, want 6 and 7", got)
		}
		for i := 1; i <= 5; i++ {
			if h.raw(versionKey("k", uint64(i))) != nil {
				t.Fatalf("version %d's data record survived pruning", i)
			}
		}
	})
}

func TestV2DeleteVersionAfter(t *testing.T) {
	h := newHarness(t, "2")
	h.must(wr, "config", map[string]any{"delete_version_after": "1h"})
	jsonEq(t, "config", h.must(rd, "config", nil).Data, map[string]any{
		"cas_required": false, "delete_version_after": "1h0m0s", "max_versions": 0,
	})
	resp := h.must(wr, "data/k", map[string]any{"data": map[string]any{"a": "b"}})
	if want := ts(t0.Add(time.Hour)); resp.Data["deletion_time"] != want {
		t.Fatalf("deletion_time %v, want %s", resp.Data["deletion_time"], want)
	}
	h.now = t0.Add(time.Hour - time.Nanosecond)
	if r := h.must(rd, "data/k", nil); r.StatusCode != 0 || r.Data["data"] == nil {
		t.Fatalf("read before delete_version_after elapsed: %d %v", r.StatusCode, r.Data)
	}
	h.now = t0.Add(time.Hour + time.Nanosecond)
	r := h.must(rd, "data/k", nil)
	if r.StatusCode != http.StatusNotFound || r.Data["data"] != nil {
		t.Fatalf("read after delete_version_after elapsed: %d %v, want 404 with no data", r.StatusCode, r.Data)
	}
	// Undelete clears the scheduled deletion, as in Vault.
	h.must(wr, "undelete/k", map[string]any{"versions": []any{float64(1)}})
	if r := h.must(rd, "data/k", nil); r.StatusCode != 0 {
		t.Fatalf("read after undelete: %d", r.StatusCode)
	}

	// The smaller non-zero of mount and key wins.
	h.must(wr, "metadata/short", map[string]any{"delete_version_after": "10m"})
	h.must(wr, "metadata/long", map[string]any{"delete_version_after": float64(7200)})
	for key, want := range map[string]time.Duration{"short": 10 * time.Minute, "long": time.Hour} {
		r := h.must(wr, "data/"+key, map[string]any{"data": map[string]any{"a": "b"}})
		if r.Data["deletion_time"] != ts(h.now.Add(want)) {
			t.Fatalf("%s: deletion_time %v, want now+%s", key, r.Data["deletion_time"], want)
		}
	}
	if got := h.must(rd, "metadata/long", nil).Data["delete_version_after"]; got != "2h0m0s" {
		t.Fatalf("metadata delete_version_after %v, want 2h0m0s", got)
	}

	// A negative mount setting disables the feature even for keys that set it.
	h.must(wr, "config", map[string]any{"delete_version_after": "-1s"})
	if got := h.must(rd, "config", nil).Data["delete_version_after"]; got != "-1s" {
		t.Fatalf("config delete_version_after %v, want -1s", got)
	}
	if r := h.must(wr, "data/short", map[string]any{"data": map[string]any{"a": "c"}}); r.Data["deletion_time"] != "" {
		t.Fatalf("deletion_time %v with delete_version_after disabled", r.Data["deletion_time"])
	}
	// 0s clears it: the key's own setting applies again.
	h.must(wr, "config", map[string]any{"delete_version_after": "0s"})
	if r := h.must(wr, "data/short", map[string]any{"data": map[string]any{"a": "d"}}); r.Data["deletion_time"] != ts(h.now.Add(10*time.Minute)) {
		t.Fatalf("deletion_time %v, want the key's 10m", r.Data["deletion_time"])
	}
	h.fails(wr, "metadata/short", map[string]any{"delete_version_after": "-5s"}, 400, "delete_version_after")
}

func TestV2Subkeys(t *testing.T) {
	h := newHarness(t, "2")
	h.must(wr, "data/app", map[string]any{"data": map[string]any{
		"a": "1", "b": map[string]any{"c": "2", "d": map[string]any{"e": "3"}},
	}})
	for _, tc := range []struct {
		depth any
		want  map[string]any
	}{
		{nil, map[string]any{"a": nil, "b": map[string]any{"c": nil, "d": map[string]any{"e": nil}}}},
		{"1", map[string]any{"a": nil, "b": nil}},
		{float64(2), map[string]any{"a": nil, "b": map[string]any{"c": nil, "d": nil}}},
	} {
		data := map[string]any{}
		if tc.depth != nil {
			data["depth"] = tc.depth
		}
		resp := h.must(rd, "subkeys/app", data)
		jsonEq(t, "subkeys", resp.Data["subkeys"], tc.want)
		if resp.Data["metadata"].(map[string]any)["version"] != uint64(1) {
			t.Fatalf("subkeys metadata %v", resp.Data["metadata"])
		}
	}
	h.fails(rd, "subkeys/app", map[string]any{"depth": "deep"}, 400, "depth")
	h.must(del, "data/app", nil)
	if r := h.must(rd, "subkeys/app", nil); r.StatusCode != 404 || r.Data["subkeys"] != nil {
		t.Fatalf("subkeys of a deleted version: %d %v", r.StatusCode, r.Data)
	}
}
