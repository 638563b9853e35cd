package forwarder

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The packages below the barrier carry a forwarded request only as sealed
// bytes: none of their files names a logical request or decodes a
// forwarded request (only this package does).
func TestNoPlaintextBelowTheBarrier(t *testing.T) {
	for _, dir := range []string{"../primary", "../secondary", "../replication"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no Go files in %s: %v", dir, err)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, banned := range []string{"logical.Request", "DecodeRequest(", "ForwardRequest"} {
				if strings.Contains(string(b), banned) {
					t.Errorf("%s names %s: a forwarded request must stay opaque below the barrier", f, banned)
				}
			}
		}
	}
}
