package httpapi

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"

	"github.com/cofferhq/coffer/core"
)

// Standby is the node's HA state as the handler needs it (ha.Node).
type Standby interface {
	// ForwardTo returns the active node's API address ("" while none is
	// known) and whether this node is a standby.
	ForwardTo() (addr string, standby bool)
}

// headerForwarded marks a request a standby forwarded: the node receiving it
// serves it or fails, never forwards it again (no loops while the lock moves).
const headerForwarded = "X-Coffer-Forwarded-By-Standby"

// localOnStandby are the sys endpoints a standby answers itself: its own
// state, and unsealing it (every node is unsealed on its own, as in Vault).
var localOnStandby = map[string]bool{
	"sys/health": true, "sys/leader": true, "sys/seal-status": true, "sys/unseal": true,
}

// forwardKey carries, for a read a standby tries to serve, the function that
// forwards it instead when core answers ErrStandby.
type forwardKey struct{}

// standbyRoute decides what a standby does with a request: "" serves it
// here; otherwise it is the active node's address to forward to. read
// reports a request the node may try first (a read of the logical layer).
func (h *handler) standbyRoute(path string, r *http.Request) (target string, tryLocal bool) {
	if h.opts.Standby == nil || localOnStandby[path] || r.Header.Get(headerForwarded) != "" {
		return "", false
	}
	addr, standby := h.opts.Standby.ForwardTo()
	if standby && addr == "" {
		// An election is under way (a cluster starting, an active node
		// just gone): wait a little for its outcome rather than fail.
		addr, standby = h.awaitActive(r)
	}
	if !standby {
		return "", false
	}
	if addr == "" {
		addr = "-" // no active node known: answered 503 by forward
	}
	_, sysRoute := h.routes[path]
	read := r.Method == http.MethodGet || r.Method == http.MethodHead || r.Method == "LIST"
	return addr, read && !sysRoute
}

// DefaultElectionWait bounds how long a standby that knows no active node
// holds a request before answering 503 (Options.ElectionWait).
const DefaultElectionWait = 5 * time.Second

// awaitActive polls the HA state until an active node is known, this node
// is active itself, Options.ElectionWait passes or the client goes away.
func (h *handler) awaitActive(r *http.Request) (string, bool) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	wait := h.opts.ElectionWait
	if wait <= 0 {
		wait = DefaultElectionWait
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		select {
		case <-r.Context().Done():
			return "", true
		case <-deadline.C:
			return "", true
		case <-tick.C:
		}
		if addr, standby := h.opts.Standby.ForwardTo(); !standby || addr != "" {
			return addr, standby
		}
	}
}

// forward proxies r to the active node and copies its answer back: to the
// client it is as if it had asked the active node. A request in flight when
// the active node changes (it died, or lost the lock) is cut and answered
// 503 "retry": the new active node serves the retry, and a dead node's
// connection does not hold the client for a TCP timeout.
func (h *handler) forward(w http.ResponseWriter, r *http.Request, addr string) {
	target, err := url.Parse(addr)
	if addr == "-" || err != nil || target.Host == "" {
		WriteError(w, r, http.StatusServiceUnavailable,
			"this node is a standby and no active node is known yet (an election is under way): retry in a few seconds")
		return
	}
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)
	go h.watchActive(ctx, cancel, addr)
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = target.Host
			pr.Out.Header.Set(headerForwarded, "1")
			pr.SetXForwarded()
		},
		Transport: h.proxyTransport,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			why := "did not answer the forwarded request"
			if errors.Is(context.Cause(ctx), errActiveChanged) {
				why = "stopped being the active node while the request was forwarded"
			}
			h.log.Warn().Err(err).Str("active", target.Host).Str("path", r.URL.Path).Msg("forwarding to the active node failed")
			WriteError(w, r, http.StatusServiceUnavailable,
				"this node is a standby and the active node "+target.Host+" "+why+": "+
					"retry in a few seconds (a new active node may be taking over)")
		},
	}
	rp.ServeHTTP(w, r.WithContext(ctx))
}

// errActiveChanged cuts a forwarded request whose target is no longer the
// active node.
var errActiveChanged = errors.New("the active node changed")

// watchActive cancels ctx when the node the request was forwarded to is no
// longer the active one, and drops the idle connections to it.
func (h *handler) watchActive(ctx context.Context, cancel context.CancelCauseFunc, addr string) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if now, standby := h.opts.Standby.ForwardTo(); now != addr || !standby {
			h.proxyTransport.CloseIdleConnections()
			cancel(errActiveChanged)
			return
		}
	}
}

// newProxyTransport is the standbys' client to the active node: a dial that
// takes seconds means the active node is gone.
func newProxyTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.MaxIdleConnsPerHost = 64
	return t
}

// forwardIfStandby is called by the logical handler with core's error: on a
// standby whose read turned out to need the active node, it forwards the
// request and reports true.
func forwardIfStandby(ctx context.Context, err error) bool {
	f, _ := ctx.Value(forwardKey{}).(func())
	if f == nil || !errors.Is(err, core.ErrStandby) {
		return false
	}
	f()
	return true
}
