package replication

import "errors"

// Errors of the decoders. Each is wrapped with detail ("open batch 10-20: ...");
// compare with errors.Is. None of them is retryable with the same bytes: the
// message is dropped (and logged), the caller decides whether to resync.
var (
	// ErrBadSignature means an Ed25519 signature did not verify: the message was
	// forged or damaged on the way, or was signed by another primary. For a token
	// it also covers "signed by a key other than this primary's" (VerifyTokenKey).
	ErrBadSignature = errors.New("replication: bad signature")
	// ErrDecrypt means AES-256-GCM authentication failed: the wrong key (another
	// epoch, another secondary's RPC key, another recipient of a bundle), another
	// primary cluster id in the associated data, or tampered bytes.
	ErrDecrypt = errors.New("replication: decryption failed (wrong key, wrong cluster or tampered message)")
	// ErrCorrupt means the bytes break the format: truncated, trailing bytes, an
	// impossible length, a decompression bomb. Authenticated messages only reach
	// this on a bug or a hostile primary.
	ErrCorrupt = errors.New("replication: corrupt message")
	// ErrUnknownVersion means a version byte (or "v" field) this build does not
	// know: the peer runs a newer Coffer. Upgrade this server.
	ErrUnknownVersion = errors.New("replication: unknown message version (sent by a newer coffer? upgrade this server)")
	// ErrExpired means an RPC request whose timestamp lies outside the replay
	// window around the receiver's clock: a delayed or replayed request, or clocks
	// too far apart (check NTP on both clusters).
	ErrExpired = errors.New("replication: request timestamp outside the replay window (delayed, replayed, or clocks skewed)")
	// ErrReplay means an RPC request whose nonce was already seen within the
	// replay window: the bus (or someone on it) delivered it twice.
	ErrReplay = errors.New("replication: replayed request")
	// ErrWrongMethod means an RPC request sealed for another method than the
	// subject it arrived on.
	ErrWrongMethod = errors.New("replication: request sealed for another method")

	// ErrBadMAC means an activation request whose MAC does not verify under the
	// secret of the token it names: the requester does not hold that token.
	ErrBadMAC = errors.New("replication: activation request not authenticated by the token's secret")
	// ErrOtherRequest means a signed reply that names another request than the
	// one it arrived for: a recorded reply replayed, or a stranger's request
	// answered. It is no answer to this request: keep waiting.
	ErrOtherRequest = errors.New("replication: signed reply to another request")

	// ErrTokenMalformed means the activation token is not a Coffer activation
	// token at all: not three base64url parts, bad JSON, wrong algorithm, missing
	// claims, or truncated when it was copied.
	ErrTokenMalformed = errors.New("replication: activation token is malformed (not a coffer activation token, or truncated when copied)")
	// ErrTokenExpired means a well-formed, correctly signed token past its "exp":
	// ask the primary for a new one (primary/secondary-token).
	ErrTokenExpired = errors.New("replication: activation token has expired: generate a new one on the primary")
)
