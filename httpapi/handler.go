package httpapi

import (
	"context"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/cofferhq/coffer/core"
)

// Core is what httpapi needs of *core.Core: exactly the methods the sys
// handlers call.
type Core interface {
	Initialized(ctx context.Context) (bool, error)
	Initialize(ctx context.Context, req core.InitRequest) (*core.InitResult, error)
	SealStatus(ctx context.Context) (*core.SealStatus, error)
	Unseal(ctx context.Context, key []byte) (*core.SealStatus, error)
	ResetUnseal(ctx context.Context) (*core.SealStatus, error)
	Seal(ctx context.Context, token string) error
	StepDown(ctx context.Context, token string) error
	Rotate(ctx context.Context, token string) (*core.KeyStatus, error)
	KeyStatus(ctx context.Context, token string) (*core.KeyStatus, error)
	Health(ctx context.Context) *core.HealthStatus
	Leader(ctx context.Context) (*core.LeaderStatus, error)
	RootGeneration() *core.TokenGeneration
	DROperationTokenGeneration() *core.TokenGeneration
	RevokeDROperationToken(ctx context.Context, token string) error
}

// DefaultMaxRequestSize is Vault's default max_request_size: 32 MiB.
const DefaultMaxRequestSize int64 = 32 << 20

// Options configures the handler. The zero value is valid.
type Options struct {
	// MaxRequestSize caps every request body in bytes; a larger body is
	// answered 413. Zero means DefaultMaxRequestSize; a negative value
	// disables the limit.
	MaxRequestSize int64

	// MaxUnauthenticatedRequestSize caps the body of a request served
	// without a valid token (limits.go). Zero or less means
	// DefaultMaxUnauthenticatedRequestSize; it is never above MaxRequestSize.
	MaxUnauthenticatedRequestSize int64

	// MaxUnauthenticatedRequests is how many requests without a valid token
	// are served at once (limits.go). Zero means
	// DefaultMaxUnauthenticatedRequests; a negative value disables the limit.
	MaxUnauthenticatedRequests int

	// Logical serves every /v1/ path that is not in the sys table (mounts,
	// kv, the rest of sys/). It sees the request with its body already
	// capped at MaxRequestSize and should use DecodeJSON, RequestToken,
	// NewEnvelope, WriteJSON and RespondError so that it answers like the
	// rest of the API; NewLogical's handler also applies the limits on
	// unauthenticated requests. Nil means such paths are 404.
	Logical http.Handler

	// Standby, on a node of an HA cluster, is its HA state: a standby
	// forwards to the active node every request but its own state, its
	// unseal and the reads it can serve (standby.go). Nil: a single node.
	Standby Standby
	// ElectionWait: how long a standby that knows no active node holds a
	// request for one to be elected; DefaultElectionWait when zero.
	ElectionWait time.Duration

	// UnauthenticatedMetricsAccess serves GET sys/metrics here without a
	// token (the listener's telemetry block, as Vault's); otherwise it is a
	// logical path that takes a token with read on sys/metrics (metrics.go).
	UnauthenticatedMetricsAccess bool
}

// handlerFunc is one sys endpoint for one method. It writes the response
// itself or returns an error that RespondError turns into Vault's envelope.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// route is one path of the sys table: its handler per HTTP method.
type route map[string]handlerFunc

type handler struct {
	core   Core
	opts   Options
	log    zerolog.Logger
	routes map[string]route // keyed by the path after /v1/, e.g. "sys/health"
	// tokenless are the sys paths served without a token that read a body
	// or change state: all but their GETs take an unauthenticated slot.
	tokenless map[string]bool
	lim       *limits
	// proxyTransport carries a standby's forwarded requests.
	proxyTransport *http.Transport
}

// New returns the HTTP handler of the whole /v1/ API. See the package
// documentation for how a request is routed.
func New(c Core, opts Options, logger zerolog.Logger) http.Handler {
	h := &handler{core: c, opts: opts, log: logger.With().Str("component", "httpapi").Logger(), lim: newLimits(opts),
		tokenless: map[string]bool{"sys/init": true, "sys/unseal": true}}
	h.routes = h.sysRoutes()
	if opts.Standby != nil {
		h.proxyTransport = newProxyTransport()
	}
	return h
}

// statusRecorder remembers the status code for the access log, and closes
// the connection after answering a request whose body was not read to its
// end (limits.go).
type statusRecorder struct {
	http.ResponseWriter
	code int
	body *trackedBody // nil when the request has no body
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
		if s.body != nil && !s.body.eof {
			s.Header().Set("Connection", "close")
		}
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.WriteHeader(http.StatusOK)
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w}
	h.serve(rec, r)
	// Never log the token, the query (it may carry secrets) or the body.
	h.log.Debug().Str("method", r.Method).Str("path", r.URL.Path).
		Int("status", rec.code).Dur("took", time.Since(start)).Msg("request")
}

func (h *handler) serve(w *statusRecorder, r *http.Request) {
	raw, ok := strings.CutPrefix(r.URL.Path, "/v1/")
	if !ok {
		WriteError(w, r, http.StatusNotFound, "no handler for "+r.URL.Path+": Coffer's API lives under /v1/")
		return
	}
	path, err := core.NormalizePath(raw, "")
	if err != nil {
		RespondError(w, r, err)
		return
	}
	adm := &admission{lim: h.lim, w: w}
	// A shallow copy: the server keeps its own view of the body, so that
	// what it does with an unread rest is decided by its own rules.
	r = r.WithContext(context.WithValue(r.Context(), admissionKey{}, adm))
	adm.r = r
	defer adm.release()
	if r.Body != nil && r.Body != http.NoBody {
		w.body = &trackedBody{rc: r.Body}
		r.Body = w.body
		if h.lim.maxBody > 0 {
			if r.ContentLength > h.lim.maxBody {
				RespondError(w, r, &http.MaxBytesError{Limit: h.lim.maxBody})
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, h.lim.maxBody)
		}
	}

	if target, tryLocal := h.standbyRoute(path, r); target != "" {
		if !tryLocal {
			h.forward(w, r, target)
			return
		}
		fr := r
		r = r.WithContext(context.WithValue(r.Context(), forwardKey{}, func() { h.forward(w, fr, target) }))
	}

	rt, known := h.routes[path]
	if !known {
		if h.opts.Logical != nil {
			h.opts.Logical.ServeHTTP(w, r)
			return
		}
		WriteError(w, r, http.StatusNotFound, "no handler for route \""+path+"\": check the path, or mount a secrets engine there first")
		return
	}
	fn, ok := rt[r.Method]
	if !ok {
		allowed := make([]string, 0, len(rt))
		for m := range rt {
			allowed = append(allowed, m)
		}
		sort.Strings(allowed)
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		WriteError(w, r, http.StatusMethodNotAllowed,
			"method "+r.Method+" is not supported on "+path+": use "+strings.Join(allowed, " or "))
		return
	}
	if err := h.admitSys(adm, path, r.Method); err != nil {
		RespondError(w, r, err)
		return
	}
	if err := fn(w, r); err != nil {
		code := ErrorStatus(err)
		if code >= 500 && code != http.StatusServiceUnavailable {
			h.log.Error().Err(err).Str("method", r.Method).Str("path", r.URL.Path).Msg("request failed")
		}
		RespondError(w, r, err)
	}
}

// admitSys applies the limits on unauthenticated requests to the sys table:
// every body is capped at the unauthenticated size (no sys endpoint takes
// more), and the endpoints that work without a token and read a body or
// change state (sys/init, sys/unseal, sys/generate-root/*, the DR
// operation token endpoints) take an unauthenticated slot; their GETs, which
// answer from memory, do not.
func (h *handler) admitSys(adm *admission, path, method string) error {
	if h.tokenless[path] && method != http.MethodGet {
		return adm.unauthenticated()
	}
	return adm.capBody(h.lim.maxUnauthBody)
}
