package forwarder

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/cofferhq/coffer/logical"
	"github.com/cofferhq/coffer/telemetry"
	"github.com/google/uuid"
)

// DefaultWALWait is best_effort_wal_wait_duration's default.
const DefaultWALWait = 2 * time.Second

// Errors a Transport wraps so the client can tell the operator what happened.
var (
	// ErrUnreachable: the primary did not answer (no responder, timeout, bus down).
	ErrUnreachable = errors.New("forwarder: the primary is unreachable")
	// ErrRevoked: the primary answered, authenticated, that this secondary is revoked.
	ErrRevoked = errors.New("forwarder: this secondary is revoked")
	// ErrNoAnswer: the request was sent but no answer came before the
	// deadline: the primary may or may not have applied it.
	ErrNoAnswer = errors.New("forwarder: no answer from the primary in time")
	// ErrTooLarge: the request is larger than the transport carries; it was
	// not sent.
	ErrTooLarge = errors.New("forwarder: the write is larger than the replication bus carries")
)

// Transport is how a secondary reaches its primary: the replication side
// seals payload into the secondary's authenticated RPC and returns the
// opened reply. It never looks inside payload.
type Transport interface {
	// RoundTrip sends one encoded Request and returns the encoded Reply.
	// Errors wrap ErrUnreachable, ErrRevoked or ErrTooLarge where they apply.
	RoundTrip(ctx context.Context, payload []byte) ([]byte, error)
	// WaitApplied returns once this cluster has applied the primary's WAL up
	// to index, or ctx's error.
	WaitApplied(ctx context.Context, index uint64) error
}

// Caller describes the token that was checked on the secondary, for the
// primary's audit log.
type Caller struct {
	DisplayName string
	Policies    []string
}

// Client forwards requests from a secondary. Build one per transport.
type Client struct {
	t    Transport
	seq  *Sequencer
	wait time.Duration
}

// NewClient returns a client over t, numbering its requests with seq; wait
// is best_effort_wal_wait_duration (DefaultWALWait when zero or less).
func NewClient(t Transport, seq *Sequencer, wait time.Duration) *Client {
	if wait <= 0 {
		wait = DefaultWALWait
	}
	return &Client{t: t, seq: seq, wait: wait}
}

// body is a forwarded response as it travels back in Reply.Body.
type body struct {
	Data       map[string]any `json:"data,omitempty"`
	Auth       *logical.Auth  `json:"auth,omitempty"`
	Warnings   []string       `json:"warnings,omitempty"`
	StatusCode int            `json:"status_code,omitempty"`
}

// Forward sends lreq (for the full path) to the primary and waits until this
// cluster has applied the primary's WAL index of the write, at most the
// configured wait; after that the response carries a warning. It returns the
// response and the primary's WAL index.
func (c *Client) Forward(ctx context.Context, path string, lreq *logical.Request, caller *Caller) (*logical.Response, uint64, error) {
	defer telemetry.MeasureSince(telemetry.NameForward, time.Now())
	data, err := json.Marshal(lreq.Data)
	if err != nil {
		return nil, 0, fmt.Errorf("encode forwarded request: %w", err)
	}
	seq, err := c.seq.Next(ctx)
	if err != nil {
		return nil, 0, logical.Errorf(http.StatusServiceUnavailable, "the write was not forwarded: %v", err)
	}
	req := &Request{ID: uuid.NewString(), Seq: seq, Operation: string(lreq.Operation), Path: path, Data: data, RemoteAddr: lreq.RemoteAddr}
	if caller != nil {
		req.CallerDisplayName, req.CallerPolicies = caller.DisplayName, caller.Policies
	}
	reply, err := c.RoundTrip(ctx, req)
	if err != nil {
		switch {
		case errors.Is(err, ErrNoAnswer):
			return nil, 0, logical.Errorf(http.StatusGatewayTimeout, "the primary could not be reached in time (%v): the write was sent, so its outcome is unknown: it may have been applied; read the value back before retrying", err)
		case errors.Is(err, ErrUnreachable):
			return nil, 0, logical.Errorf(http.StatusServiceUnavailable, "the primary could not be reached to forward this write (%v): it was not applied; retry when the primary is back (reads on this cluster keep working)", err)
		case errors.Is(err, ErrTooLarge):
			return nil, 0, logical.Errorf(http.StatusRequestEntityTooLarge, "the write is too large to forward to the primary (%v): it was not applied; write less at once (split the secret), or raise max_payload on the NATS servers", err)
		case errors.Is(err, ErrRevoked):
			return nil, 0, logical.Errorf(http.StatusServiceUnavailable, "this secondary was revoked by its primary: writes cannot be forwarded; re-activate it with a new token")
		}
		return nil, 0, logical.Errorf(http.StatusServiceUnavailable, "forwarding the write to the primary failed: %v", err)
	}
	if reply.Status >= 400 {
		return nil, reply.WALIndex, &logical.CodedError{Code: reply.Status, Msg: strings.Join(reply.Errors, "; ")}
	}
	var fb body
	if len(reply.Body) > 0 {
		dec := json.NewDecoder(bytes.NewReader(reply.Body))
		dec.UseNumber()
		if err := dec.Decode(&fb); err != nil {
			return nil, reply.WALIndex, fmt.Errorf("decode the primary's forwarded response: %w", err)
		}
	}
	resp := &logical.Response{Data: fb.Data, Auth: fb.Auth, Warnings: fb.Warnings, StatusCode: fb.StatusCode}
	wctx, cancel := context.WithTimeout(ctx, c.wait)
	defer cancel()
	switch err := c.t.WaitApplied(wctx, reply.WALIndex); {
	case err == nil:
	case errors.Is(err, context.DeadlineExceeded):
		resp.Warnings = append(resp.Warnings, fmt.Sprintf("the write was applied on the primary (WAL index %d) but this cluster had not replicated it after %s: a read here may not show it yet", reply.WALIndex, c.wait))
	default:
		resp.Warnings = append(resp.Warnings, fmt.Sprintf("the write was applied on the primary (WAL index %d), but this cluster cannot tell that it was replicated (%v): "+
			"if the primary was replaced meanwhile the write may be lost; read it back", reply.WALIndex, err))
	}
	return resp, reply.WALIndex, nil
}

// RoundTrip sends one Request as it is (a retry keeps its ID) and decodes
// the Reply.
func (c *Client) RoundTrip(ctx context.Context, req *Request) (*Reply, error) {
	payload, err := EncodeRequest(req)
	if err != nil {
		return nil, err
	}
	out, err := c.t.RoundTrip(ctx, payload)
	if err != nil {
		return nil, err
	}
	return DecodeReply(out)
}
