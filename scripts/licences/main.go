// Command licences checks the licence of every Go module linked into the
// coffer binary: each must carry an OSI-approved licence. A source-available
// licence (Business Source License and the like), a module without a licence
// file, or a text the classifier does not recognise fails the check, with the
// module's path@version and what to do. `make licences` runs it, and
// `make test` depends on that target; docs/licences.md has the rule.
//
// Usage, from the repository root:
//
//	go run ./scripts/licences [-v] [-go go] [packages]
//
// The packages default to ./cmd/coffer. The module list comes from
// `go list -deps`, so only modules with a package in the build count (not
// every line of go.mod), and it is read from the module cache: no network
// when the modules are downloaded. -v prints every module and the licences
// found. Exceptions, one per line with a reason, are in exceptions.txt
// beside this file, embedded at build time.
//
// Exit status: 0 when every module passes, 1 when one fails, 2 when the
// check could not run.
//
// This is a tool of the repository: nothing in coffer imports it.
package main

import (
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
)

//go:embed exceptions.txt
var exceptionsText string

func main() {
	goCmd := flag.String("go", "go", "the go command that lists the modules")
	verbose := flag.Bool("v", false, "print every module and the licences found")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: go run ./scripts/licences [-v] [-go go] [packages (default ./cmd/coffer)]")
		flag.PrintDefaults()
	}
	flag.Parse()
	os.Exit(run(os.Stdout, *goCmd, *verbose, flag.Args()))
}

func run(out io.Writer, goCmd string, verbose bool, pkgs []string) int {
	if len(pkgs) == 0 {
		pkgs = []string{"./cmd/coffer"}
	}
	exc, err := ParseExceptions(exceptionsText)
	if err != nil {
		fmt.Fprintln(out, "licences:", err)
		return 2
	}
	mods, err := listModules(goCmd, pkgs)
	if err != nil {
		fmt.Fprintln(out, "licences:", err)
		return 2
	}
	results, checkErr := Check(mods, exc)

	used := map[string]bool{}
	refusedN, exceptedN := 0, 0
	for _, r := range results {
		if verbose {
			lic := strings.Join(r.Licences, ", ")
			if lic == "" {
				lic = "-"
			}
			verdict := "ok"
			switch {
			case r.Exception != "":
				verdict = "EXCEPTION"
			case !r.OK():
				verdict = "REFUSED"
			}
			fmt.Fprintf(out, "licences: %-9s %-70s %s\n", verdict, r.Module, lic)
		}
		if r.Exception != "" {
			used[r.ExceptionKey] = true
			exceptedN++
			fmt.Fprintf(out, "licences: accepted by exception %s: %s (the check found: %s)\n", r.Module, r.Exception, r.Problem)
		}
		if !r.OK() {
			refusedN++
		}
	}
	var stale []string
	for k := range exc {
		if !used[k] {
			stale = append(stale, k)
		}
	}
	sort.Strings(stale)
	for _, k := range stale {
		fmt.Fprintf(out, "licences: note: the exception for %s in %s matches no failing module; remove it\n", k, exceptionsFile)
	}
	if checkErr != nil {
		for _, line := range strings.Split(checkErr.Error(), "\n") {
			fmt.Fprintln(out, "licences:", line)
		}
	}
	fmt.Fprintf(out, "licences: %d modules checked (linked into %s): %d passed, %d refused, %d accepted by exception\n",
		len(results), strings.Join(pkgs, " "), len(results)-refusedN-exceptedN, refusedN, exceptedN)
	if checkErr != nil {
		return 1
	}
	return 0
}

// listModules runs go list -deps on the packages and returns the modules of
// their dependencies (not the main module), each once. CGO_ENABLED=0 as in
// `make build`.
func listModules(goCmd string, pkgs []string) ([]Module, error) {
	args := append([]string{"list", "-deps", "-json=Module"}, pkgs...)
	cmd := exec.Command(goCmd, args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %v\n%s", goCmd, strings.Join(args, " "), err, stderr.String())
	}
	return parseGoList(strings.NewReader(string(stdout)))
}

// goListPackage is the part of `go list -json` output the check reads.
type goListPackage struct {
	Module *struct {
		Path    string
		Version string
		Dir     string
		Main    bool
		Replace *struct {
			Path    string
			Version string
			Dir     string
		}
		Error *struct{ Err string }
	}
}

// parseGoList reads the stream of JSON objects of `go list -deps -json` and
// returns the modules of non-main packages, each once, in first-seen order.
// Standard-library packages have no module and are skipped.
func parseGoList(r io.Reader) ([]Module, error) {
	dec := json.NewDecoder(r)
	seen := map[string]bool{}
	var mods []Module
	for {
		var p goListPackage
		err := dec.Decode(&p)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading go list output: %v", err)
		}
		m := p.Module
		if m == nil || m.Main || seen[m.Path] {
			continue
		}
		if m.Error != nil {
			return nil, fmt.Errorf("module %s: %s", m.Path, m.Error.Err)
		}
		seen[m.Path] = true
		mod := Module{Path: m.Path, Version: m.Version, Dir: m.Dir}
		if rep := m.Replace; rep != nil {
			mod.Replace = strings.TrimSpace(rep.Path + " " + rep.Version)
			if rep.Dir != "" {
				mod.Dir = rep.Dir
			}
		}
		mods = append(mods, mod)
	}
	return mods, nil
}
