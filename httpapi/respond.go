package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/google/uuid"

	"github.com/cofferhq/coffer/core"
)

// Envelope is Vault's logical response: what logical reads (sys/key-status,
// kv reads, ...) return and what api.ParseSecret decodes.
type Envelope struct {
	RequestID     string         `json:"request_id"`
	LeaseID       string         `json:"lease_id"`
	Renewable     bool           `json:"renewable"`
	LeaseDuration int            `json:"lease_duration"`
	Data          map[string]any `json:"data"`
	WrapInfo      any            `json:"wrap_info"`
	Warnings      []string       `json:"warnings"`
	Auth          any            `json:"auth"`
}

// NewEnvelope wraps data in a logical envelope with a fresh request id.
func NewEnvelope(data map[string]any) *Envelope {
	return &Envelope{RequestID: uuid.NewString(), Data: data}
}

// errorBody is Vault's error envelope.
type errorBody struct {
	Errors []string `json:"errors"`
}

// WriteJSON writes v as a JSON body with the given status code. A HEAD request
// gets the status and headers only.
func WriteJSON(w http.ResponseWriter, r *http.Request, code int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	if r != nil && r.Method == http.MethodHead {
		return
	}
	// The status line is already sent; an encoding error can only mean the
	// client went away, so there is nobody left to tell.
	_ = json.NewEncoder(w).Encode(v)
}

// WriteNoContent answers 204 No Content, as Vault does for sys/seal and
// sys/rotate.
func WriteNoContent(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// WriteError writes {"errors":[msg...]} with the status code.
func WriteError(w http.ResponseWriter, r *http.Request, code int, msgs ...string) {
	if msgs == nil {
		msgs = []string{}
	}
	WriteJSON(w, r, code, errorBody{Errors: msgs})
}

// requestError is an error httpapi itself raises about the HTTP request
// (body, query, method) with the status code it must answer.
type requestError struct {
	code int
	msg  string
}

func (e *requestError) Error() string { return e.msg }

func badRequestf(format string, args ...any) error {
	return &requestError{code: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

// ErrorStatus maps an error from core (or from httpapi's own request
// parsing) to the HTTP status Vault uses for it: httpapi's own request errors
// carry their code, a body over the size limit is 413, and everything else
// takes core's one mapping, core.StatusOf.
func ErrorStatus(err error) int {
	var re *requestError
	var mb *http.MaxBytesError
	switch {
	case errors.As(err, &re):
		return re.code
	case errors.As(err, &mb):
		return http.StatusRequestEntityTooLarge
	default:
		return core.StatusOf(err)
	}
}

// errorMessage is the message a person reads in errors[]: core's message,
// plus what to do about it when core returned a bare sentinel (a wrapped
// one already carries core's own explanation).
func errorMessage(err error) string {
	var mb *http.MaxBytesError
	switch {
	case errors.As(err, &mb):
		return fmt.Sprintf("request body is larger than the server's max_request_size of %d bytes: send a smaller body or raise max_request_size in the server configuration", mb.Limit)
	case err == core.ErrSealed:
		return err.Error() + ": unseal it with sys/unseal (coffer operator unseal) first"
	case err == core.ErrNotInitialized:
		return err.Error() + ": initialize it with sys/init (coffer operator init) first"
	case err == core.ErrInvalidKey:
		return err.Error() + ": the unseal key shares do not open this server's barrier; unseal progress was reset, submit shares from this cluster's sys/init"
	case ErrorStatus(err) == http.StatusInternalServerError:
		return "internal error: " + err.Error() + " (see the server log)"
	default:
		return err.Error()
	}
}

// RespondError writes err as a Vault error response, choosing the status with
// ErrorStatus. 500s are logged by the handler's middleware.
func RespondError(w http.ResponseWriter, r *http.Request, err error) {
	WriteError(w, r, ErrorStatus(err), errorMessage(err))
}

// DecodeJSON decodes the request body into v, numbers in interface values
// as json.Number. An empty body leaves v
// untouched. A body over the size limit yields an error ErrorStatus maps to
// 413; anything that is not one JSON value yields a 400 saying so.
func DecodeJSON(r *http.Request, v any) error {
	if r.Body == nil {
		return nil
	}
	dec := json.NewDecoder(r.Body)
	dec.UseNumber() // numbers inside secrets stay exact
	err := dec.Decode(v)
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err == nil {
		// Reject trailing garbage such as `{"a":1} x`, but read it through
		// the size limit first so an oversized body is still a 413.
		var extra json.RawMessage
		if err = dec.Decode(&extra); errors.Is(err, io.EOF) {
			return nil
		}
		if err == nil {
			err = errors.New("more than one JSON value in the body")
		}
	}
	var mb *http.MaxBytesError
	var re *requestError
	if errors.As(err, &mb) || errors.As(err, &re) {
		return err
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return &requestError{code: http.StatusRequestTimeout, msg: "the request body did not arrive within the server's read timeout (the listener's http_read_timeout): send it faster, or raise http_read_timeout"}
	}
	return badRequestf("failed to parse JSON input: the request body is not valid JSON (%s); send a single JSON object", strings.TrimPrefix(err.Error(), "json: "))
}

// RequestToken returns the client token from X-Vault-Token or from an
// "Authorization: Bearer" header; "" when there is none.
func RequestToken(r *http.Request) string {
	if t := r.Header.Get("X-Vault-Token"); t != "" {
		return t
	}
	auth := strings.TrimSpace(r.Header.Get("Authorization"))
	if len(auth) > 7 && strings.EqualFold(auth[:7], "bearer ") {
		return strings.TrimSpace(auth[7:])
	}
	return ""
}
