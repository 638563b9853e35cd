package script

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseAndRun(t *testing.T) {
	p := filepath.Join(t.TempDir(), "s.txt")
	text := "# adds\nadd a=1 b=2\n----\n3\n\nadd a=2 b=2\n----\n4\n"
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	var seen []string
	Run(t, p, func(t *testing.T, c Cmd) string {
		seen = append(seen, c.Name+":"+c.Arg("a"))
		a, b := c.Arg("a"), c.Arg("b")
		return map[string]string{"1+2": "3", "2+2": "4"}[a+"+"+b]
	})
	if strings.Join(seen, ",") != "add:1,add:2" {
		t.Fatalf("ran %v", seen)
	}
	if _, err := parse("x", "cmd\nno separator\n"); err == nil {
		t.Fatal("a block without ---- was accepted")
	}
}
