package audit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/cofferhq/coffer/internal/clock"

	"github.com/rs/zerolog"
)

// Broker fans every audit entry out to the enabled devices.
//
// The rule, Vault's: while at least one device is enabled, a request is
// served only if at least one device logged it. One failing device out of
// several is reported in the server log and tolerated; when every device
// fails, LogRequest and LogResponse return ErrAuditFailed and core refuses
// the request. With no device enabled, nothing is logged and nothing fails.
//
// Devices are called one after the other on the caller's goroutine, in path
// order. A Broker is safe for concurrent use.
type Broker struct {
	logger zerolog.Logger

	mu      sync.RWMutex
	devices []*registered // sorted by path, replaced (never modified) on change
	closed  bool
}

type registered struct {
	path  string
	dev   Device
	local bool
}

// NewBroker returns a Broker with no device, logging device failures to logger.
func NewBroker(logger zerolog.Logger) *Broker {
	return &Broker{logger: logger.With().Str("component", "audit").Logger()}
}

// normalizePath gives a device path Vault's form: no leading slash, one
// trailing slash ("file/").
func normalizePath(path string) string {
	path = strings.Trim(strings.TrimSpace(path), "/")
	if path == "" {
		return ""
	}
	return path + "/"
}

// Register enables d at path ("file" and "file/" are the same path). local
// marks a device enabled with -local, which replication does not copy to
// other clusters; the Broker only records it. It fails with ErrPathInUse if a
// device is already at path; d is then not registered and not closed.
func (b *Broker) Register(path string, d Device, local bool) error {
	p := normalizePath(path)
	if p == "" {
		return fmt.Errorf("audit: empty device path: give the path the device is enabled at, such as \"file/\"")
	}
	if d == nil {
		return fmt.Errorf("audit: nil device for %q (a bug in the caller)", p)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrBrokerClosed
	}
	i, found := slices.BinarySearchFunc(b.devices, p, func(r *registered, p string) int { return strings.Compare(r.path, p) })
	if found {
		return fmt.Errorf("%w: %q", ErrPathInUse, p)
	}
	b.devices = slices.Insert(slices.Clone(b.devices), i, &registered{path: p, dev: d, local: local})
	return nil
}

// Deregister disables the device at path and closes it. The device is
// removed even when Close fails; the error is then reported.
func (b *Broker) Deregister(path string) error {
	p := normalizePath(path)
	b.mu.Lock()
	i := slices.IndexFunc(b.devices, func(r *registered) bool { return r.path == p })
	if i < 0 {
		b.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrNotRegistered, p)
	}
	r := b.devices[i]
	b.devices = slices.Delete(slices.Clone(b.devices), i, i+1)
	b.mu.Unlock()
	if err := r.dev.Close(); err != nil {
		return fmt.Errorf("disable audit device %q: %w", p, err)
	}
	return nil
}

// Devices returns the paths of the enabled devices, sorted.
func (b *Broker) Devices() []string {
	b.mu.RLock()
	defer b.mu.RUnlock()
	out := make([]string, len(b.devices))
	for i, r := range b.devices {
		out[i] = r.path
	}
	return out
}

// IsLocal reports whether the device at path was registered as local.
func (b *Broker) IsLocal(path string) bool {
	r := b.lookup(path)
	return r != nil && r.local
}

// Enabled reports whether at least one device is enabled: core then must not
// serve a request without a successful LogRequest.
func (b *Broker) Enabled() bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return len(b.devices) > 0
}

// Hash returns value hashed the way the device at path writes it, for
// sys/audit-hash/<path>.
func (b *Broker) Hash(path, value string) (string, error) {
	r := b.lookup(path)
	if r == nil {
		return "", fmt.Errorf("%w: %q", ErrNotRegistered, normalizePath(path))
	}
	return r.dev.Hash(value), nil
}

func (b *Broker) lookup(path string) *registered {
	p := normalizePath(path)
	b.mu.RLock()
	defer b.mu.RUnlock()
	for _, r := range b.devices {
		if r.path == p {
			return r
		}
	}
	return nil
}

// LogRequest writes in's request line to every device. It returns
// ErrAuditFailed when devices are enabled and none could log: core must then
// refuse the request.
func (b *Broker) LogRequest(ctx context.Context, in *LogInput) error {
	return b.log(ctx, RequestType, in)
}

// LogResponse writes in's response line to every device. It returns
// ErrAuditFailed when devices are enabled and none could log: core must then
// answer with an error rather than the response.
func (b *Broker) LogResponse(ctx context.Context, in *LogInput) error {
	return b.log(ctx, ResponseType, in)
}

func (b *Broker) log(ctx context.Context, t EntryType, in *LogInput) error {
	if in == nil {
		return fmt.Errorf("audit: nil log input (a bug in the caller)")
	}
	b.mu.RLock()
	devices, closed := b.devices, b.closed
	b.mu.RUnlock()
	if closed {
		return ErrBrokerClosed
	}
	if len(devices) == 0 {
		return nil
	}
	stamped := *in
	if stamped.Time.IsZero() {
		stamped.Time = clock.Now()
	}
	ok := 0
	for _, r := range devices {
		var err error
		if t == RequestType {
			err = r.dev.LogRequest(ctx, &stamped)
		} else {
			err = r.dev.LogResponse(ctx, &stamped)
		}
		if err != nil {
			b.logger.Error().Err(err).Str("device", r.path).Str("entry", string(t)).Str("request_id", requestID(in)).
				Msg("audit device could not log; fix it, then send SIGHUP to reopen its file")
			continue
		}
		ok++
	}
	if ok == 0 {
		b.logger.Error().Str("entry", string(t)).Str("request_id", requestID(in)).Int("devices", len(devices)).
			Msg("no audit device could log: the request is refused")
		return ErrAuditFailed
	}
	return nil
}

func requestID(in *LogInput) string {
	if in.Request == nil {
		return ""
	}
	return in.Request.ID
}

// Reload reopens every device's file (on SIGHUP, after log rotation). It
// tries every device and returns their errors joined.
func (b *Broker) Reload() error {
	b.mu.RLock()
	devices, closed := b.devices, b.closed
	b.mu.RUnlock()
	if closed {
		return ErrBrokerClosed
	}
	var errs []error
	for _, r := range devices {
		if err := r.dev.Reload(); err != nil {
			errs = append(errs, fmt.Errorf("reload audit device %q: %w", r.path, err))
		}
	}
	return errors.Join(errs...)
}

// Close closes every device. Afterwards LogRequest and LogResponse fail with
// ErrBrokerClosed, so nothing is served unaudited during shutdown. Close is
// idempotent.
func (b *Broker) Close() error {
	b.mu.Lock()
	devices := b.devices
	b.devices, b.closed = nil, true
	b.mu.Unlock()
	var errs []error
	for _, r := range devices {
		if err := r.dev.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close audit device %q: %w", r.path, err))
		}
	}
	return errors.Join(errs...)
}
