package bus

import "errors"

var (
	// ErrUnreachable means a request got no answer: nobody serves the subject
	// (no responders) or the answer did not arrive before the deadline. The
	// operator should check that the peer cluster is running and connected to
	// the same NATS system. Errors wrapping it may also wrap
	// context.DeadlineExceeded.
	ErrUnreachable = errors.New("peer unreachable over NATS")

	// ErrNotFound means the named stream or consumer does not exist.
	ErrNotFound = errors.New("not found on NATS JetStream")

	// ErrClosed means the Bus was closed.
	ErrClosed = errors.New("bus closed")

	// ErrInterrupted means a request was sent and the wait for its answer
	// ended early (the connection closed under it): the peer may have acted
	// on it.
	ErrInterrupted = errors.New("request sent, wait for the answer interrupted")

	// ErrTooLarge means a message was not sent: it is larger than the NATS
	// server's max_payload. Nothing reached the peer.
	ErrTooLarge = errors.New("message larger than the NATS server's max_payload, not sent")
)
