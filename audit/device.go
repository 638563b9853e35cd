package audit

import (
	"context"
	"errors"
)

// Device writes audit lines somewhere. Each device formats the entries itself
// with its own options (log_raw, hmac_accessor, prefix) and salt.
//
// Every method is safe for concurrent use. LogRequest and LogResponse return
// only once the line is written (see the package documentation on
// durability), or with the error that prevented it; after Close they fail
// with ErrDeviceClosed.
type Device interface {
	// LogRequest writes the request line for in.
	LogRequest(ctx context.Context, in *LogInput) error
	// LogResponse writes the response line for in.
	LogResponse(ctx context.Context, in *LogInput) error
	// Hash returns value hashed with the device's salt, for sys/audit-hash.
	Hash(value string) string
	// Reload reopens the device's file: log rotation moves the file away and
	// sends SIGHUP, and the next line goes to a new file at the same path.
	Reload() error
	// Close releases the device. It is idempotent.
	Close() error
}

// Errors of the package. Errors about options wrap logical.ErrInvalidRequest,
// so the HTTP layer answers them with 400.
var (
	// ErrAuditFailed: audit devices are enabled and none of them could log.
	// Core must refuse the request (or withhold the response).
	ErrAuditFailed = errors.New("no audit device could log the request: the request was refused; check the audit devices' files and permissions")
	// ErrDeviceClosed: the device was used after Close.
	ErrDeviceClosed = errors.New("audit device is closed: it was disabled or the server is shutting down")
	// ErrBrokerClosed: the Broker was used after Close; requests must not be
	// served unaudited while the server shuts down.
	ErrBrokerClosed = errors.New("audit broker is closed: the server is sealing or shutting down; retry against an unsealed node")
	// ErrPathInUse: Register was called for a path that already holds a device.
	ErrPathInUse = errors.New("an audit device is already enabled at this path: disable it first or choose another path")
	// ErrNotRegistered: no device is enabled at the path.
	ErrNotRegistered = errors.New("no audit device is enabled at this path")
)
