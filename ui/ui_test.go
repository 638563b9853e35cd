package ui_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/cofferhq/coffer/ui"
)

// api stands for the /v1/ API behind the page.
var api = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Test", "api")
	w.WriteHeader(http.StatusTeapot)
})

func get(t *testing.T, method, path string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	ui.Wrap(api).ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	res := rec.Result()
	body, _ := io.ReadAll(res.Body)
	return res, string(body)
}

func TestServesPageAndAssetsWithSecurityHeaders(t *testing.T) {
	for path, ctype := range map[string]string{
		"/ui/replication":     "text/html; charset=utf-8",
		"/ui/replication.js":  "text/javascript; charset=utf-8",
		"/ui/replication.css": "text/css; charset=utf-8",
		"/ui/favicon.svg":     "image/svg+xml",
	} {
		res, body := get(t, http.MethodGet, path)
		if res.StatusCode != http.StatusOK || body == "" {
			t.Fatalf("GET %s: %d, %d bytes", path, res.StatusCode, len(body))
		}
		if got := res.Header.Get("Content-Type"); got != ctype {
			t.Errorf("GET %s: Content-Type %q, want %q", path, got, ctype)
		}
		if got := res.Header.Get("Content-Security-Policy"); !strings.HasPrefix(got, "default-src 'self'") || strings.Contains(got, "unsafe") {
			t.Errorf("GET %s: Content-Security-Policy %q", path, got)
		}
		if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options %q", path, got)
		}
	}
}

func TestRoutes(t *testing.T) {
	for _, p := range []string{"/ui", "/ui/"} {
		if res, _ := get(t, http.MethodGet, p); res.StatusCode != http.StatusFound || res.Header.Get("Location") != ui.Path {
			t.Errorf("GET %s: %d to %q, want a redirect to %s", p, res.StatusCode, res.Header.Get("Location"), ui.Path)
		}
	}
	res, _ := get(t, http.MethodGet, "/ui/secrets")
	if res.StatusCode != http.StatusNotFound || res.Header.Get("Content-Security-Policy") == "" {
		t.Errorf("GET /ui/secrets: %d, CSP %q", res.StatusCode, res.Header.Get("Content-Security-Policy"))
	}
	if res, _ := get(t, http.MethodPost, ui.Path); res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST %s: %d, want 405", ui.Path, res.StatusCode)
	}
	if res, body := get(t, http.MethodHead, ui.Path); res.StatusCode != http.StatusOK || body != "" {
		t.Errorf("HEAD %s: %d with %d bytes", ui.Path, res.StatusCode, len(body))
	}
	for _, p := range []string{"/v1/sys/replication/performance/status", "/uix", "/"} {
		if res, _ := get(t, http.MethodGet, p); res.Header.Get("X-Test") != "api" {
			t.Errorf("GET %s did not reach the API handler", p)
		}
	}
}

// The page needs nothing the CSP refuses and nothing from another origin:
// no inline script or style attribute, every asset it names is served here,
// and its script reads the two status endpoints with no token.
func TestPageIsSelfContained(t *testing.T) {
	_, page := get(t, http.MethodGet, ui.Path)
	_, js := get(t, http.MethodGet, ui.Path+".js")
	_, css := get(t, http.MethodGet, ui.Path+".css")
	for _, m := range regexp.MustCompile(`(?is)<script([^>]*)>(.*?)</script>`).FindAllStringSubmatch(page, -1) {
		if !strings.Contains(m[1], "src=") || strings.TrimSpace(m[2]) != "" {
			t.Errorf("inline script in the page: %s", m[0])
		}
	}
	if regexp.MustCompile(`(?i)\sstyle=|<style|\son[a-z]+=`).MatchString(page) {
		t.Error("the page has a style attribute, a <style> element or an inline event handler")
	}
	base, _ := url.Parse("http://coffer.example" + ui.Path)
	for _, m := range regexp.MustCompile(`(?i)(?:src|href)="([^"]*)"`).FindAllStringSubmatch(page, -1) {
		u, err := base.Parse(m[1])
		if err != nil || u.Host != base.Host {
			t.Errorf("the page names %q, not on its own origin", m[1])
			continue
		}
		if strings.HasPrefix(u.Path, "/v1/") {
			continue // the status endpoints, named in <noscript>
		}
		if res, _ := get(t, http.MethodGet, u.Path); res.StatusCode != http.StatusOK {
			t.Errorf("the page names %s (%s), which answers %d", m[1], u.Path, res.StatusCode)
		}
	}
	for name, text := range map[string]string{"page": page, "script": js, "stylesheet": css} {
		for _, u := range regexp.MustCompile(`(?:https?:)?//[a-z0-9.-]+\.[a-z]+`).FindAllString(text, -1) {
			if u != "http://www.w3.org" { // the SVG namespace, not fetched
				t.Errorf("the %s names another origin: %s", name, u)
			}
		}
	}
	for _, want := range []string{"'../v1/sys/replication/performance/status'", "'../v1/sys/replication/dr/status'", "credentials: 'omit'"} {
		if !strings.Contains(js, want) {
			t.Errorf("the script lacks %s", want)
		}
	}
	for _, banned := range []string{"X-Vault-Token", "localStorage", "sessionStorage", "document.cookie", "innerHTML", "eval("} {
		if strings.Contains(js, banned) {
			t.Errorf("the script uses %s", banned)
		}
	}
}

// The page learns what it shows over HTTP, as any client: the package
// imports no other package of Coffer (doc.go).
func TestImportsNothingOfCoffer(t *testing.T) {
	for _, dep := range testutil.Deps(t, "github.com/cofferhq/coffer/ui") {
		if strings.HasPrefix(dep, "github.com/cofferhq/coffer/") && dep != "github.com/cofferhq/coffer/ui" {
			t.Errorf("package ui depends on %s", dep)
		}
	}
}
