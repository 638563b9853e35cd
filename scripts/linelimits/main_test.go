package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckFindsBreaches(t *testing.T) {
	dir := t.TempDir()
	long := "package p\n\nfunc Long() {\n" + strings.Repeat("\t_ = 1\n", 120) + "}\n\nfunc Short() {}\n"
	big := "package p\n\n" + strings.Repeat("var _ = 1\n", 710)
	for name, text := range map[string]string{"long.go": long, "big.go": big, "long_test.go": long} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := check(dir, map[string]bool{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !strings.Contains(strings.Join(got, "\n"), "long.go:Long: 122 lines") || !strings.Contains(strings.Join(got, "\n"), "big.go: 712 lines") {
		t.Fatalf("breaches: %q", got)
	}
	got, _ = check(dir, map[string]bool{"long.go:Long": true})
	if len(got) != 1 {
		t.Fatalf("an allowed function is still reported: %q", got)
	}
}
