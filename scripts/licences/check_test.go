package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeModule writes a module directory with the given files (name -> text)
// and a go.mod, and returns it as a Module.
func fakeModule(t *testing.T, path, version string, files map[string]string) Module {
	t.Helper()
	dir := filepath.Join(t.TempDir(), filepath.Base(path)+"@"+version)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	files["go.mod"] = "module " + path + "\n"
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return Module{Path: path, Version: version, Dir: dir}
}

// The check fails when a module under the Business Source License is linked
// in, and names that module, not the good one beside it.
func TestCheckRefusesBUSL(t *testing.T) {
	good := fakeModule(t, "example.com/good/mit", "v1.2.3", map[string]string{"LICENSE": mitText})
	bad := fakeModule(t, "example.com/fake/busl", "v1.0.0", map[string]string{"LICENSE": buslText})

	results, err := Check([]Module{good, bad}, Exceptions{})
	if err == nil {
		t.Fatal("Check passed a BUSL module")
	}
	msg := err.Error()
	for _, want := range []string{"REFUSED example.com/fake/busl@v1.0.0", "BUSL-1.1", "Business Source License", "remove the dependency", "go mod why -m example.com/fake/busl"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "example.com/good/mit") {
		t.Errorf("error names the MIT module:\n%s", msg)
	}
	if n := strings.Count(msg, "\n") + 1; n != 1 {
		t.Errorf("error has %d lines, want one per refused module:\n%s", n, msg)
	}
	if len(results) != 2 {
		t.Fatalf("%d results, want 2", len(results))
	}
	for _, r := range results {
		if wantOK := r.Module.Path == good.Path; r.OK() != wantOK {
			t.Errorf("%s: OK = %v, want %v (problem: %s)", r.Module, r.OK(), wantOK, r.Problem)
		}
	}
}

func TestCheckPasses(t *testing.T) {
	mods := []Module{
		fakeModule(t, "example.com/mpl", "v0.1.0", map[string]string{"LICENSE": mplText}),
		fakeModule(t, "example.com/apache", "v2.0.0", map[string]string{"LICENSE": apacheText}),
		fakeModule(t, "example.com/bsd", "v1.0.0", map[string]string{"LICENSE": bsd3Text, "PATENTS": "Additional IP Rights Grant (Patents)"}),
		fakeModule(t, "example.com/dual", "v1.0.0", map[string]string{"LICENSE-MIT": mitText, "license-apache.md": apacheNotice}),
		fakeModule(t, "example.com/reuse", "v1.0.0", map[string]string{"LICENSES/MIT.txt": mitText}),
	}
	results, err := Check(mods, Exceptions{})
	if err != nil {
		t.Fatalf("Check failed: %v", err)
	}
	want := map[string][]string{
		"example.com/mpl":    {"MPL-2.0"},
		"example.com/apache": {"Apache-2.0"},
		"example.com/bsd":    {"BSD-3-Clause"},
		"example.com/dual":   {"Apache-2.0", "MIT"},
		"example.com/reuse":  {"MIT"},
	}
	for _, r := range results {
		got := slices.Clone(r.Licences)
		slices.Sort(got)
		if !slices.Equal(got, want[r.Module.Path]) {
			t.Errorf("%s: licences %q, want %q", r.Module.Path, got, want[r.Module.Path])
		}
	}
}

func TestCheckFails(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"no licence file", map[string]string{"README.md": "Released under the MIT licence.", "license.go": "package x"}, "no licence file"},
		{"unknown text", map[string]string{"LICENSE": "All rights reserved."}, "licence text not recognised"},
		{"MIT and an unknown file", map[string]string{"LICENSE": mitText, "LICENSE.third_party": "Some other terms."}, "licence text not recognised"},
		{"BUSL beside MIT", map[string]string{"LICENSE": mitText, "LICENSE.enterprise": buslText}, "BUSL-1.1"},
		{"CC0", map[string]string{"COPYING": cc0Text}, "CC0-1.0 (Creative Commons Zero 1.0, not OSI-approved)"},
		{"GPL", map[string]string{"COPYING": gpl3Text}, "GPL (GNU General Public License, copyleft"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := fakeModule(t, "example.com/m", "v1.0.0", tc.files)
			_, err := Check([]Module{m}, Exceptions{})
			if err == nil {
				t.Fatal("Check passed")
			}
			if msg := err.Error(); !strings.Contains(msg, "REFUSED example.com/m@v1.0.0") || !strings.Contains(msg, tc.want) {
				t.Errorf("error does not name the module or lacks %q:\n%s", tc.want, msg)
			}
		})
	}
	t.Run("no directory", func(t *testing.T) {
		_, err := Check([]Module{{Path: "example.com/gone", Version: "v1.0.0"}}, Exceptions{})
		if err == nil || !strings.Contains(err.Error(), "go mod download") {
			t.Errorf("err = %v", err)
		}
	})
}

func TestCheckExceptions(t *testing.T) {
	noLicence := fakeModule(t, "example.com/nolicence", "v1.0.0", map[string]string{})
	exc, err := ParseExceptions("# comment\n\nexample.com/nolicence@v1.0.0 MIT, stated in the parent repository; accepted by a person\n")
	if err != nil {
		t.Fatal(err)
	}
	results, err := Check([]Module{noLicence}, exc)
	if err != nil {
		t.Fatalf("the exception was not applied: %v", err)
	}
	if r := results[0]; r.ExceptionKey != "example.com/nolicence@v1.0.0" || !strings.HasPrefix(r.Exception, "MIT, stated") || r.Problem == "" {
		t.Errorf("result %+v", r)
	}

	// An exception for another version does not apply.
	noLicence.Version = "v1.1.0"
	if _, err := Check([]Module{noLicence}, exc); err == nil {
		t.Error("an exception for v1.0.0 let v1.1.0 pass")
	}
	// An exception by path applies to every version.
	exc = Exceptions{"example.com/nolicence": "reason"}
	if _, err := Check([]Module{noLicence}, exc); err != nil {
		t.Errorf("an exception by path did not apply: %v", err)
	}
}

func TestParseExceptions(t *testing.T) {
	if _, err := ParseExceptions("example.com/m\n"); err == nil || !strings.Contains(err.Error(), "no reason") {
		t.Errorf("a line without a reason: err = %v", err)
	}
	if _, err := ParseExceptions("example.com/m a\nexample.com/m b\n"); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("a module listed twice: err = %v", err)
	}
	// The embedded file parses.
	if _, err := ParseExceptions(exceptionsText); err != nil {
		t.Errorf("%s: %v", exceptionsFile, err)
	}
}

func TestIsLicenceName(t *testing.T) {
	for name, want := range map[string]bool{
		"LICENSE": true, "license": true, "LICENCE": true, "LICENSE.md": true, "LICENSE.txt": true,
		"LICENSE-APACHE": true, "LICENSE_MIT": true, "COPYING": true, "COPYING.LESSER": true, "UNLICENSE": true,
		"license.go": false, "licenses.go": false, "LICENSES": false, "LICENSEE": false, "NOTICE": false,
		"PATENTS": false, "README.md": false, "copyright": false,
	} {
		if got := isLicenceName(name); got != want {
			t.Errorf("isLicenceName(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestParseGoList(t *testing.T) {
	// What `go list -deps -json=Module` prints: standard-library packages
	// have no module, a module shows once per package, the main module last.
	const out = `{}
{"Module": {"Path": "example.com/a", "Version": "v1.0.0", "Dir": "/cache/example.com/a@v1.0.0"}}
{"Module": {"Path": "example.com/a", "Version": "v1.0.0", "Dir": "/cache/example.com/a@v1.0.0"}}
{"Module": {"Path": "example.com/b", "Version": "v0.1.0", "Dir": "/cache/example.com/fork@v0.2.0",
  "Replace": {"Path": "example.com/fork", "Version": "v0.2.0", "Dir": "/cache/example.com/fork@v0.2.0"}}}
{"Module": {"Path": "example.com/c", "Version": "v1.0.0",
  "Replace": {"Path": "../c", "Dir": "/src/c"}}}
{"Module": {"Path": "github.com/cofferhq/coffer", "Main": true, "Dir": "/src/coffer"}}
`
	mods, err := parseGoList(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	want := []Module{
		{Path: "example.com/a", Version: "v1.0.0", Dir: "/cache/example.com/a@v1.0.0"},
		{Path: "example.com/b", Version: "v0.1.0", Dir: "/cache/example.com/fork@v0.2.0", Replace: "example.com/fork v0.2.0"},
		{Path: "example.com/c", Version: "v1.0.0", Dir: "/src/c", Replace: "../c"},
	}
	if !slices.Equal(mods, want) {
		t.Errorf("modules:\n%+v\nwant\n%+v", mods, want)
	}
	if got := want[1].String(); got != "example.com/b@v0.1.0 => example.com/fork v0.2.0" {
		t.Errorf("String() = %q", got)
	}

	if _, err := parseGoList(strings.NewReader(`{"Module": {"Path": "x", "Error": {"Err": "boom"}}}`)); err == nil {
		t.Error("a module error was not reported")
	}
	if _, err := parseGoList(strings.NewReader(`{"Module": `)); err == nil {
		t.Error("truncated output was not reported")
	}
}

// run prints one line per refused module and a summary line, and exits 1;
// a stand-in for the go command lists the modules.
func TestRunOutput(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh for the stand-in go command")
	}
	good := fakeModule(t, "example.com/good/mit", "v1.2.3", map[string]string{"LICENSE": mitText})
	bad := fakeModule(t, "example.com/fake/busl", "v1.0.0", map[string]string{"LICENSE": buslText})
	list := `{}
{"Module": {"Path": "` + good.Path + `", "Version": "` + good.Version + `", "Dir": "` + good.Dir + `"}}
{"Module": {"Path": "` + bad.Path + `", "Version": "` + bad.Version + `", "Dir": "` + bad.Dir + `"}}
{"Module": {"Path": "github.com/cofferhq/coffer", "Main": true}}
`
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "list.json"), []byte(list), 0o644); err != nil {
		t.Fatal(err)
	}
	goCmd := filepath.Join(dir, "go")
	script := "#!/bin/sh\ncat '" + filepath.Join(dir, "list.json") + "'\n"
	if err := os.WriteFile(goCmd, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}

	var out strings.Builder
	if code := run(&out, goCmd, false, nil); code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 ||
		!strings.HasPrefix(lines[0], "licences: REFUSED example.com/fake/busl@v1.0.0: BUSL-1.1") ||
		lines[1] != "licences: 2 modules checked (linked into ./cmd/coffer): 1 passed, 1 refused, 0 accepted by exception" {
		t.Errorf("output:\n%s", out.String())
	}

	// Without the BUSL module it passes, with the summary alone.
	list = strings.Replace(list, `"`+bad.Dir+`"`, `"`+good.Dir+`"`, 1)
	list = strings.Replace(list, bad.Path, "example.com/also/mit", 1)
	if err := os.WriteFile(filepath.Join(dir, "list.json"), []byte(list), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code := run(&out, goCmd, false, nil); code != 0 {
		t.Errorf("exit status %d, want 0:\n%s", code, out.String())
	}
	if got := strings.TrimSpace(out.String()); got != "licences: 2 modules checked (linked into ./cmd/coffer): 2 passed, 0 refused, 0 accepted by exception" {
		t.Errorf("output:\n%s", got)
	}

	// A go command that fails: exit status 2.
	out.Reset()
	if code := run(&out, filepath.Join(dir, "missing-go"), false, nil); code != 2 {
		t.Errorf("exit status %d, want 2:\n%s", code, out.String())
	}
}
