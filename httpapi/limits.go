package httpapi

import (
	"context"
	"fmt"
	"io"
	"net/http"
)

// What a request without a valid token may cost.
//
// HTTP clients are untrusted until authenticated (docs/security.md). Three
// limits bound the work the server does before that:
//
//   - The body of a request that core refuses (no token, an invalid token, a
//     policy that does not allow it) is never read: core asks for the data
//     through core.Request.Admit only once the request is allowed.
//   - A request served without a valid token (sys/init, sys/unseal, logins,
//     sys/wrapping/lookup...) may carry at most MaxUnauthenticatedRequestSize
//     bytes of body; a larger one is answered 413 without reading past the cap.
//     Its JSON may hold at most MaxUnauthenticatedJSONValues values (counted
//     as the body streams in, before decoding): 64 KiB of [0,0,...] would
//     otherwise decode into some 3.5 MB of Go values.
//   - At most MaxUnauthenticatedRequests such requests are served at once;
//     one more is answered 503 with Retry-After at once. Authenticated requests
//     are not counted, so a flood of token-less requests cannot starve them.
//     The status reads (sys/health, sys/seal-status, sys/leader, GET
//     sys/init) are not counted either: they read no body and answer from
//     memory, and load balancers must keep seeing them.
//
// A response to a request whose body was not read to its end carries
// "Connection: close": Go's server then sends the response at once and
// discards at most 256 KiB of what the client still sends, never buffering
// it, before closing the connection (and within http_read_timeout).

// Defaults of the limits on unauthenticated requests.
const (
	DefaultMaxUnauthenticatedRequestSize int64 = 64 << 10
	DefaultMaxUnauthenticatedRequests          = 64
)

// MaxUnauthenticatedJSONValues bounds the JSON values (every scalar, object
// and array, at any depth) of a body served without a valid token. What such
// requests take (an unseal key, a password, a token, sys/init's counts) is a
// handful.
const MaxUnauthenticatedJSONValues = 1024

// limits is the state the limits share across requests.
type limits struct {
	maxBody       int64         // max_request_size; <= 0: none
	maxUnauthBody int64         // max_unauthenticated_request_size
	maxUnauth     int           // max_unauthenticated_requests; the size of slots
	slots         chan struct{} // one token per unauthenticated request served; nil: no limit
}

func newLimits(opts Options) *limits {
	l := &limits{maxBody: opts.MaxRequestSize, maxUnauthBody: opts.MaxUnauthenticatedRequestSize, maxUnauth: opts.MaxUnauthenticatedRequests}
	if l.maxBody == 0 {
		l.maxBody = DefaultMaxRequestSize
	}
	if l.maxUnauthBody <= 0 {
		l.maxUnauthBody = DefaultMaxUnauthenticatedRequestSize
	}
	if l.maxBody > 0 && l.maxUnauthBody > l.maxBody {
		l.maxUnauthBody = l.maxBody
	}
	if l.maxUnauth == 0 {
		l.maxUnauth = DefaultMaxUnauthenticatedRequests
	}
	if l.maxUnauth > 0 {
		l.slots = make(chan struct{}, l.maxUnauth)
	}
	return l
}

// admission is one request's passage through the limits: it holds the
// request's unauthenticated slot, if it took one, until release.
type admission struct {
	lim  *limits
	w    http.ResponseWriter
	r    *http.Request
	held bool
}

type admissionKey struct{}

// admissionFor returns the request's admission, as the handler of New
// attached it, or nil.
func admissionFor(ctx context.Context) *admission {
	a, _ := ctx.Value(admissionKey{}).(*admission)
	return a
}

// unauthenticated takes a slot for a request served without a valid token
// and caps its body; its error is the answer to give instead.
func (a *admission) unauthenticated() error {
	if a.lim.slots != nil && !a.held {
		select {
		case a.lim.slots <- struct{}{}:
			a.held = true
		default:
			a.w.Header().Set("Retry-After", "1")
			return &requestError{code: http.StatusServiceUnavailable, msg: fmt.Sprintf(
				"too many requests without a valid token are being served (at most %d at once, the listener's max_unauthenticated_requests): retry in a moment; requests with a valid token are not limited", a.lim.maxUnauth)}
		}
	}
	return a.capBody(a.lim.maxUnauthBody)
}

// capBody refuses a body declared larger than n and stops reading one that
// turns out larger.
func (a *admission) capBody(n int64) error {
	if a.r.Body == nil || a.r.Body == http.NoBody {
		return nil
	}
	if a.r.ContentLength > n {
		return unauthTooLarge(n)
	}
	a.r.Body = &capReader{rc: a.r.Body, left: n, limit: n}
	return nil
}

func (a *admission) release() {
	if a.held {
		<-a.lim.slots
		a.held = false
	}
}

func unauthTooLarge(n int64) error {
	return &requestError{code: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf(
		"a request without a valid token may carry at most %d bytes of body (the listener's max_unauthenticated_request_size): authenticate first, or send a smaller body", n)}
}

// capReader reads at most left bytes; reading past them fails with a 413
// and reads at most one byte of the excess. It also counts the JSON values
// going through, failing with a 400 past MaxUnauthenticatedJSONValues.
type capReader struct {
	rc          io.ReadCloser
	left, limit int64
	err         error
	json        jsonCounter
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	n, err := c.rc.Read(p)
	if int64(n) > c.left {
		n = int(c.left)
		c.err = unauthTooLarge(c.limit)
	}
	c.left -= int64(n)
	if c.json.scan(p[:n]) > MaxUnauthenticatedJSONValues {
		c.err = &requestError{code: http.StatusBadRequest, msg: fmt.Sprintf(
			"a request without a valid token may hold at most %d JSON values: authenticate first, or send less", MaxUnauthenticatedJSONValues)}
	}
	if c.err != nil {
		return n, c.err
	}
	return n, err
}

// jsonCounter counts an upper bound of the values in a JSON text as it
// streams by: one, plus one per "," ":" "[" "{" outside strings (a key and
// its value count two). It does not validate: the decoder does.
type jsonCounter struct {
	n                 int
	inString, escaped bool
}

func (j *jsonCounter) scan(p []byte) int {
	if j.n == 0 {
		j.n = 1
	}
	for _, b := range p {
		switch {
		case j.inString && j.escaped:
			j.escaped = false
		case j.inString && b == '\\':
			j.escaped = true
		case j.inString:
			j.inString = b != '"'
		case b == '"':
			j.inString = true
		case b == ',' || b == ':' || b == '[' || b == '{':
			j.n++
		}
	}
	return j.n
}

func (c *capReader) Close() error { return c.rc.Close() }

// trackedBody records whether the body was read to its end.
type trackedBody struct {
	rc  io.ReadCloser
	eof bool
}

func (b *trackedBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

func (b *trackedBody) Close() error { return b.rc.Close() }
