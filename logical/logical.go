package logical

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/cofferhq/coffer/storage"
)

// Operation is what a request does to a path. ACL capabilities carry the same names.
type Operation string

// The operations, with the HTTP methods that produce them: GET read (or list
// with ?list=true), LIST list, POST/PUT create or update (create when the
// backend reports that nothing exists at the path), PATCH patch, DELETE delete.
const (
	CreateOperation Operation = "create"
	ReadOperation   Operation = "read"
	UpdateOperation Operation = "update"
	PatchOperation  Operation = "patch"
	DeleteOperation Operation = "delete"
	ListOperation   Operation = "list"
)

// Request is one operation routed to a backend.
type Request struct {
	// ID is unique per request; it appears in audit logs and the response envelope.
	ID string
	// Operation is what to do.
	Operation Operation
	// Path is relative to the mount point ("data/app" under "secret/").
	Path string
	// MountPoint is where the backend is mounted, with a trailing slash ("secret/").
	MountPoint string
	// MountType is the backend's type ("kv").
	MountType string
	// Data is the decoded JSON body, or the query parameters of a GET/LIST.
	Data map[string]any
	// Storage is the backend's own view of the barrier.
	Storage Storage
	// ClientToken is the caller's token, for auth methods that act on it
	// (lookup-self). Secrets engines must not use it.
	ClientToken string
	// Headers are the request's HTTP headers, minus the token.
	Headers http.Header
	// Connection describes the client's address, for login responses.
	RemoteAddr string
}

// Response is what a backend returns. A nil Response with a nil error is a 204.
type Response struct {
	// Data becomes the envelope's "data".
	Data map[string]any
	// Auth is set by login and token-creating endpoints.
	Auth *Auth
	// Warnings become the envelope's "warnings".
	Warnings []string
	// StatusCode overrides the default status (200 with data, 204 without).
	// A KV v2 read of a deleted version answers 404 with its metadata this way.
	StatusCode int
	// Headers are added to the HTTP response.
	Headers http.Header
	// WrapInfo, set by a backend, answers with this wrapping token and no data
	// (the replication activation token is handed out this way).
	WrapInfo *WrapInfo
	// RawBody, when set, is the whole HTTP body, sent as ContentType instead
	// of the envelope (sys/metrics, as Vault's raw responses).
	RawBody     []byte
	ContentType string
}

// WrapInfo describes a response-wrapping token (the envelope's wrap_info).
type WrapInfo struct {
	Token           string    `json:"token"`
	Accessor        string    `json:"accessor"`
	TTL             int64     `json:"ttl"`
	CreationTime    time.Time `json:"creation_time"`
	CreationPath    string    `json:"creation_path"`
	WrappedAccessor string    `json:"wrapped_accessor,omitempty"`
}

// Auth is the authentication a response hands out.
type Auth struct {
	ClientToken   string            `json:"client_token"`
	Accessor      string            `json:"accessor"`
	Policies      []string          `json:"policies"`
	TokenPolicies []string          `json:"token_policies"`
	Metadata      map[string]string `json:"metadata"`
	LeaseDuration int               `json:"lease_duration"`
	Renewable     bool              `json:"renewable"`
	EntityID      string            `json:"entity_id"`
	TokenType     string            `json:"token_type"`
	Orphan        bool              `json:"orphan"`
	// NumUses limits the token's uses (0: unlimited).
	NumUses int `json:"num_uses,omitempty"`
	// Period, TTL and ExplicitMaxTTL shape the token created from this Auth.
	Period         time.Duration `json:"-"`
	TTL            time.Duration `json:"-"`
	ExplicitMaxTTL time.Duration `json:"-"`
	DisplayName    string        `json:"-"`
}

// Backend is a mounted secrets engine or auth method.
type Backend interface {
	// HandleRequest serves one request. Errors should be the ones below or wrap them.
	HandleRequest(ctx context.Context, req *Request) (*Response, error)
	// ExistenceCheck reports whether something exists at req.Path, so a write
	// is authorized as update (it exists) or create (it does not).
	ExistenceCheck(ctx context.Context, req *Request) (bool, error)
}

// BackendConfig is what a factory gets when a mount is created or loaded.
type BackendConfig struct {
	// Storage is the mount's view of the barrier ("logical/<uuid>/" or "auth/<uuid>/").
	Storage Storage
	// Options are the mount's options ("version" for kv).
	Options map[string]string
	// MountPoint is the mount's path with a trailing slash.
	MountPoint string
	// Salt hashes values for audit; backends that need a stable HMAC use it.
	Salt []byte
}

// Factory creates a backend for one mount.
type Factory func(ctx context.Context, cfg BackendConfig) (Backend, error)

// Storage is the plaintext storage a backend sees. It is transactional so a
// backend can keep its records consistent (KV v2 metadata with its version).
type Storage = storage.Transactional

// Errors a backend returns; httpapi maps each to its status code.
var (
	// ErrNotFound: nothing at this path (404).
	ErrNotFound = errors.New("not found")
	// ErrUnsupportedPath: the backend has no handler for the path (404).
	ErrUnsupportedPath = errors.New("unsupported path")
	// ErrUnsupportedOperation: the path exists but not for this operation (405).
	ErrUnsupportedOperation = errors.New("unsupported operation")
	// ErrPermissionDenied: the caller may not do this (403).
	ErrPermissionDenied = errors.New("permission denied")
	// ErrInvalidRequest: the request must be corrected (400); wrap it with the reason.
	ErrInvalidRequest = errors.New("invalid request")
	// ErrReadOnly: the storage of a request served locally on a performance
	// secondary refuses a write to a replicated key with it. A backend returns
	// it (wrapped or not) unchanged, and the router forwards the request to the
	// primary instead (transit's encrypt creating its key on first use).
	ErrReadOnly = errors.New("cannot write to a replicated key on a secondary cluster")
)

// CodedError carries an explicit HTTP status for cases the sentinels do not cover
// (a cas mismatch is a 400 with Vault's message, an unwrap of a used token a 400...).
type CodedError struct {
	Code int
	Msg  string
}

func (e *CodedError) Error() string { return e.Msg }

// Errorf builds a CodedError.
func Errorf(code int, format string, args ...any) error {
	return &CodedError{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// InvalidRequest wraps ErrInvalidRequest with a reason the user can act on.
func InvalidRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidRequest, fmt.Sprintf(format, args...))
}

// StatusCode maps an error returned by a backend to its HTTP status.
func StatusCode(err error) int {
	var ce *CodedError
	switch {
	case errors.As(err, &ce):
		return ce.Code
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrUnsupportedPath):
		return http.StatusNotFound
	case errors.Is(err, ErrUnsupportedOperation):
		return http.StatusMethodNotAllowed
	case errors.Is(err, ErrPermissionDenied):
		return http.StatusForbidden
	case errors.Is(err, ErrInvalidRequest):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

// ClusterLocal is implemented by a backend that serves some requests on the
// cluster that receives them, a performance secondary included, or that
// keeps some of its records per cluster. The router asks it; a backend that
// does not implement it has every write forwarded from a secondary to the
// primary and every record replicated.
type ClusterLocal interface {
	// ServedLocally reports whether req, a write (create, update, patch or
	// delete), is served by the cluster that receives it instead of being
	// forwarded to the primary: it computes without writing storage (transit
	// encrypt) or writes only keys under LocalStoragePrefixes (an AppRole
	// secret id). Req carries Operation, Path (relative to the mount) and
	// Data; it must not read storage to decide.
	ServedLocally(req *Request) bool
	// LocalStoragePrefixes are prefixes of keys, relative to the backend's
	// storage view, that belong to the cluster that writes them: never sent
	// by performance replication nor in its merkle index (DR replication
	// copies them, as it copies tokens).
	LocalStoragePrefixes() []string
}
