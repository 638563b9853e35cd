package httpapi

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
)

// countValues is the dumb oracle: decode, then count every value.
func countValues(v any) int {
	n := 1
	switch x := v.(type) {
	case map[string]any:
		for _, e := range x {
			n += 1 + countValues(e) // the key and the value
		}
	case []any:
		for _, e := range x {
			n += countValues(e)
		}
	}
	return n
}

// The streaming count is an upper bound of the decoded values, however the
// text is cut into reads, and close to it.
func TestJSONCounterBoundsTheValues(t *testing.T) {
	texts := []string{
		`{}`, `[]`, `0`, `"a,b:[{"`, `{"a":1}`, `{"a":[1,2,3],"b":{"c":"x\"y,z","d":[]}}`,
		`[[[[]]]]`, `{"k\\":"v\\\\"}`, `[` + strings.Repeat(`0,`, 999) + `0]`,
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, text := range texts {
		var v any
		if err := json.Unmarshal([]byte(text), &v); err != nil {
			t.Fatalf("%s: %v", text, err)
		}
		want := countValues(v)
		for range 20 {
			var j jsonCounter
			got, rest := 0, []byte(text)
			for len(rest) > 0 {
				k := 1 + rng.IntN(len(rest))
				got = j.scan(rest[:k])
				rest = rest[k:]
			}
			if got < want || got > want+2 {
				t.Fatalf("%s: counted %d, decoded %d values", text, got, want)
			}
		}
	}
}
