package httpapi

import (
	"context"
	"errors"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cofferhq/coffer/core"
	"github.com/cofferhq/coffer/logical"
	"github.com/rs/zerolog"
)

// LogicalCore is what the logical handler needs of *core.Core.
type LogicalCore interface {
	HandleRequest(ctx context.Context, req *core.Request) (*core.Response, error)
}

// NewLogical returns the handler of every /v1/ path that is not a sys
// endpoint of the sys table: it turns the HTTP request into a core.Request,
// and core's response into Vault's envelope. Install it as Options.Logical:
// it then shares the limits on unauthenticated requests of New's handler.
// Used on its own, it applies the default limits.
func NewLogical(c LogicalCore, logger zerolog.Logger) http.Handler {
	return &logicalHandler{c: c, log: logger, lim: newLimits(Options{})}
}

type logicalHandler struct {
	c   LogicalCore
	log zerolog.Logger
	lim *limits // when the request comes without New's admission
}

func (h *logicalHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	adm := admissionFor(r.Context())
	if adm == nil {
		adm = &admission{lim: h.lim, w: w, r: r}
		defer adm.release()
	}
	req, err := buildRequest(r, adm)
	if err != nil {
		RespondError(w, r, err)
		return
	}
	resp, err := h.c.HandleRequest(r.Context(), req)
	if err != nil && forwardIfStandby(r.Context(), err) {
		return
	}
	if err != nil {
		code := ErrorStatus(err)
		if code >= 500 && code != http.StatusServiceUnavailable {
			h.log.Error().Err(err).Str("method", r.Method).Str("path", r.URL.Path).Msg("request failed")
		}
		if errors.Is(err, logical.ErrNotFound) && err.Error() == logical.ErrNotFound.Error() {
			// Vault answers a plain miss with an empty error list.
			WriteError(w, r, http.StatusNotFound)
			return
		}
		RespondError(w, r, err)
		return
	}
	writeResponse(w, r, resp)
}

// operationOf maps the HTTP method (and ?list=true) to a logical operation.
func operationOf(r *http.Request) (logical.Operation, error) {
	switch r.Method {
	case http.MethodGet:
		if b, _ := strconv.ParseBool(r.URL.Query().Get("list")); b {
			return logical.ListOperation, nil
		}
		return logical.ReadOperation, nil
	case "LIST":
		return logical.ListOperation, nil
	case http.MethodPost, http.MethodPut:
		return logical.UpdateOperation, nil
	case http.MethodDelete:
		return logical.DeleteOperation, nil
	case http.MethodPatch:
		ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if ct != "application/merge-patch+json" {
			return "", &requestError{code: http.StatusUnsupportedMediaType, msg: "PATCH requires Content-Type application/merge-patch+json"}
		}
		return logical.PatchOperation, nil
	}
	return "", &requestError{code: http.StatusMethodNotAllowed, msg: "method " + r.Method + " is not supported: use GET, LIST, POST, PUT, PATCH or DELETE"}
}

// buildRequest turns r into a core.Request whose data core asks for once
// it has decided the request may proceed (core.Request.Admit): the query of
// a read or list, the JSON body of a write, read under the limit that
// applies to it.
func buildRequest(r *http.Request, adm *admission) (*core.Request, error) {
	op, err := operationOf(r)
	if err != nil {
		return nil, err
	}
	path := strings.TrimPrefix(r.URL.Path, "/v1/")
	admit := func(authenticated bool) (map[string]any, error) {
		if !authenticated {
			if err := adm.unauthenticated(); err != nil {
				return nil, err
			}
		}
		return requestData(r, op)
	}
	wrapTTL, err := parseWrapTTL(r.Header.Get("X-Vault-Wrap-TTL"))
	if err != nil {
		return nil, err
	}
	hdr := r.Header.Clone()
	hdr.Del("X-Vault-Token")
	hdr.Del("Authorization")
	return &core.Request{
		Operation:  op,
		Path:       path,
		Admit:      admit,
		Token:      RequestToken(r),
		WrapTTL:    wrapTTL,
		Headers:    hdr,
		RemoteAddr: r.RemoteAddr,
	}, nil
}

// requestData is a request's data: the query of a read or a list, the JSON
// body of anything else.
func requestData(r *http.Request, op logical.Operation) (map[string]any, error) {
	data := map[string]any{}
	if op == logical.ReadOperation || op == logical.ListOperation {
		for k, v := range r.URL.Query() {
			if k == "list" || len(v) == 0 {
				continue
			}
			data[k] = v[0]
		}
		return data, nil
	}
	if err := DecodeJSON(r, &data); err != nil {
		return nil, err
	}
	if data == nil {
		data = map[string]any{}
	}
	return data, nil
}

// parseWrapTTL reads X-Vault-Wrap-TTL: a duration ("5m") or seconds ("300").
func parseWrapTTL(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n <= 0 {
			return 0, badRequestf("X-Vault-Wrap-TTL must be positive")
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, badRequestf("X-Vault-Wrap-TTL %q is not a positive duration: use seconds or e.g. \"5m\"", s)
	}
	return d, nil
}

// writeResponse renders core's response as Vault's envelope, or 204 when
// there is nothing to say.
func writeResponse(w http.ResponseWriter, r *http.Request, resp *core.Response) {
	lr := resp.Response
	if lr == nil {
		lr = &logical.Response{}
	}
	for k, vs := range lr.Headers {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	if lr.RawBody != nil && resp.WrapInfo == nil {
		writeRaw(w, lr)
		return
	}
	if resp.WrapInfo == nil && lr.Data == nil && lr.Auth == nil && len(lr.Warnings) == 0 {
		if lr.StatusCode != 0 {
			WriteError(w, r, lr.StatusCode)
			return
		}
		WriteNoContent(w)
		return
	}
	env := &Envelope{RequestID: resp.RequestID, Data: lr.Data, Warnings: lr.Warnings}
	if lr.Auth != nil {
		env.Auth = lr.Auth
	}
	if resp.WrapInfo != nil {
		env.WrapInfo = resp.WrapInfo
		env.Data = nil
	}
	code := lr.StatusCode
	if code == 0 {
		code = http.StatusOK
	}
	WriteJSON(w, r, code, env)
}

// writeRaw sends a backend's raw body (sys/metrics) as it is.
func writeRaw(w http.ResponseWriter, lr *logical.Response) {
	w.Header().Set("Content-Type", lr.ContentType)
	code := lr.StatusCode
	if code == 0 {
		code = http.StatusOK
	}
	w.WriteHeader(code)
	_, _ = w.Write(lr.RawBody)
}
