// Package script runs test scripts in the style of etcd raft's datadriven
// tests: a file of commands, each followed by the output it must produce.
// It is for tests only and must never be imported by non-test code.
//
// A script is a sequence of blocks:
//
//	# a comment line
//	command arg1 key=value
//	----
//	the expected output,
//	one or more lines
//
// A blank line ends a block. The command line is split on spaces; Cmd.Args
// keeps the words after the command. Run calls the test's handler for each
// block in order and compares its output (trailing space trimmed) with the
// expected text. With COFFER_REWRITE=1 in the environment, Run rewrites the
// file with the outputs it got instead of failing: review the diff.
package script

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// Cmd is one command of a script.
type Cmd struct {
	Name string
	Args []string
	// Raw is the whole command line, for handlers that parse quoted
	// arguments themselves.
	Raw string
	// Line is the command's line number in the file, for messages.
	Line int
}

// Arg returns the value of key=value among the arguments, or "".
func (c Cmd) Arg(key string) string {
	for _, a := range c.Args {
		if k, v, ok := strings.Cut(a, "="); ok && k == key {
			return v
		}
	}
	return ""
}

type block struct {
	cmd      Cmd
	raw      string
	expected string
	comments []string
}

// parse reads the blocks of a script.
func parse(path, text string) ([]block, error) {
	var out []block
	lines := strings.Split(text, "\n")
	var comments []string
	for i := 0; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		switch {
		case l == "":
			continue
		case strings.HasPrefix(l, "#"):
			comments = append(comments, lines[i])
			continue
		}
		f := strings.Fields(l)
		b := block{cmd: Cmd{Name: f[0], Args: f[1:], Raw: l, Line: i + 1}, raw: l, comments: comments}
		comments = nil
		if i+1 >= len(lines) || strings.TrimSpace(lines[i+1]) != "----" {
			return nil, fmt.Errorf("%s:%d: command %q is not followed by ----", path, i+1, l)
		}
		i += 2
		var exp []string
		for ; i < len(lines) && strings.TrimSpace(lines[i]) != ""; i++ {
			exp = append(exp, strings.TrimRight(lines[i], " \t"))
		}
		b.expected = strings.Join(exp, "\n")
		out = append(out, b)
	}
	return out, nil
}

// Run runs the script at path with handle.
func Run(t *testing.T, path string, handle func(t *testing.T, c Cmd) string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := parse(path, string(data))
	if err != nil {
		t.Fatal(err)
	}
	rewrite := os.Getenv("COFFER_REWRITE") == "1"
	var b strings.Builder
	for i, bl := range blocks {
		got := strings.TrimRight(handle(t, bl.cmd), " \t\n")
		if rewrite {
			if i > 0 {
				b.WriteString("\n")
			}
			for _, c := range bl.comments {
				b.WriteString(c + "\n")
			}
			fmt.Fprintf(&b, "%s\n----\n%s\n", bl.raw, got)
			continue
		}
		if got != bl.expected {
			t.Fatalf("%s:%d: %s\n got:\n%s\nwant:\n%s", path, bl.cmd.Line, bl.raw, got, bl.expected)
		}
	}
	if rewrite {
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
