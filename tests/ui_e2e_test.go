package tests

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
)

// pageTimeout bounds the wait for a page that shows the expected state: each
// try starts a headless Chromium, which takes seconds on a loaded machine.
const pageTimeout = 2 * time.Minute

// The replication status page (/ui/replication, package ui) in a real
// browser: headless Chromium (Debian's chromium, installed by
// scripts/chromium.sh, which make test runs and passes as
// COFFERTEST_CHROMIUM) loads it from a running primary and from its
// secondary, runs its script for a few seconds of virtual time, and the test
// reads the rendered state from the DOM it dumps.
func TestReplicationStatusPage(t *testing.T) {
	t.Parallel()
	chromium := os.Getenv("COFFERTEST_CHROMIUM")
	if chromium == "" {
		t.Skip("COFFERTEST_CHROMIUM is not set: run make test, or set it to the output of scripts/chromium.sh")
	}
	rp := fwdPairT(t)
	for i := range 5 {
		if _, err := kvWrite(rp.p.root, fmt.Sprintf("ui/%d", i), i); err != nil {
			t.Fatalf("write %d on the primary: %v", i, err)
		}
	}
	testutil.Eventually(t, waitTimeout, "dc2 caught up and streaming", func() error {
		st, err := rp.s.root.Logical().Read("sys/replication/performance/status")
		if err != nil || st == nil {
			return fmt.Errorf("secondary status: %v", err)
		}
		if st.Data["state"] != "stream-wals" || st.Data["connection_state"] != "ready" {
			return fmt.Errorf("secondary state %v, connection_state %v", st.Data["state"], st.Data["connection_state"])
		}
		_, err = primaryListing(rp)
		return err
	})
	checkPageHeaders(t, rp.p.addr)

	testutil.Eventually(t, pageTimeout, "the primary's page shows dc2 connected with its lag", func() error {
		sec, err := primaryListing(rp)
		if err != nil {
			return err
		}
		doc, err := renderPage(chromium, "http://"+rp.p.addr+"/ui/replication")
		if err != nil {
			return err
		}
		return checkPrimaryPage(doc, fmt.Sprint(sec["state"]))
	})
	testutil.Eventually(t, pageTimeout, "the secondary's page shows stream-wals", func() error {
		doc, err := renderPage(chromium, "http://"+rp.s.addr+"/ui/replication")
		if err != nil {
			return err
		}
		return checkSecondaryPage(doc, rp.p.addr)
	})
}

// primaryListing returns dc2 as the primary's status lists it, once it is
// connected and has applied the primary's last WAL entry.
func primaryListing(rp *fwdPair) (map[string]any, error) {
	st, err := rp.p.root.Logical().Read("sys/replication/performance/status")
	if err != nil || st == nil {
		return nil, fmt.Errorf("primary status: %v", err)
	}
	secs, _ := st.Data["secondaries"].([]any)
	for _, s := range secs {
		m, _ := s.(map[string]any)
		if m["node_id"] != "dc2" {
			continue
		}
		if m["connection_status"] != "connected" || fmt.Sprint(m["last_remote_wal"]) != fmt.Sprint(st.Data["last_wal"]) {
			return nil, fmt.Errorf("dc2 %v at %v of %v", m["connection_status"], m["last_remote_wal"], st.Data["last_wal"])
		}
		return m, nil
	}
	return nil, fmt.Errorf("dc2 is not listed: %v", st.Data["secondaries"])
}

// checkPageHeaders: the page and its script are served without a token,
// with the CSP and nosniff.
func checkPageHeaders(t *testing.T, addr string) {
	t.Helper()
	for _, p := range []string{"/ui/replication", "/ui/replication.js"} {
		res, err := http.Get("http://" + addr + p)
		if err != nil {
			t.Fatalf("GET %s: %v", p, err)
		}
		_ = res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s without a token: %d", p, res.StatusCode)
		}
		if csp := res.Header.Get("Content-Security-Policy"); !strings.HasPrefix(csp, "default-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q", p, csp)
		}
		if res.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options %q", p, res.Header.Get("X-Content-Type-Options"))
		}
	}
}

func checkPrimaryPage(doc *domNode, wantState string) error {
	perf := doc.find(attrIs("id", "performance"))
	if perf == nil {
		return errors.New("no performance section in the page")
	}
	if err := refreshed(doc); err != nil {
		return err
	}
	if got := perf.text(attrIs("data-role", "mode")); got != "primary" {
		return fmt.Errorf("mode %q, want primary", got)
	}
	row := perf.find(attrIs("data-secondary", "dc2"))
	if row == nil {
		return errors.New("dc2 is not listed on the primary's page")
	}
	if got := row.text(attrIs("data-field", "connection_status")); got != "connected" {
		return fmt.Errorf("dc2 connection_status %q on the page", got)
	}
	if got := row.text(attrIs("data-field", "state")); got != wantState {
		return fmt.Errorf("dc2 state %q on the page, the status says %q", got, wantState)
	}
	lag := row.find(attrIs("data-field", "lag_entries"))
	if lag == nil {
		return errors.New("no lag_entries cell for dc2")
	}
	if n, err := strconv.ParseUint(lag.attr("data-value"), 10, 64); err != nil || lag.text(nil) != strconv.FormatUint(n, 10) {
		return fmt.Errorf("dc2 lag in entries %q (data-value %q), not a number", lag.text(nil), lag.attr("data-value"))
	}
	if s := row.find(attrIs("data-field", "lag_seconds")); s == nil || !isNumber(s.attr("data-value")) {
		return errors.New("dc2 has no numeric lag in seconds on the page")
	}
	chart := perf.find(func(n *domNode) bool { return n.attr("data-role") == "lag-chart" && n.attr("data-unit") == "entries" })
	if chart == nil || chart.find(attrIs("data-series", "dc2")) == nil {
		return errors.New("the lag chart has no series for dc2")
	}
	if n, _ := strconv.Atoi(chart.attr("data-samples")); n < 2 {
		return fmt.Errorf("the lag chart holds %s samples, want at least 2", chart.attr("data-samples"))
	}
	return drDisabled(doc)
}

func checkSecondaryPage(doc *domNode, primaryAddr string) error {
	perf := doc.find(attrIs("id", "performance"))
	if perf == nil {
		return errors.New("no performance section in the page")
	}
	if err := refreshed(doc); err != nil {
		return err
	}
	for role, want := range map[string]string{"mode": "secondary", "state": "stream-wals", "connection-state": "ready", "secondary-id": "dc2"} {
		if got := perf.text(attrIs("data-role", role)); got != want {
			return fmt.Errorf("%s %q on the secondary's page, want %q", role, got, want)
		}
	}
	if lag := perf.find(attrIs("data-role", "lag-entries")); lag == nil || !isNumber(lag.attr("data-value")) {
		return errors.New("the secondary's page shows no numeric lag in entries")
	}
	prim := perf.find(attrIs("data-primary", "http://"+primaryAddr))
	if prim == nil {
		return fmt.Errorf("the primary http://%s is not listed on the secondary's page", primaryAddr)
	}
	if got := prim.text(attrIs("data-field", "connection_status")); got != "connected" {
		return fmt.Errorf("the primary's connection_status %q on the secondary's page", got)
	}
	return drDisabled(doc)
}

// refreshed: the page read the status at least twice by itself, and both
// reads succeeded.
func refreshed(doc *domNode) error {
	r := doc.find(attrIs("id", "refresh"))
	if n, _ := strconv.Atoi(r.attr("data-refreshes")); r == nil || n < 2 {
		return fmt.Errorf("the page refreshed %d times, want at least 2", n)
	}
	if fe := doc.find(attrIs("id", "fetch-error")); fe == nil || fe.text(nil) != "" {
		return fmt.Errorf("the page could not read the status: %q", fe.text(nil))
	}
	return nil
}

func drDisabled(doc *domNode) error {
	if dr := doc.find(attrIs("id", "dr")); dr == nil || dr.attr("data-mode") != "disabled" {
		return errors.New("the DR section does not show mode disabled")
	}
	return nil
}

func isNumber(s string) bool {
	_, err := strconv.ParseFloat(s, 64)
	return err == nil
}

// renderPage loads url in headless Chromium with a fresh profile, lets the
// page run for 7 s of virtual time (its script refreshes every 2 s; time
// stands still while a fetch is pending) and parses the DOM it dumps.
func renderPage(chromium, url string) (*domNode, error) {
	out, err := runChromium(chromium, "--virtual-time-budget=7000", "--dump-dom", url)
	if err != nil {
		return nil, err
	}
	return parseDOM(out)
}

// runChromium runs a headless Chromium with args in a temporary profile and
// returns its stdout.
func runChromium(chromium string, args ...string) ([]byte, error) {
	dir, err := os.MkdirTemp("", "coffer-chromium-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := []string{"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--no-default-browser-check", "--disable-extensions", "--user-data-dir=" + dir}
	cmd := exec.CommandContext(ctx, chromium, append(base, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+dir, "XDG_CACHE_HOME="+dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %v\n%s", chromium, err, tail(stderr.String(), 2000))
	}
	return out, nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
