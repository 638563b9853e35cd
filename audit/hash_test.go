package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestHashStringKnownVector(t *testing.T) {
	// RFC 2104 HMAC-SHA256 example widely published (key "key").
	got := HashString([]byte("key"), "The quick brown fox jumps over the lazy dog")
	want := "hmac-sha256:f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
	if got != want {
		t.Fatalf("HashString = %s, want %s", got, want)
	}
	h := newHasher([]byte("key"))
	for range 3 { // pooled states must be reset between uses
		if got := h.hash("The quick brown fox jumps over the lazy dog"); got != want {
			t.Fatalf("hasher.hash = %s, want %s", got, want)
		}
	}
}

func TestNewSalt(t *testing.T) {
	a, err := NewSalt()
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewSalt()
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != SaltSize || len(b) != SaltSize {
		t.Fatalf("salt sizes %d, %d, want %d", len(a), len(b), SaltSize)
	}
	if bytes.Equal(a, b) {
		t.Fatal("two salts are equal")
	}
	if HashString(a, "x") == HashString(b, "x") {
		t.Fatal("different salts hash alike")
	}
}

type secretStruct struct {
	Password string `json:"password"`
	Count    int    `json:"count"`
}

func TestHashDataFollowsVault(t *testing.T) {
	salt := []byte("salt")
	hs := func(s string) string { return HashString(salt, s) }
	ts := time.Date(2024, 5, 6, 7, 8, 9, 123, time.UTC)
	in := map[string]any{
		"password": "p1",
		"n":        float64(42),
		"i":        7,
		"ok":       true,
		"null":     nil,
		"num":      json.Number("12"),
		"bytes":    []byte("raw"),
		"when":     ts,
		"list":     []any{"a", float64(1), map[string]any{"k": "v"}},
		"strs":     []string{"s1", "s2"},
		"meta":     map[string]string{"team": "t"},
		"nested":   map[string]any{"deep": map[string]any{"x": "y"}},
		"typed":    secretStruct{Password: "sp", Count: 3},
		"rawjson":  json.RawMessage(`{"a":"b","n":5}`),
		"maps":     []map[string]any{{"m": "mv"}},
	}
	before := snapshotJSON(t, in)

	got := newHasher(salt).hashData(in, nil)
	want := map[string]any{
		"password": hs("p1"),
		"n":        float64(42),
		"i":        7,
		"ok":       true,
		"null":     nil,
		"num":      hs("12"),
		"bytes":    hs("raw"),
		"when":     ts.Format(time.RFC3339Nano),
		"list":     []any{hs("a"), float64(1), map[string]any{"k": hs("v")}},
		"strs":     []string{hs("s1"), hs("s2")},
		"meta":     map[string]string{"team": hs("t")},
		"nested":   map[string]any{"deep": map[string]any{"x": hs("y")}},
		"typed":    map[string]any{"password": hs("sp"), "count": json.Number("3")},
		"rawjson":  map[string]any{"a": hs("b"), "n": json.Number("5")},
		"maps":     []any{map[string]any{"m": hs("mv")}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("hashData:\n got %#v\nwant %#v", got, want)
	}
	if after := snapshotJSON(t, in); after != before {
		t.Fatalf("hashData modified its input:\nbefore %s\nafter  %s", before, after)
	}
}

func TestHashDataNonHMACKeys(t *testing.T) {
	salt := []byte("salt")
	in := map[string]any{
		"ttl":      "1h",
		"password": "p",
		"sub":      map[string]any{"ttl": "2h", "other": "o"},
		"list":     []any{"l1"},
	}
	got := newHasher(salt).hashData(in, []string{"ttl", "list"})
	want := map[string]any{
		"ttl":      "1h",
		"password": HashString(salt, "p"),
		"sub":      map[string]any{"ttl": "2h", "other": HashString(salt, "o")},
		"list":     []any{"l1"}, // a slice element's key is its map's key, as in Vault
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %#v\nwant %#v", got, want)
	}
}

// TestHashDataAgainstOracle checks the typed fast path against a dumb oracle:
// render the input through JSON and hash every string leaf of the result.
func TestHashDataAgainstOracle(t *testing.T) {
	salt := []byte("oracle")
	h := newHasher(salt)
	seed := uint64(time.Now().UnixNano())
	r := rand.New(rand.NewPCG(seed, 0))
	for i := range 500 {
		in := randomMap(r, 3)
		got := toGeneric(t, h.hashData(in, nil))
		want := oracleHash(salt, toGeneric(t, in))
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("seed %d case %d: fast path and oracle differ:\n got %v\nwant %v", seed, i, got, want)
		}
	}
}

func randomMap(r *rand.Rand, depth int) map[string]any {
	m := map[string]any{}
	for i := range r.IntN(5) {
		m[fmt.Sprintf("k%d", i)] = randomValue(r, depth)
	}
	return m
}

func randomValue(r *rand.Rand, depth int) any {
	n := 5
	if depth > 0 {
		n = 9
	}
	switch r.IntN(n) {
	case 0:
		return fmt.Sprintf("s%d", r.IntN(1000))
	case 1:
		return float64(r.IntN(1000))
	case 2:
		return r.IntN(2) == 0
	case 3:
		return nil
	case 4:
		return []string{fmt.Sprintf("x%d", r.IntN(9)), "y"}
	case 5, 6:
		return randomMap(r, depth-1)
	case 7:
		return map[string]string{"a": fmt.Sprintf("m%d", r.IntN(9))}
	default:
		l := make([]any, r.IntN(4))
		for i := range l {
			l[i] = randomValue(r, depth-1)
		}
		return l
	}
}

func toGeneric(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func oracleHash(salt []byte, v any) any {
	switch x := v.(type) {
	case string:
		return HashString(salt, x)
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			out[k] = oracleHash(salt, e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = oracleHash(salt, e)
		}
		return out
	}
	return v
}

func snapshotJSON(t *testing.T, v any) string {
	t.Helper()
	var b strings.Builder
	enc := json.NewEncoder(&b)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return b.String()
}
