// Command linelimits checks the size rules of docs/architecture.md: outside
// tests, no Go file over 700 lines and no function over 100 lines, except the
// functions named in allowed.txt (flat switches, each with its reason).
// It prints every breach and exits 1 when there is one.
//
//	go run ./scripts/linelimits [dir]
package main

import (
	_ "embed"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

const (
	maxFileLines = 700
	maxFuncLines = 100
)

//go:embed allowed.txt
var allowedText string

// allowed reads "path:Func  reason" lines; # starts a comment.
func allowed() map[string]bool {
	out := map[string]bool{}
	for _, l := range strings.Split(allowedText, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		out[strings.Fields(l)[0]] = true
	}
	return out
}

// funcName names a declaration as allowed.txt does: Func or Type.Method.
func funcName(fd *ast.FuncDecl) string {
	if fd.Recv == nil || len(fd.Recv.List) == 0 {
		return fd.Name.Name
	}
	t := fd.Recv.List[0].Type
	if s, ok := t.(*ast.StarExpr); ok {
		t = s.X
	}
	if ix, ok := t.(*ast.IndexExpr); ok {
		t = ix.X
	}
	if id, ok := t.(*ast.Ident); ok {
		return id.Name + "." + fd.Name.Name
	}
	return fd.Name.Name
}

// check returns the breaches under root.
func check(root string, ok map[string]bool) ([]string, error) {
	var out []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); path != root && (strings.HasPrefix(n, ".") || n == "testdata" || n == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if strings.HasPrefix(rel, "tests/") {
			return nil
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		if n := fset.File(f.Pos()).LineCount(); n > maxFileLines {
			out = append(out, fmt.Sprintf("%s: %d lines (limit %d): split it by job", rel, n, maxFileLines))
		}
		for _, decl := range f.Decls {
			fd, isFunc := decl.(*ast.FuncDecl)
			if !isFunc || fd.Body == nil {
				continue
			}
			n := fset.Position(fd.End()).Line - fset.Position(fd.Pos()).Line + 1
			name := rel + ":" + funcName(fd)
			if n > maxFuncLines && !ok[name] {
				out = append(out, fmt.Sprintf("%s: %d lines (limit %d): split it into steps, or name it in scripts/linelimits/allowed.txt if it is a flat switch", name, n, maxFuncLines))
			}
		}
		return nil
	})
	return out, err
}

func main() {
	root := "."
	if len(os.Args) > 1 {
		root = os.Args[1]
	}
	breaches, err := check(root, allowed())
	if err != nil {
		fmt.Fprintln(os.Stderr, "linelimits:", err)
		os.Exit(2)
	}
	for _, b := range breaches {
		fmt.Println("linelimits:", b)
	}
	if len(breaches) > 0 {
		os.Exit(1)
	}
}
