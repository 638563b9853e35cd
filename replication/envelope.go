package replication

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
)

// RPC envelope constants. They are part of the wire format: do not change them.
const (
	requestVersion = 1
	replyVersion   = 1

	// Reply kinds, the byte after the version.
	replyOK          = 1 // nonce | GCM(payload)
	replySealedError = 2 // nonce | GCM(JSON RPCError)
	replyPlainError  = 3 // JSON RPCError in clear: unauthenticated
	replySignedError = 4 // request digest | JSON RPCError | Ed25519ctx signature
	replyOKGen       = 5 // generation (8 BE) | nonce | GCM(payload)
	replySealedGen   = 6 // generation (8 BE) | nonce | GCM(JSON RPCError)

	// rpcRefusalContext is the Ed25519ctx context of signed RPC refusals.
	rpcRefusalContext = "coffer-rpc-refusal-v1"

	requestAADLabel = "req"
	replyAADLabel   = "reply"

	// maxErrorReply bounds the JSON of an error reply.
	maxErrorReply = 64 << 10
	// maxNameLen bounds the secondary id and method of a request (one length byte).
	maxNameLen = 255
)

// DefaultReplayWindow is the replay window the primary uses: a request is
// accepted when its timestamp is within ±2 minutes of the primary's clock.
const DefaultReplayWindow = 2 * time.Minute

// SealRequest seals payload for method with the RPC key of secondaryID (see
// the package doc for the layout). now is the sender's clock: the receiver
// refuses a request outside its replay window.
func SealRequest(secondaryID, method string, key []byte, payload []byte, now time.Time) ([]byte, error) {
	return sealRequest(secondaryID, method, key, payload, now, nil)
}

// sealRequest is SealRequest with the nonce given when fixedNonce is not nil
// (tests pin it).
func sealRequest(secondaryID, method string, key []byte, payload []byte, now time.Time, fixedNonce []byte) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("seal request: %w", err)
	}
	if secondaryID == "" || len(secondaryID) > maxNameLen || method == "" || len(method) > maxNameLen {
		return nil, fmt.Errorf("seal request: secondary id and method must be 1 to %d bytes", maxNameLen)
	}
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	hlen := 1 + 1 + len(secondaryID) + 1 + len(method) + 8
	msg := make([]byte, 0, hlen+nonceLen+len(payload)+tagLen)
	msg = append(msg, requestVersion, byte(len(secondaryID)))
	msg = append(msg, secondaryID...)
	msg = append(msg, byte(len(method)))
	msg = append(msg, method...)
	msg = binary.BigEndian.AppendUint64(msg, uint64(now.UnixMilli()))
	msg = msg[:hlen+nonceLen]
	nonce := msg[hlen:]
	if fixedNonce != nil {
		copy(nonce, fixedNonce)
	} else if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(msg, nonce, payload, requestAAD(msg[:hlen])), nil
}

func requestAAD(header []byte) []byte {
	return append(append(make([]byte, 0, len(header)+len(requestAADLabel)), header...), requestAADLabel...)
}

// parsedRequest is a request split into its parts; nothing in it is verified.
type parsedRequest struct {
	id, method string
	millis     int64
	header     []byte // every byte before the nonce
	nonce      []byte
	sealed     []byte
}

func parseRequest(msg []byte) (*parsedRequest, error) {
	if len(msg) == 0 {
		return nil, fmt.Errorf("%w: empty request", ErrCorrupt)
	}
	if msg[0] != requestVersion {
		return nil, fmt.Errorf("%w: request version %d", ErrUnknownVersion, msg[0])
	}
	p := msg[1:]
	var id, method []byte
	for _, f := range []*[]byte{&id, &method} {
		if len(p) < 1 {
			return nil, fmt.Errorf("%w: request header truncated", ErrCorrupt)
		}
		n := 1 + int(p[0]) // int: 1+255 must not wrap to 0 as a byte
		if n == 1 || n > len(p) {
			return nil, fmt.Errorf("%w: request header truncated", ErrCorrupt)
		}
		*f, p = p[1:n], p[n:]
	}
	if len(p) < 8+nonceLen+tagLen {
		return nil, fmt.Errorf("%w: request of %d bytes truncated", ErrCorrupt, len(msg))
	}
	hlen := len(msg) - len(p) + 8
	return &parsedRequest{
		id:     string(id),
		method: string(method),
		millis: int64(binary.BigEndian.Uint64(p[:8])),
		header: msg[:hlen],
		nonce:  msg[hlen : hlen+nonceLen],
		sealed: msg[hlen+nonceLen:],
	}, nil
}

// PeekRequest returns the secondary id and method of a request without
// verifying anything, so the receiver can pick that secondary's key.
func PeekRequest(msg []byte) (secondaryID, method string, err error) {
	r, err := parseRequest(msg)
	if err != nil {
		return "", "", fmt.Errorf("peek request: %w", err)
	}
	return r.id, r.method, nil
}

// OpenRequest authenticates and decrypts a request that arrived for method,
// with the key of the secondary PeekRequest named. It then checks the timestamp
// against now and guard's window (ErrExpired) and the nonce against the nonces
// seen (ErrReplay). Other errors: ErrWrongMethod, ErrDecrypt, ErrCorrupt,
// ErrUnknownVersion. reqNonce is what SealReply needs to answer. guard must not
// be nil.
func OpenRequest(msg []byte, method string, key []byte, guard *ReplayGuard, now time.Time) (secondaryID string, payload []byte, reqNonce []byte, err error) {
	if guard == nil {
		return "", nil, nil, errors.New("open request: nil replay guard")
	}
	if err := checkKey(key); err != nil {
		return "", nil, nil, fmt.Errorf("open request: %w", err)
	}
	r, err := parseRequest(msg)
	if err != nil {
		return "", nil, nil, fmt.Errorf("open request: %w", err)
	}
	if r.method != method {
		return "", nil, nil, fmt.Errorf("open request from %q: %w: %q, arrived for %q", r.id, ErrWrongMethod, r.method, method)
	}
	aead, err := newGCM(key)
	if err != nil {
		return "", nil, nil, err
	}
	payload, err = aead.Open(nil, r.nonce, r.sealed, requestAAD(r.header))
	if err != nil {
		return "", nil, nil, fmt.Errorf("open %s request from %q: %w", method, r.id, ErrDecrypt)
	}
	if err := guard.check(r.id, r.nonce, r.millis, now); err != nil {
		return "", nil, nil, fmt.Errorf("open %s request from %q: %w", method, r.id, err)
	}
	if payload == nil {
		payload = []byte{}
	}
	return r.id, payload, append([]byte(nil), r.nonce...), nil
}

// ReplayGuard remembers the (secondary id, nonce) of every authenticated
// request within its window, so a request delivered twice is refused. It is
// safe for concurrent use. Memory is bounded by the rate of authenticated
// requests times twice the window: entries expire once their timestamp leaves
// the window (after which the timestamp check refuses them anyway), and
// expired entries are pruned as the map grows.
type ReplayGuard struct {
	window int64 // milliseconds

	mu      sync.Mutex
	seen    map[string]int64 // id NUL nonce -> unix millis after which it may be forgotten
	pruneAt int
}

const replayPruneMin = 1024

// NewReplayGuard returns a guard accepting timestamps within ±window of the
// receiver's clock (DefaultReplayWindow when window <= 0).
func NewReplayGuard(window time.Duration) *ReplayGuard {
	if window <= 0 {
		window = DefaultReplayWindow
	}
	return &ReplayGuard{window: window.Milliseconds(), seen: make(map[string]int64), pruneAt: replayPruneMin}
}

// Len returns how many nonces the guard remembers (for metrics and tests).
func (g *ReplayGuard) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.seen)
}

func (g *ReplayGuard) check(id string, nonce []byte, millis int64, now time.Time) error {
	n := now.UnixMilli()
	if d := n - millis; d > g.window || d < -g.window {
		return fmt.Errorf("%w: request time %s, receiver time %s, window ±%s", ErrExpired,
			time.UnixMilli(millis).UTC().Format(time.RFC3339Nano), now.UTC().Format(time.RFC3339Nano),
			time.Duration(g.window)*time.Millisecond)
	}
	k := id + "\x00" + string(nonce)
	g.mu.Lock()
	defer g.mu.Unlock()
	if exp, ok := g.seen[k]; ok && exp >= n {
		return ErrReplay
	}
	if len(g.seen) >= g.pruneAt {
		for k, exp := range g.seen {
			if exp < n {
				delete(g.seen, k)
			}
		}
		g.pruneAt = max(replayPruneMin, 2*len(g.seen))
	}
	g.seen[k] = millis + g.window
	return nil
}

// SealReply seals payload as the answer to the request whose nonce is reqNonce
// (from OpenRequest). The request nonce is in the associated data, so a reply
// recorded on the bus cannot be passed off as the answer to another request.
func SealReply(key []byte, reqNonce []byte, payload []byte) ([]byte, error) {
	return sealReply(replyOK, key, reqNonce, payload)
}

// SealReplyGen is SealReply from a primary holding generation gen of its
// set (kind 5): the generation is in the header and the associated data, so
// a secondary refuses the answer of a superseded primary (OpenReplyGen).
func SealReplyGen(key, reqNonce []byte, gen uint64, payload []byte) ([]byte, error) {
	return sealReplyGen(replyOKGen, key, reqNonce, gen, payload)
}

// SealErrorReplyGen is SealErrorReply with the generation (kind 6).
func SealErrorReplyGen(key, reqNonce []byte, gen uint64, e *RPCError) ([]byte, error) {
	body, err := json.Marshal(e.wire())
	if err != nil {
		return nil, err
	}
	return sealReplyGen(replySealedGen, key, reqNonce, gen, body)
}

func sealReplyGen(kind byte, key, reqNonce []byte, gen uint64, payload []byte) ([]byte, error) {
	var g [8]byte
	binary.BigEndian.PutUint64(g[:], gen)
	msg, err := sealReply(kind, key, append(g[:], reqNonce...), payload)
	if err != nil {
		return nil, err
	}
	// sealReply bound the generation (with the request nonce) in the
	// associated data; it goes in clear after the kind too.
	out := make([]byte, 0, len(msg)+8)
	out = append(out, msg[:2]...)
	out = append(out, g[:]...)
	return append(out, msg[2:]...), nil
}

// SealErrorReply seals e as the answer to the request whose nonce is reqNonce.
// Use it for every error once the request authenticated: the secondary can
// trust the code.
func SealErrorReply(key []byte, reqNonce []byte, e *RPCError) ([]byte, error) {
	body, err := json.Marshal(e.wire())
	if err != nil {
		return nil, err
	}
	return sealReply(replySealedError, key, reqNonce, body)
}

// PlainErrorReply is the unsealed, unsigned error reply, for requests that did
// not authenticate (damaged, wrong key) or were refused by the replay guard
// (expired, replayed). Anyone on the bus can forge it, so OpenReply marks it
// unauthenticated (RPCError.Authenticated false) and a requester ignores it.
// Never seal or sign a refusal that only says "these bytes were seen before":
// a stranger who replays a request would get an authenticated answer to the
// real requester's request and could deliver it before the real one.
func PlainErrorReply(e *RPCError) []byte {
	body, _ := json.Marshal(e.wire()) // strings only: cannot fail
	return append([]byte{replyVersion, replyPlainError}, body...)
}

// SignErrorReply is the error reply for a secondary whose RPC key the primary
// no longer holds (revoked) or never held (unknown, not activated): it is
// signed with the primary's signing key and names the request by its digest
// (SHA-256 of the whole request message), so it answers that request only.
// Sign only statements about the secondary the request names, which no
// request of another secondary can obtain: revoked, unknown_secondary.
func SignErrorReply(priv ed25519.PrivateKey, request []byte, e *RPCError) ([]byte, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("sign error reply: signing key of %d bytes", len(priv))
	}
	body, err := json.Marshal(e.wire())
	if err != nil {
		return nil, err
	}
	msg := make([]byte, 0, signedHeaderLen+len(body)+ed25519.SignatureSize)
	msg = append(msg, replyVersion, replySignedError)
	msg = append(msg, Digest(request)...)
	msg = append(msg, body...)
	sig, err := priv.Sign(nil, msg, &ed25519.Options{Context: rpcRefusalContext})
	if err != nil {
		return nil, err
	}
	return append(msg, sig...), nil
}

func sealReply(kind byte, key, reqNonce, payload []byte) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("seal reply: %w", err)
	}
	if len(reqNonce) != nonceLen && len(reqNonce) != 8+nonceLen {
		return nil, fmt.Errorf("seal reply: request nonce of %d bytes, want %d", len(reqNonce), nonceLen)
	}
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	msg := make([]byte, 2+nonceLen, 2+nonceLen+len(payload)+tagLen)
	msg[0], msg[1] = replyVersion, kind
	nonce := msg[2:]
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(msg, nonce, payload, replyAAD(kind, reqNonce)), nil
}

func replyAAD(kind byte, reqNonce []byte) []byte {
	aad := make([]byte, 0, 2+len(reqNonce)+len(replyAADLabel))
	aad = append(aad, replyVersion, kind)
	aad = append(aad, reqNonce...)
	return append(aad, replyAADLabel...)
}

// OpenReply authenticates and decrypts the reply to request (the message the
// secondary sent, from SealRequest) with the secondary's RPC key and the
// primary's signing public key. An error reply comes back as a *RPCError
// (errors.As), with Authenticated telling whether it was sealed or signed
// for this request; act only on authenticated ones. Other errors mean the
// reply is no answer to this request (ignore it and keep waiting):
// ErrDecrypt (wrong key, or a reply to another request), ErrBadSignature,
// ErrOtherRequest, ErrCorrupt, ErrUnknownVersion.
func OpenReply(msg, request, key []byte, signer ed25519.PublicKey) ([]byte, error) {
	p, _, err := OpenReplyGen(msg, request, key, signer)
	return p, err
}

// OpenReplyGen is OpenReply that also returns the generation a reply of kind
// 5 or 6 carries (0 for the other kinds).
func OpenReplyGen(msg, request, key []byte, signer ed25519.PublicKey) ([]byte, uint64, error) {
	if len(msg) >= 2 && msg[0] == replyVersion && (msg[1] == replyOKGen || msg[1] == replySealedGen) {
		if len(msg) < 2+8 {
			return nil, 0, fmt.Errorf("open reply: %w: %d bytes", ErrCorrupt, len(msg))
		}
		gen := binary.BigEndian.Uint64(msg[2:10])
		inner := append([]byte{msg[0], msg[1]}, msg[10:]...)
		p, err := openReply(inner, request, key, signer, msg[2:10])
		return p, gen, err
	}
	p, err := openReply(msg, request, key, signer, nil)
	return p, 0, err
}

func openReply(msg, request, key []byte, signer ed25519.PublicKey, gen []byte) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("open reply: %w", err)
	}
	req, err := parseRequest(request)
	if err != nil {
		return nil, fmt.Errorf("open reply: the request: %w", err)
	}
	if len(msg) < 2 {
		return nil, fmt.Errorf("open reply: %w: %d bytes", ErrCorrupt, len(msg))
	}
	if msg[0] != replyVersion {
		return nil, fmt.Errorf("open reply: %w: reply version %d", versionErr(int(msg[0]), replyVersion, ErrCorrupt), msg[0])
	}
	kind := msg[1]
	switch kind {
	case replyPlainError:
		e, err := decodeRPCError(msg[2:])
		if err != nil {
			return nil, fmt.Errorf("open reply: %w", err)
		}
		return nil, e
	case replySignedError:
		body, _, err := verifySigned(msg, request, signer, replyVersion, rpcRefusalContext)
		if err != nil {
			return nil, fmt.Errorf("open reply: signed error: %w", err)
		}
		e, err := decodeRPCError(body)
		if err != nil {
			return nil, fmt.Errorf("open reply: %w", err)
		}
		e.Authenticated = true
		return nil, e
	case replyOK, replySealedError, replyOKGen, replySealedGen:
	default:
		return nil, fmt.Errorf("open reply: %w: reply kind %d", ErrCorrupt, kind)
	}
	if len(msg) < 2+nonceLen+tagLen {
		return nil, fmt.Errorf("open reply: %w: %d bytes", ErrCorrupt, len(msg))
	}
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	bound := req.nonce
	if gen != nil {
		bound = append(append([]byte(nil), gen...), req.nonce...)
	}
	payload, err := aead.Open(nil, msg[2:2+nonceLen], msg[2+nonceLen:], replyAAD(kind, bound))
	if err != nil {
		return nil, fmt.Errorf("open reply: %w", ErrDecrypt)
	}
	if kind == replySealedError || kind == replySealedGen {
		e, err := decodeRPCError(payload)
		if err != nil {
			return nil, fmt.Errorf("open reply: %w", err)
		}
		e.Authenticated = true
		return nil, e
	}
	if payload == nil {
		payload = []byte{}
	}
	return payload, nil
}

// RPC error codes. The strings are part of the wire format: do not change them.
const (
	// CodeUnknownSecondary: the primary has no secondary of this id (never
	// activated, or activated on another primary). Permanent.
	CodeUnknownSecondary = "unknown_secondary"
	// CodeRevoked: the secondary was revoked. Permanent: re-activate with a new token.
	CodeRevoked = "revoked"
	// CodeBadRequest: the request could not be authenticated or parsed (wrong key,
	// corrupt, wrong method). Permanent for these bytes.
	CodeBadRequest = "bad_request"
	// CodeExpired: the request timestamp is outside the window: clock skew.
	CodeExpired = "expired"
	// CodeReplay: the nonce was seen already; resend a freshly sealed request.
	CodeReplay = "replay"
	// CodeUnknownEpoch: a key request for an epoch the primary does not hold.
	CodeUnknownEpoch = "unknown_epoch"
	// CodeTokenInvalid, CodeTokenExpired, CodeTokenUsed: activation refused for a
	// garbage or wrongly signed token, an expired one, or one already used or
	// revoked. Permanent: generate a new token.
	CodeTokenInvalid = "token_invalid"
	CodeTokenExpired = "token_expired"
	CodeTokenUsed    = "token_used"
	// CodeNotPrimary: the receiver is not (or no longer) a primary. Permanent.
	CodeNotPrimary = "not_primary"
	// CodeUnavailable: a transient failure on the primary (storage, sealed, busy).
	CodeUnavailable = "unavailable"
	// CodeInternal: anything else; retry with backoff.
	CodeInternal = "internal"
	// CodeNoMerkle: the primary has no merkle index right now (none wired,
	// starting, reindexing): sync by full listing instead. Transient.
	CodeNoMerkle = "no_merkle"
)

// RPCError is an error answer to an RPC. Code is one of the Code* constants
// (an unknown code from a newer primary is treated as transient), Msg a
// sentence for a person.
type RPCError struct {
	Code string
	Msg  string
	// Authenticated is true when the error arrived sealed with the secondary's
	// RPC key or signed by the primary for this very request. An
	// unauthenticated error may be forged by anyone on the bus: a requester
	// ignores it and keeps waiting for the real answer; it may show it as the
	// reason of a timeout, never act on it.
	Authenticated bool
}

type rpcErrorWire struct {
	V     int    `json:"v"`
	Code  string `json:"code"`
	Error string `json:"error"`
}

func (e *RPCError) wire() rpcErrorWire {
	return rpcErrorWire{V: MessageVersion, Code: e.Code, Error: e.Msg}
}

func decodeRPCError(b []byte) (*RPCError, error) {
	if len(b) > maxErrorReply {
		return nil, fmt.Errorf("%w: error reply of %d bytes", ErrCorrupt, len(b))
	}
	var w rpcErrorWire
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("%w: error reply: %v", ErrCorrupt, err)
	}
	if w.V != MessageVersion {
		if w.V > MessageVersion {
			return nil, fmt.Errorf("%w: error reply v %d", ErrUnknownVersion, w.V)
		}
		return nil, fmt.Errorf("%w: error reply v %d", ErrCorrupt, w.V)
	}
	if w.Code == "" {
		return nil, fmt.Errorf("%w: error reply without a code", ErrCorrupt)
	}
	return &RPCError{Code: w.Code, Msg: w.Error}, nil
}

// Error returns "primary refused the request (code): msg".
func (e *RPCError) Error() string {
	s := "replication: primary refused the request (" + e.Code + ")"
	if e.Msg != "" {
		s += ": " + e.Msg
	}
	if !e.Authenticated {
		s += " [unauthenticated reply]"
	}
	return s
}

// Permanent reports whether retrying the same request cannot succeed: the
// secondary is unknown or revoked, the token is unusable, the receiver is not a
// primary, or the request was bad. Expired (clock skew), replay, unavailable,
// internal and unknown codes are transient.
func (e *RPCError) Permanent() bool {
	switch e.Code {
	case CodeUnknownSecondary, CodeRevoked, CodeBadRequest, CodeUnknownEpoch,
		CodeTokenInvalid, CodeTokenExpired, CodeTokenUsed, CodeNotPrimary:
		return true
	}
	return false
}

// IsRevoked reports whether err is an authenticated RPCError saying this
// secondary is revoked or unknown to the primary: the one answer that ends a
// secondary. An unauthenticated one (anyone on the bus can forge it) is not.
func IsRevoked(err error) bool {
	var e *RPCError
	return errors.As(err, &e) && e.Authenticated && (e.Code == CodeRevoked || e.Code == CodeUnknownSecondary)
}

// ErrorCode maps an error of this package's decoders (OpenRequest, ParseToken)
// to the RPC code the primary should answer with: CodeExpired, CodeReplay,
// CodeTokenExpired, CodeTokenInvalid, CodeBadRequest, or CodeInternal.
func ErrorCode(err error) string {
	var e *RPCError
	switch {
	case errors.As(err, &e):
		return e.Code
	case errors.Is(err, ErrExpired):
		return CodeExpired
	case errors.Is(err, ErrReplay):
		return CodeReplay
	case errors.Is(err, ErrTokenExpired):
		return CodeTokenExpired
	case errors.Is(err, ErrTokenMalformed), errors.Is(err, ErrBadSignature):
		// Signatures are checked on RPCs only for activation tokens.
		return CodeTokenInvalid
	case errors.Is(err, ErrDecrypt), errors.Is(err, ErrCorrupt), errors.Is(err, ErrUnknownVersion),
		errors.Is(err, ErrWrongMethod):
		return CodeBadRequest
	}
	return CodeInternal
}
