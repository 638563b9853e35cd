package httpapi_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/rs/zerolog"

	"github.com/cofferhq/coffer/core"
	"github.com/cofferhq/coffer/core/coretest"
	"github.com/cofferhq/coffer/httpapi"
	"github.com/cofferhq/coffer/storage/inmem"
)

// haState is the node's HA state as ha.Node reports it; the tests set it.
type haState struct{ addr atomic.Pointer[string] }

func (h *haState) ForwardTo() (string, bool) {
	if a := h.addr.Load(); a != nil {
		return *a, true
	}
	return "", true
}

func (h *haState) set(addr string) { h.addr.Store(&addr) }

// standbyPair is an active node (a real unsealed core behind the handler)
// and a standby (a real core started as a standby, on its own storage, so
// that whatever it would serve itself differs from the active's).
func standbyPair(t *testing.T) (active, standby *httptest.Server, root string, ha *haState) {
	t.Helper()
	c, root := coretest.Unsealed(t)
	active = httptest.NewServer(httpapi.New(c, httpapi.Options{Logical: httpapi.NewLogical(c, zerolog.Nop())}, zerolog.Nop()))
	t.Cleanup(active.Close)
	sc, err := core.New(context.Background(), core.Config{Physical: inmem.New(), StorageType: "inmem", Standby: true, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sc.Close() })
	ha = &haState{}
	ha.set(active.URL)
	standby = httptest.NewServer(httpapi.New(sc, httpapi.Options{Logical: httpapi.NewLogical(sc, zerolog.Nop()), Standby: ha,
		ElectionWait: 200 * time.Millisecond}, zerolog.Nop()))
	t.Cleanup(standby.Close)
	return active, standby, root, ha
}

func TestStandbyForwardsToTheActiveNode(t *testing.T) {
	active, standby, root, _ := standbyPair(t)
	st := apiClient(t, standby, root)
	if err := st.Sys().Mount("kv", &api.MountInput{Type: "kv"}); err != nil {
		t.Fatalf("mount through the standby: %v", err)
	}
	if _, err := st.Logical().Write("kv/a", map[string]any{"v": "1"}); err != nil {
		t.Fatalf("write through the standby: %v", err)
	}
	s, err := apiClient(t, active, root).Logical().Read("kv/a")
	if err != nil || s == nil || s.Data["v"] != "1" {
		t.Fatalf("the active node's copy: %v, %v", s, err)
	}
	// A read the standby cannot serve (it is sealed) goes to the active too.
	s, err = st.Logical().Read("kv/a")
	if err != nil || s == nil || s.Data["v"] != "1" {
		t.Fatalf("a read through the sealed standby: %v, %v", s, err)
	}
	// Its own state it answers itself.
	if r := do(t, http.MethodGet, standby.URL+"/v1/sys/seal-status", nil, nil); r.code != 200 || !strings.Contains(r.body, `"initialized":false`) {
		t.Fatalf("sys/seal-status on the standby: %d %s", r.code, r.body)
	}
}

func TestStandbyNeverForwardsTwice(t *testing.T) {
	_, standby, root, _ := standbyPair(t)
	h := http.Header{"X-Vault-Token": {root}, "X-Coffer-Forwarded-By-Standby": {"1"}}
	r := do(t, http.MethodPut, standby.URL+"/v1/sys/mounts/kv", h, strings.NewReader(`{"type":"kv"}`))
	if r.code != http.StatusServiceUnavailable || !strings.Contains(r.body, "standby") {
		t.Fatalf("a forwarded request reaching a standby: %d %s; want 503 naming the standby", r.code, r.body)
	}
}

func TestStandbyWithoutAnActiveNode(t *testing.T) {
	active, standby, root, ha := standbyPair(t)
	ha.set("")
	r := do(t, http.MethodPut, standby.URL+"/v1/sys/mounts/kv", http.Header{"X-Vault-Token": {root}}, strings.NewReader(`{"type":"kv"}`))
	if r.code != http.StatusServiceUnavailable || !strings.Contains(r.body, "no active node is known") {
		t.Fatalf("no active node known: %d %s", r.code, r.body)
	}
	url := active.URL
	active.Close()
	ha.set(url)
	r = do(t, http.MethodPut, standby.URL+"/v1/sys/mounts/kv", http.Header{"X-Vault-Token": {root}}, strings.NewReader(`{"type":"kv"}`))
	if r.code != http.StatusServiceUnavailable || !strings.Contains(r.body, "did not answer") {
		t.Fatalf("the active node down: %d %s", r.code, r.body)
	}
}

// A forwarded request in flight when the active node changes (here: one
// that hangs, as a dead host's connection does) is cut and answered 503, not
// held until a TCP timeout.
func TestStandbyCutsAForwardWhenTheActiveNodeChanges(t *testing.T) {
	_, standby, root, ha := standbyPair(t)
	release, arrived := make(chan struct{}), make(chan struct{}, 1)
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hung.Close()
	defer close(release)
	ha.set(hung.URL)
	done := make(chan raw, 1)
	go func() {
		done <- do(t, http.MethodPut, standby.URL+"/v1/sys/mounts/kv", http.Header{"X-Vault-Token": {root}}, strings.NewReader(`{"type":"kv"}`))
	}()
	<-arrived                    // the request waits at the active node
	ha.set("http://127.0.0.1:1") // another node is active now
	select {
	case r := <-done:
		if r.code != http.StatusServiceUnavailable || !strings.Contains(r.body, "stopped being the active node") {
			t.Fatalf("the cut request: %d %s", r.code, r.body)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the forwarded request still hangs 30 s after the active node changed")
	}
}
