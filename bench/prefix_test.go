package bench

import (
	"bytes"
	"sync"
	"testing"
)

// Every line reaches the shared log whole and after its server's name,
// however the process's writes cut it.
func TestPrefixedWritesWholeLines(t *testing.T) {
	var out bytes.Buffer
	var mu sync.Mutex
	a := &prefixed{mu: &mu, w: &out, prefix: []byte("primary ")}
	b := &prefixed{mu: &mu, w: &out, prefix: []byte("secondary1 ")}
	for _, w := range []struct {
		p *prefixed
		s string
	}{{a, "gc 1 @0.1s"}, {b, "gc 7 @2s: 4->4->1 MB\n{\"le"}, {a, "\n"}, {b, "vel\":\"info\"}\n"}} {
		if n, err := w.p.Write([]byte(w.s)); err != nil || n != len(w.s) {
			t.Fatalf("Write(%q) = %d, %v", w.s, n, err)
		}
	}
	want := "secondary1 gc 7 @2s: 4->4->1 MB\nprimary gc 1 @0.1s\nsecondary1 {\"level\":\"info\"}\n"
	if out.String() != want {
		t.Fatalf("log:\n%s\nwant:\n%s", out.String(), want)
	}
}
