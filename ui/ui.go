package ui

import (
	"embed"
	"net/http"
	"strings"
)

//go:embed assets
var assets embed.FS

// Path is where the status page is served.
const Path = "/ui/replication"

// files maps each served path to its embedded file and content type.
var files = map[string]struct{ name, ctype string }{
	Path:              {"assets/replication.html", "text/html; charset=utf-8"},
	Path + ".css":     {"assets/replication.css", "text/css; charset=utf-8"},
	Path + ".js":      {"assets/replication.js", "text/javascript; charset=utf-8"},
	"/ui/favicon.svg": {"assets/favicon.svg", "image/svg+xml"},
}

// CSP is the Content-Security-Policy of every answer under /ui/: the page's
// own origin only, no inline script or style attribute, no framing.
const CSP = "default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Wrap returns a handler that serves the status page under /ui/ and passes
// every other path to api (the /v1/ API).
func Wrap(api http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ui" && !strings.HasPrefix(r.URL.Path, "/ui/") {
			api.ServeHTTP(w, r)
			return
		}
		serve(w, r)
	})
}

func serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, "the status page is read-only: use GET", http.StatusMethodNotAllowed)
		return
	}
	if r.URL.Path == "/ui" || r.URL.Path == "/ui/" {
		http.Redirect(w, r, Path, http.StatusFound)
		return
	}
	f, ok := files[r.URL.Path]
	if !ok {
		http.Error(w, "no page at "+r.URL.Path+": the replication status page is "+Path, http.StatusNotFound)
		return
	}
	body, err := assets.ReadFile(f.name)
	if err != nil { // embedded at build time: cannot happen
		http.Error(w, "embedded asset missing: "+f.name, http.StatusInternalServerError)
		return
	}
	h.Set("Content-Type", f.ctype)
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(body)
}
