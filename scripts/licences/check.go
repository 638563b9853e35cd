package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// exceptionsFile is where exceptions live, as named in the messages.
const exceptionsFile = "scripts/licences/exceptions.txt"

// maxLicenceBytes caps what is read of one licence file.
const maxLicenceBytes = 1 << 20

// Module is one module linked into the binary.
type Module struct {
	Path    string
	Version string
	// Dir holds the module's files: the replacement's when it is replaced.
	Dir string
	// Replace names the replacement ("path version", or a directory), if any.
	Replace string
}

func (m Module) String() string {
	s := m.Path
	if m.Version != "" {
		s += "@" + m.Version
	}
	if m.Replace != "" {
		s += " => " + m.Replace
	}
	return s
}

// Result is the verdict on one module.
type Result struct {
	Module Module
	// Files are the licence files found at the module root.
	Files []string
	// Licences are the ids found in those files, each once.
	Licences []string
	// Problem says why the module fails and what to do; empty when it passes.
	Problem string
	// ExceptionKey and Exception are the line of the exceptions file that let
	// a failing module pass, if one did.
	ExceptionKey string
	Exception    string
}

// OK tells whether the module passes.
func (r Result) OK() bool { return r.Problem == "" || r.Exception != "" }

// Exceptions maps "path" or "path@version" to the reason a person gave for
// accepting a module that the check would refuse.
type Exceptions map[string]string

// ParseExceptions reads the exceptions file: one "module[@version] reason"
// per line; blank lines and lines starting with # are ignored. A line
// without a reason is an error.
func ParseExceptions(text string) (Exceptions, error) {
	exc := Exceptions{}
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, reason, _ := strings.Cut(line, " ")
		reason = strings.TrimSpace(reason)
		if reason == "" {
			return nil, fmt.Errorf("%s:%d: %q has no reason: write why the module is accepted after its name", exceptionsFile, i+1, key)
		}
		if _, dup := exc[key]; dup {
			return nil, fmt.Errorf("%s:%d: %q is listed twice", exceptionsFile, i+1, key)
		}
		exc[key] = reason
	}
	return exc, nil
}

// lookup finds the exception for a module: by path@version, then by path.
func (e Exceptions) lookup(m Module) (key, reason string, ok bool) {
	for _, k := range []string{m.Path + "@" + m.Version, m.Path} {
		if r, found := e[k]; found {
			return k, r, true
		}
	}
	return "", "", false
}

// Check classifies the licence of every module and returns one result per
// module, sorted by path. The error is nil when every module passes;
// otherwise it has one line per failing module, naming it and saying what to
// do.
func Check(mods []Module, exc Exceptions) ([]Result, error) {
	results := make([]Result, 0, len(mods))
	var failed []string
	for _, m := range mods {
		r := checkModule(m)
		if r.Problem != "" {
			if key, reason, ok := exc.lookup(m); ok {
				r.ExceptionKey, r.Exception = key, reason
			}
		}
		if !r.OK() {
			failed = append(failed, "REFUSED "+m.String()+": "+r.Problem)
		}
		results = append(results, r)
	}
	sort.Slice(results, func(i, j int) bool { return results[i].Module.Path < results[j].Module.Path })
	if len(failed) > 0 {
		sort.Strings(failed)
		return results, errors.New(strings.Join(failed, "\n"))
	}
	return results, nil
}

// checkModule finds and classifies the licence files of one module.
func checkModule(m Module) Result {
	r := Result{Module: m}
	why := fmt.Sprintf("`go mod why -m %s` shows what needs it", m.Path)
	if m.Dir == "" {
		r.Problem = "the module has no directory (not in the module cache, or vendored): run `go mod download` and check again"
		return r
	}
	files, err := licenceFiles(m.Dir)
	if err != nil {
		r.Problem = fmt.Sprintf("cannot read the module directory: %v", err)
		return r
	}
	r.Files = files
	if len(files) == 0 {
		r.Problem = fmt.Sprintf("no licence file (LICENSE, LICENCE, COPYING, ...) at the module root %s: "+
			"find its licence upstream; if it is OSI-approved add `%s <licence, and where it is stated>` to %s, "+
			"otherwise remove the dependency (%s)", m.Dir, m.Path, exceptionsFile, why)
		return r
	}
	var unknown []string
	seen := map[string]bool{}
	for _, f := range files {
		text, err := readCapped(f)
		if err != nil {
			r.Problem = fmt.Sprintf("cannot read %s: %v", f, err)
			return r
		}
		ids := Classify(text)
		if len(ids) == 0 {
			unknown = append(unknown, f)
		}
		for _, id := range ids {
			if !seen[id] {
				seen[id] = true
				r.Licences = append(r.Licences, id)
			}
		}
	}

	// The worst status decides: refused, then not OSI-approved or copyleft,
	// then an unrecognised text.
	var bad = map[status][]string{}
	for _, id := range r.Licences {
		l, _ := byID(id)
		if l.status != osi {
			bad[l.status] = append(bad[l.status], fmt.Sprintf("%s (%s, %s)", id, l.name, l.status))
		}
	}
	switch {
	case len(bad[refused]) > 0:
		r.Problem = fmt.Sprintf("%s in %s: coffer must not link a module under a source-available licence: "+
			"remove the dependency or replace it with an OSI-licensed module (%s)",
			strings.Join(bad[refused], ", "), strings.Join(files, ", "), why)
	case len(bad[notOSI])+len(bad[review]) > 0:
		r.Problem = fmt.Sprintf("%s in %s: replace the dependency (%s), or, if the project accepts it, "+
			"add `%s <reason>` to %s",
			strings.Join(append(bad[notOSI], bad[review]...), ", "), strings.Join(files, ", "), why, m.Path, exceptionsFile)
	case len(unknown) > 0:
		r.Problem = fmt.Sprintf("licence text not recognised in %s: a person must read it; if it is OSI-approved, "+
			"teach scripts/licences/classify.go its phrases (with a test) or add `%s <licence and reason>` to %s",
			strings.Join(unknown, ", "), m.Path, exceptionsFile)
	}
	return r
}

// licenceFiles lists the licence files at the root of dir, and those in a
// LICENSES directory there (the REUSE layout), sorted.
func licenceFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		fi, err := os.Stat(p) // follows symbolic links of replaced local modules
		if err != nil {
			continue
		}
		switch {
		case fi.Mode().IsRegular() && isLicenceName(e.Name()):
			files = append(files, p)
		case fi.IsDir() && strings.EqualFold(e.Name(), "LICENSES"):
			sub, err := os.ReadDir(p)
			if err != nil {
				return nil, err
			}
			for _, s := range sub {
				if s.Type().IsRegular() {
					files = append(files, filepath.Join(p, s.Name()))
				}
			}
		}
	}
	sort.Strings(files)
	return files, nil
}

// isLicenceName tells whether a file name is a licence file's: LICENSE,
// LICENCE, COPYING or UNLICENSE, in any case, alone or followed by an
// extension or a suffix (LICENSE.md, LICENSE-APACHE, COPYING.LESSER). Go
// sources (license.go) are not.
func isLicenceName(name string) bool {
	n := strings.ToLower(name)
	if strings.HasSuffix(n, ".go") {
		return false
	}
	for _, base := range []string{"license", "licence", "copying", "unlicense"} {
		if n == base {
			return true
		}
		if rest, ok := strings.CutPrefix(n, base); ok && rest != "" && strings.ContainsRune(".-_", rune(rest[0])) {
			return true
		}
	}
	return false
}

func readCapped(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxLicenceBytes))
	return string(b), err
}
