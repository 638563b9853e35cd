package core

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/cofferhq/coffer/audit"
	"github.com/cofferhq/coffer/core/tokens"
	"github.com/cofferhq/coffer/logical"
	"github.com/cofferhq/coffer/storage"
)

// Audit device tables, stored under the barrier:
//
//	core/audit         {"v": 1, "entries": [auditEntry...]}   replicated devices
//	core/local-audit   the same for devices enabled with local=true
//	core/audit-salt    32 random bytes: the HMAC key of every device (replicated,
//	                   so sys/audit-hash agrees on every cluster)
const (
	auditTablePath      = "core/audit"
	localAuditTablePath = "core/local-audit"
	auditSaltPath       = "core/audit-salt"
	auditTableVersion   = 1
)

type auditEntry struct {
	Path        string            `json:"path"`
	Type        string            `json:"type"`
	Description string            `json:"description"`
	Options     map[string]string `json:"options"`
	Local       bool              `json:"local"`
}

type auditTable struct {
	V       int           `json:"v"`
	Entries []*auditEntry `json:"entries"`
}

func (c *Core) auditSalt(ctx context.Context) ([]byte, error) {
	e, err := c.barrier.Get(ctx, auditSaltPath)
	if err != nil {
		return nil, err
	}
	if e != nil {
		return e.Value, nil
	}
	if c.standby.Load() {
		// A standby writes nothing: the active node creates the salt when
		// it comes up, before any audit device can exist.
		return nil, nil
	}
	salt, err := audit.NewSalt()
	if err != nil {
		return nil, err
	}
	return salt, c.barrier.Put(ctx, &storage.Entry{Key: auditSaltPath, Value: salt})
}

func newAuditDevice(e *auditEntry, salt []byte) (audit.Device, error) {
	switch e.Type {
	case "file":
		return audit.NewFile(e.Path, e.Options, salt)
	}
	return nil, logical.InvalidRequest("unknown audit device type %q: supported is file", e.Type)
}

// loadAudit opens every stored audit device. A device that cannot be opened
// is logged; requests are then refused if no device at all can log.
func (c *Core) loadAudit(ctx context.Context) error {
	salt, err := c.auditSalt(ctx)
	if err != nil {
		return fmt.Errorf("load audit salt: %w", err)
	}
	c.auditMu.Lock()
	defer c.auditMu.Unlock()
	c.auditSaltBytes = salt
	c.audit = audit.NewBroker(c.logger.With().Str("component", "audit").Logger())
	c.auditEntries = map[string]*auditEntry{}
	for _, p := range []string{auditTablePath, localAuditTablePath} {
		var at auditTable
		ok, err := getJSON(ctx, c.barrier, p, &at)
		if err != nil {
			return fmt.Errorf("load audit table %s: %w", p, err)
		}
		if !ok {
			continue
		}
		if salt == nil && len(at.Entries) > 0 {
			return fmt.Errorf("load audit table %s: %d devices but no %s in storage: the active node writes it; restore it or disable the devices", p, len(at.Entries), auditSaltPath)
		}
		for _, e := range at.Entries {
			c.auditEntries[e.Path] = e
			d, err := newAuditDevice(e, salt)
			if err != nil {
				c.logger.Error().Err(err).Str("path", e.Path).Msg("audit device could not be opened")
				d = failingDevice{err: err}
			}
			if err := c.audit.Register(e.Path, d, e.Local); err != nil {
				_ = d.Close()
				return fmt.Errorf("register audit device %s: %w", e.Path, err)
			}
		}
	}
	return nil
}

// failingDevice stands for a configured device that could not be opened, so
// that the broker still counts it and refuses requests when none can log.
type failingDevice struct{ err error }

func (f failingDevice) LogRequest(context.Context, *audit.LogInput) error  { return f.err }
func (f failingDevice) LogResponse(context.Context, *audit.LogInput) error { return f.err }
func (f failingDevice) Hash(string) string                                 { return "" }
func (f failingDevice) Reload() error                                      { return f.err }
func (f failingDevice) Close() error                                       { return nil }

func (c *Core) persistAudit(ctx context.Context, local bool) error {
	at := auditTable{V: auditTableVersion, Entries: []*auditEntry{}}
	for _, e := range c.auditEntries {
		if e.Local == local {
			at.Entries = append(at.Entries, e)
		}
	}
	sort.Slice(at.Entries, func(i, j int) bool { return at.Entries[i].Path < at.Entries[j].Path })
	p := auditTablePath
	if local {
		p = localAuditTablePath
	}
	return putJSON(ctx, c.barrier, p, at)
}

// EnableAudit opens and registers an audit device and persists it.
func (c *Core) EnableAudit(ctx context.Context, e *auditEntry) error {
	c.auditMu.Lock()
	defer c.auditMu.Unlock()
	e.Path = normalizeMountPath(e.Path)
	if e.Path == "" {
		return logical.InvalidRequest("an audit device path is required")
	}
	if err := c.refuseOnSecondary(e.Local); err != nil {
		return err
	}
	if _, exists := c.auditEntries[e.Path]; exists {
		return logical.InvalidRequest("path %q is already in use: disable that audit device first", e.Path)
	}
	d, err := newAuditDevice(e, c.auditSaltBytes)
	if err != nil {
		return fmt.Errorf("enable audit device %q: %w", e.Path, err)
	}
	// Like Vault, prove the device can write before enabling it: a device
	// that cannot log would refuse every later request.
	probe := &logical.Request{ID: "audit-enable-test", Operation: logical.UpdateOperation, MountPoint: "sys/", Path: "audit/test", Data: map[string]any{}}
	in := &audit.LogInput{Request: probe}
	err = d.LogRequest(ctx, in)
	if err == nil {
		err = d.LogResponse(ctx, in)
	}
	if err != nil {
		_ = d.Close()
		return logical.InvalidRequest("audit device %q cannot write its log: %v; check file_path, its directory and the free space", e.Path, err)
	}
	c.auditEntries[e.Path] = e
	if err := c.persistAudit(ctx, e.Local); err != nil {
		delete(c.auditEntries, e.Path)
		_ = d.Close()
		return fmt.Errorf("persist audit table: %w", err)
	}
	if err := c.audit.Register(e.Path, d, e.Local); err != nil {
		delete(c.auditEntries, e.Path)
		_ = d.Close()
		_ = c.persistAudit(ctx, e.Local)
		return fmt.Errorf("register audit device %s: %w", e.Path, err)
	}
	c.logger.Info().Str("path", e.Path).Str("type", e.Type).Msg("enabled audit device")
	return nil
}

// DisableAudit closes and forgets an audit device.
func (c *Core) DisableAudit(ctx context.Context, path string) error {
	c.auditMu.Lock()
	defer c.auditMu.Unlock()
	path = normalizeMountPath(path)
	e, ok := c.auditEntries[path]
	if !ok {
		return logical.Errorf(http.StatusBadRequest, "no audit device at %q: list them with sys/audit", path)
	}
	if err := c.refuseOnSecondary(e.Local); err != nil {
		return err
	}
	delete(c.auditEntries, path)
	if err := c.persistAudit(ctx, e.Local); err != nil {
		c.auditEntries[path] = e
		return fmt.Errorf("persist audit table: %w", err)
	}
	return c.audit.Deregister(path)
}

func (c *Core) broker() *audit.Broker {
	c.auditMu.RLock()
	defer c.auditMu.RUnlock()
	return c.audit
}

func auditCaller(te *tokens.Entry) *audit.Caller {
	if te == nil {
		return nil
	}
	return &audit.Caller{
		ClientToken:    te.ID,
		Accessor:       te.Accessor,
		DisplayName:    te.DisplayName,
		Policies:       te.Policies,
		TokenPolicies:  te.Policies,
		Metadata:       te.Meta,
		TokenType:      te.Type,
		TokenTTL:       te.TTL,
		TokenIssueTime: te.CreationTime,
		RemainingUses:  te.NumUses,
	}
}

func (c *Core) auditRequest(ctx context.Context, req *logical.Request, te *tokens.Entry) error {
	b := c.broker()
	if b == nil {
		return nil
	}
	return b.LogRequest(ctx, &audit.LogInput{Request: req, Caller: auditCaller(te)})
}

// auditDenied logs a request refused before it reached a backend, and the
// refusal. A logging failure is itself logged: the client gets the refusal.
func (c *Core) auditDenied(ctx context.Context, req *logical.Request, te *tokens.Entry, rerr error) {
	if err := c.auditRequest(ctx, req, te); err != nil {
		c.logger.Warn().Err(err).Msg("audit of a denied request failed")
		return
	}
	if err := c.auditResponse(ctx, req, te, nil, rerr); err != nil {
		c.logger.Warn().Err(err).Msg("audit of a denied request failed")
	}
}

func (c *Core) auditResponse(ctx context.Context, req *logical.Request, te *tokens.Entry, resp *Response, rerr error) error {
	b := c.broker()
	if b == nil {
		return nil
	}
	in := &audit.LogInput{Request: req, Caller: auditCaller(te), Err: rerr}
	if resp != nil {
		in.Response = resp.Response
		if wi := resp.WrapInfo; wi != nil {
			in.WrapInfo = &audit.WrapInfo{Token: wi.Token, Accessor: wi.Accessor, TTL: time.Duration(wi.TTL) * time.Second, CreationTime: wi.CreationTime, CreationPath: wi.CreationPath, WrappedAccessor: wi.WrappedAccessor}
		}
	}
	return b.LogResponse(ctx, in)
}

func (s *systemBackend) listAudit() *logical.Response {
	s.c.auditMu.RLock()
	defer s.c.auditMu.RUnlock()
	data := map[string]any{}
	for p, e := range s.c.auditEntries {
		opts := e.Options
		if opts == nil {
			opts = map[string]string{}
		}
		data[p] = map[string]any{"type": e.Type, "description": e.Description, "options": opts, "local": e.Local, "path": p}
	}
	return &logical.Response{Data: data}
}

func (s *systemBackend) auditPath(ctx context.Context, req *logical.Request, p string) (*logical.Response, error) {
	switch req.Operation {
	case logical.CreateOperation, logical.UpdateOperation:
		ef, err := readEnableFields(req.Data)
		if err != nil {
			return nil, err
		}
		e := &auditEntry{Path: p, Type: ef.Type, Description: ef.Description, Local: ef.Local, Options: ef.Options}
		if e.Type == "" {
			return nil, logical.InvalidRequest("missing \"type\": the audit device type, e.g. file")
		}
		return nil, s.c.EnableAudit(ctx, e)
	case logical.DeleteOperation:
		return nil, s.c.DisableAudit(ctx, p)
	}
	return nil, logical.ErrUnsupportedOperation
}

func (s *systemBackend) auditHash(ctx context.Context, req *logical.Request, p string) (*logical.Response, error) {
	if req.Operation != logical.UpdateOperation && req.Operation != logical.CreateOperation {
		return nil, logical.ErrUnsupportedOperation
	}
	s.c.auditMu.RLock()
	_, ok := s.c.auditEntries[normalizeMountPath(p)]
	salt := s.c.auditSaltBytes
	s.c.auditMu.RUnlock()
	if !ok {
		return nil, logical.Errorf(http.StatusBadRequest, "no audit device at %q: list them with sys/audit", strings.Trim(p, "/"))
	}
	in, err := fieldString(req.Data, "input")
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]any{"hash": audit.HashString(salt, in)}}, nil
}
