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
)
