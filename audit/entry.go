package audit

import (
	"net/http"
	"strings"
	"time"

	"github.com/cofferhq/coffer/internal/clock"
	"github.com/cofferhq/coffer/logical"
)

// EntryType says whether a line records a request or its response. The values
// are part of the log format.
type EntryType string

// The two entry types.
const (
	RequestType  EntryType = "request"
	ResponseType EntryType = "response"
)

// LogInput is what core hands the Broker for one request: the same value for
// the request line and, completed with the outcome, for the response line.
type LogInput struct {
	// Time stamps the line; zero means now. The Broker sets it once so every
	// device writes the same time.
	Time time.Time
	// Request is the routed request. Its Path is relative to MountPoint; the
	// log shows MountPoint+Path, the path the client asked for.
	Request *logical.Request
	// Caller is the token that made the request (nil before authentication
	// or for unauthenticated paths).
	Caller *Caller
	// Response is the backend's response (response line only).
	Response *logical.Response
	// Err is the error the client gets: a denied request, or the backend's error.
	Err error
	// WrapTTL is the wrapping TTL the client asked for (X-Vault-Wrap-TTL).
	WrapTTL time.Duration
	// WrapInfo describes the wrapping token when the response was wrapped.
	WrapInfo *WrapInfo
	// AuditedHeaders names the request headers to log (lower case, as
	// configured in sys/config/auditing/request-headers), each mapped to
	// whether its values are hashed. Other headers are never logged.
	AuditedHeaders map[string]bool
	// NonHMACRequestKeys and NonHMACResponseKeys are the mount's
	// audit_non_hmac_request_keys and audit_non_hmac_response_keys: strings
	// found under these data keys are logged in clear.
	NonHMACRequestKeys  []string
	NonHMACResponseKeys []string
}

// Caller describes the token behind a request.
type Caller struct {
	ClientToken    string
	Accessor       string
	DisplayName    string
	Policies       []string
	TokenPolicies  []string
	Metadata       map[string]string
	EntityID       string
	TokenType      string
	TokenTTL       time.Duration
	TokenIssueTime time.Time
	RemainingUses  int
}

// WrapInfo describes the token a wrapped response was stored under.
type WrapInfo struct {
	Token           string
	Accessor        string
	TTL             time.Duration
	CreationTime    time.Time
	CreationPath    string
	WrappedAccessor string
}

// Entry is one audit line. Field names and order are the log format (see the
// package documentation); they follow Vault's so existing tooling parses them.
type Entry struct {
	Time     string         `json:"time"`
	Type     EntryType      `json:"type"`
	Auth     *AuthEntry     `json:"auth,omitempty"`
	Request  *RequestEntry  `json:"request,omitempty"`
	Response *ResponseEntry `json:"response,omitempty"`
	Error    string         `json:"error,omitempty"`
}

// AuthEntry is a token as the log shows it: the caller's under "auth", the
// one a login created under "response.auth".
type AuthEntry struct {
	ClientToken    string            `json:"client_token,omitempty"`
	Accessor       string            `json:"accessor,omitempty"`
	DisplayName    string            `json:"display_name,omitempty"`
	Policies       []string          `json:"policies,omitempty"`
	TokenPolicies  []string          `json:"token_policies,omitempty"`
	Metadata       map[string]string `json:"metadata,omitempty"`
	EntityID       string            `json:"entity_id,omitempty"`
	TokenType      string            `json:"token_type,omitempty"`
	TokenTTL       int64             `json:"token_ttl,omitempty"`
	TokenIssueTime string            `json:"token_issue_time,omitempty"`
	NumUses        int               `json:"num_uses,omitempty"`
	RemainingUses  int               `json:"remaining_uses,omitempty"`
}

// RequestEntry is the "request" object.
type RequestEntry struct {
	ID                  string              `json:"id,omitempty"`
	Operation           logical.Operation   `json:"operation,omitempty"`
	MountType           string              `json:"mount_type,omitempty"`
	MountPoint          string              `json:"mount_point,omitempty"`
	ClientToken         string              `json:"client_token,omitempty"`
	ClientTokenAccessor string              `json:"client_token_accessor,omitempty"`
	Path                string              `json:"path,omitempty"`
	Data                map[string]any      `json:"data,omitempty"`
	DataOmitted         string              `json:"data_omitted,omitempty"`
	RemoteAddr          string              `json:"remote_address,omitempty"`
	WrapTTL             int                 `json:"wrap_ttl,omitempty"`
	Headers             map[string][]string `json:"headers,omitempty"`
}

// ResponseEntry is the "response" object.
type ResponseEntry struct {
	MountType  string         `json:"mount_type,omitempty"`
	MountPoint string         `json:"mount_point,omitempty"`
	Auth       *AuthEntry     `json:"auth,omitempty"`
	Data       map[string]any `json:"data,omitempty"`
	WrapInfo   *WrapInfoEntry `json:"wrap_info,omitempty"`
	Warnings   []string       `json:"warnings,omitempty"`
}

// WrapInfoEntry is the "response.wrap_info" object.
type WrapInfoEntry struct {
	Token           string `json:"token,omitempty"`
	Accessor        string `json:"accessor,omitempty"`
	TTL             int    `json:"ttl,omitempty"`
	CreationTime    string `json:"creation_time,omitempty"`
	CreationPath    string `json:"creation_path,omitempty"`
	WrappedAccessor string `json:"wrapped_accessor,omitempty"`
}

// Formatter turns a LogInput into an Entry with one device's options.
type Formatter struct {
	// Raw logs every value in clear (the log_raw option).
	Raw bool
	// HMACAccessor hashes accessors too (the hmac_accessor option).
	HMACAccessor bool
	// ElideListResponses replaces the keys of a list response by their
	// number (the elide_list_responses option).
	ElideListResponses bool

	h *hasher
}

// NewFormatter returns a Formatter hashing with salt (copied), with Vault's
// defaults: values hashed, accessors hashed, list responses in full.
func NewFormatter(salt []byte) *Formatter {
	return &Formatter{HMACAccessor: true, h: newHasher(salt)}
}

// Hash returns the hashed form of s, as sys/audit-hash reports it.
func (f *Formatter) Hash(s string) string { return f.h.hash(s) }

// Entry builds the line of type t for in. It never modifies in.
func (f *Formatter) Entry(t EntryType, in *LogInput) *Entry {
	now := in.Time
	if now.IsZero() {
		now = clock.Now()
	}
	e := &Entry{Time: now.UTC().Format(time.RFC3339Nano), Type: t}
	if in.Err != nil {
		e.Error = in.Err.Error()
	}
	if in.Caller != nil {
		e.Auth = f.caller(in.Caller)
	}
	req := in.Request
	if req != nil {
		data := req.Data
		omitted, omit := omitRequestData(data)
		if omit {
			data = nil
		}
		e.Request = &RequestEntry{
			ID:                  req.ID,
			Operation:           req.Operation,
			MountType:           req.MountType,
			MountPoint:          req.MountPoint,
			ClientToken:         f.token(requestToken(req, in.Caller)),
			ClientTokenAccessor: f.accessor(callerAccessor(in.Caller)),
			Path:                joinPath(req.MountPoint, req.Path),
			Data:                f.data(data, in.NonHMACRequestKeys),
			DataOmitted:         omitted,
			RemoteAddr:          req.RemoteAddr,
			WrapTTL:             int(in.WrapTTL / time.Second),
			Headers:             f.headers(req.Headers, in.AuditedHeaders),
		}
	}
	if t == ResponseType {
		r := &ResponseEntry{}
		if req != nil {
			r.MountType, r.MountPoint = req.MountType, req.MountPoint
		}
		if resp := in.Response; resp != nil {
			if resp.Auth != nil {
				r.Auth = f.auth(resp.Auth)
			}
			data := resp.Data
			if f.ElideListResponses && req != nil && req.Operation == logical.ListOperation {
				data = elide(data)
			}
			r.Data = f.data(data, in.NonHMACResponseKeys)
			r.Warnings = resp.Warnings
		}
		if w := in.WrapInfo; w != nil {
			r.WrapInfo = &WrapInfoEntry{
				Token:           f.token(w.Token),
				Accessor:        f.accessor(w.Accessor),
				TTL:             int(w.TTL / time.Second),
				CreationPath:    w.CreationPath,
				WrappedAccessor: f.accessor(w.WrappedAccessor),
			}
			if !w.CreationTime.IsZero() {
				r.WrapInfo.CreationTime = w.CreationTime.UTC().Format(time.RFC3339Nano)
			}
		}
		e.Response = r
	}
	return e
}

// requestToken is the token the request carried: the request's own, or the
// caller's when core did not copy it into the request.
func requestToken(req *logical.Request, c *Caller) string {
	if req.ClientToken != "" || c == nil {
		return req.ClientToken
	}
	return c.ClientToken
}

func callerAccessor(c *Caller) string {
	if c == nil {
		return ""
	}
	return c.Accessor
}

// joinPath rebuilds the path the client used from the mount point and the
// path below it.
func joinPath(mount, path string) string {
	if mount == "" {
		return path
	}
	if path == "" {
		return mount
	}
	return strings.TrimSuffix(mount, "/") + "/" + strings.TrimPrefix(path, "/")
}

func (f *Formatter) token(s string) string {
	if s == "" || f.Raw {
		return s
	}
	return f.h.hash(s)
}

func (f *Formatter) accessor(s string) string {
	if s == "" || f.Raw || !f.HMACAccessor {
		return s
	}
	return f.h.hash(s)
}

func (f *Formatter) data(d map[string]any, skip []string) map[string]any {
	if len(d) == 0 {
		return nil
	}
	if f.Raw {
		return d
	}
	return f.h.hashData(d, skip)
}

func (f *Formatter) caller(c *Caller) *AuthEntry {
	a := &AuthEntry{
		ClientToken:   f.token(c.ClientToken),
		Accessor:      f.accessor(c.Accessor),
		DisplayName:   c.DisplayName,
		Policies:      c.Policies,
		TokenPolicies: c.TokenPolicies,
		Metadata:      c.Metadata,
		EntityID:      c.EntityID,
		TokenType:     c.TokenType,
		TokenTTL:      int64(c.TokenTTL / time.Second),
		RemainingUses: c.RemainingUses,
	}
	if !c.TokenIssueTime.IsZero() {
		a.TokenIssueTime = c.TokenIssueTime.UTC().Format(time.RFC3339)
	}
	return a
}

func (f *Formatter) auth(la *logical.Auth) *AuthEntry {
	ttl := la.TTL
	if ttl == 0 {
		ttl = time.Duration(la.LeaseDuration) * time.Second
	}
	return &AuthEntry{
		ClientToken:   f.token(la.ClientToken),
		Accessor:      f.accessor(la.Accessor),
		DisplayName:   la.DisplayName,
		Policies:      la.Policies,
		TokenPolicies: la.TokenPolicies,
		Metadata:      la.Metadata,
		EntityID:      la.EntityID,
		TokenType:     la.TokenType,
		TokenTTL:      int64(ttl / time.Second),
		NumUses:       la.NumUses,
	}
}

// headers keeps the audited headers only, under lower-case names, hashed
// unless configured otherwise (and unless the device logs raw).
func (f *Formatter) headers(h http.Header, audited map[string]bool) map[string][]string {
	if len(h) == 0 || len(audited) == 0 {
		return nil
	}
	var out map[string][]string
	for name, values := range h {
		lower := strings.ToLower(name)
		hmacIt, ok := audited[lower]
		if !ok {
			continue
		}
		vs := make([]string, len(values))
		for i, v := range values {
			if hmacIt && !f.Raw {
				v = f.h.hash(v)
			}
			vs[i] = v
		}
		if out == nil {
			out = make(map[string][]string)
		}
		out[lower] = append(out[lower], vs...)
	}
	return out
}

// elide replaces a list response's "keys" and "key_info" by their sizes, the
// way Vault's elide_list_responses does: the log keeps the shape, not the names.
func elide(d map[string]any) map[string]any {
	if d == nil {
		return nil
	}
	out := make(map[string]any, len(d))
	for k, v := range d {
		out[k] = v
	}
	switch keys := d["keys"].(type) {
	case []string:
		out["keys"] = len(keys)
	case []any:
		out["keys"] = len(keys)
	}
	switch info := d["key_info"].(type) {
	case map[string]any:
		out["key_info"] = len(info)
	}
	return out
}
