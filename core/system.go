package core

import (
	"context"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/cofferhq/coffer/core/acl"
	"github.com/cofferhq/coffer/logical"
)

// systemBackend serves the logical sys/ paths: mounts, auth methods,
// policies, audit devices, response wrapping and the UI preflight the vault
// CLI sends before every kv command. The sys endpoints that work while sealed
// (health, init, unseal, seal-status...) are served by httpapi directly.
type systemBackend struct{ c *Core }

func (s *systemBackend) ExistenceCheck(context.Context, *logical.Request) (bool, error) {
	return true, nil
}

func (s *systemBackend) HandleRequest(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	p := strings.TrimSuffix(req.Path, "/")
	op := req.Operation
	switch {
	case p == "mounts":
		return s.onlyRead(op, func() (*logical.Response, error) { return s.listMounts(SecretTable), nil })
	case strings.HasPrefix(p, "mounts/auth/"):
		return s.mountPath(ctx, req, AuthTable, strings.TrimPrefix(p, "mounts/auth/"))
	case strings.HasPrefix(p, "mounts/"):
		return s.mountPath(ctx, req, SecretTable, strings.TrimPrefix(p, "mounts/"))
	case p == "auth":
		return s.onlyRead(op, func() (*logical.Response, error) { return s.listMounts(AuthTable), nil })
	case strings.HasPrefix(p, "auth/"):
		return s.mountPath(ctx, req, AuthTable, strings.TrimPrefix(p, "auth/"))
	case p == "policies/acl" || p == "policy":
		if op != logical.ListOperation && op != logical.ReadOperation {
			return nil, logical.ErrUnsupportedOperation
		}
		names, err := s.c.policies.list(ctx)
		if err != nil {
			return nil, err
		}
		data := map[string]any{"keys": names}
		if p == "policy" {
			data["policies"] = names
		}
		return &logical.Response{Data: data}, nil
	case strings.HasPrefix(p, "policies/acl/"):
		return s.policy(ctx, req, strings.TrimPrefix(p, "policies/acl/"), "policy")
	case strings.HasPrefix(p, "policy/"):
		return s.policy(ctx, req, strings.TrimPrefix(p, "policy/"), "rules")
	case p == "audit":
		return s.onlyRead(op, func() (*logical.Response, error) { return s.listAudit(), nil })
	case strings.HasPrefix(p, "audit/"):
		return s.auditPath(ctx, req, strings.TrimPrefix(p, "audit/"))
	case strings.HasPrefix(p, "audit-hash/"):
		return s.auditHash(ctx, req, strings.TrimPrefix(p, "audit-hash/"))
	case p == "wrapping/unwrap":
		return s.unwrap(ctx, req)
	case p == "wrapping/lookup":
		return s.wrapLookup(ctx, req)
	case p == "wrapping/wrap":
		if op != logical.UpdateOperation && op != logical.CreateOperation {
			return nil, logical.ErrUnsupportedOperation
		}
		if len(req.Data) == 0 {
			return nil, logical.InvalidRequest("no data to wrap: send the JSON object to wrap as the body, with X-Vault-Wrap-TTL set")
		}
		return &logical.Response{Data: req.Data}, nil
	case p == "internal/ui/mounts":
		return s.onlyRead(op, func() (*logical.Response, error) { return s.uiMounts(), nil })
	case strings.HasPrefix(p, "internal/ui/mounts/"):
		return s.onlyRead(op, func() (*logical.Response, error) { return s.uiMount(strings.TrimPrefix(p, "internal/ui/mounts/")) })
	case strings.HasPrefix(p, "leases/"):
		return s.leases(ctx, req, strings.TrimPrefix(p, "leases/"))
	case p == "remount" || strings.HasPrefix(p, "remount/status/"):
		return s.remount(ctx, req, p)
	case strings.HasPrefix(p, "replication/"):
		return s.c.replication().HandleRequest(ctx, req, p)
	case p == "metrics":
		return s.onlyRead(op, func() (*logical.Response, error) { return metricsResponse(req) })
	case p == "capabilities-self" || p == "capabilities":
		return s.capabilities(ctx, req, p == "capabilities-self")
	}
	return nil, logical.Errorf(http.StatusNotFound, "no handler for route \"sys/%s\": check the path", req.Path)
}

func (s *systemBackend) onlyRead(op logical.Operation, f func() (*logical.Response, error)) (*logical.Response, error) {
	if op != logical.ReadOperation {
		return nil, logical.ErrUnsupportedOperation
	}
	return f()
}

// mountData renders a mount entry as Vault does in sys/mounts and sys/auth.
func mountData(e *MountEntry) map[string]any {
	var opts any
	if len(e.Options) > 0 {
		opts = e.Options
	}
	return map[string]any{
		"type":                    e.Type,
		"description":             e.Description,
		"accessor":                e.Accessor,
		"uuid":                    e.UUID,
		"local":                   e.Local,
		"seal_wrap":               e.SealWrap,
		"external_entropy_access": false,
		"options":                 opts,
		"plugin_version":          "",
		"running_plugin_version":  "",
		"running_sha256":          "",
		"deprecation_status":      "",
		"config": map[string]any{
			"default_lease_ttl": e.Config.DefaultLeaseTTL,
			"max_lease_ttl":     e.Config.MaxLeaseTTL,
			"force_no_cache":    false,
		},
	}
}

func (s *systemBackend) listMounts(t Table) *logical.Response {
	data := map[string]any{}
	for _, e := range s.c.Mounts(t) {
		data[e.Path] = mountData(e)
	}
	return &logical.Response{Data: data}
}

// mountPath serves sys/mounts/<path>[/tune] and sys/auth/<path>[/tune].
func (s *systemBackend) mountPath(ctx context.Context, req *logical.Request, t Table, p string) (*logical.Response, error) {
	if rest, ok := strings.CutSuffix(p, "/tune"); ok {
		return s.tune(ctx, req, t, rest)
	}
	path := normalizeMountPath(p)
	rp := path
	if t == AuthTable {
		rp = "auth/" + path
	}
	switch req.Operation {
	case logical.ReadOperation:
		for _, e := range s.c.Mounts(t) {
			if e.Path == path {
				return &logical.Response{Data: mountData(e)}, nil
			}
		}
		return nil, logical.Errorf(http.StatusBadRequest, "no %s mounted at %q", tableNoun(t), rp)
	case logical.CreateOperation, logical.UpdateOperation:
		ef, err := readEnableFields(req.Data)
		if err != nil {
			return nil, err
		}
		e := &MountEntry{Table: t, Path: path, Type: ef.Type, Description: ef.Description, Local: ef.Local, Options: ef.Options}
		if e.SealWrap, err = fieldBool(req.Data, "seal_wrap"); err != nil {
			return nil, err
		}
		if e.Type == "" {
			// vault/api's EnableAuth with the older "plugin_name" field.
			if pn, _ := fieldString(req.Data, "plugin_name"); pn != "" {
				e.Type = pn
			}
		}
		cfg, err := parseMountConfig(req.Data["config"])
		if err != nil {
			return nil, err
		}
		e.Config = MountConfig{DefaultLeaseTTL: max(cfg.DefaultLeaseTTL, 0), MaxLeaseTTL: max(cfg.MaxLeaseTTL, 0)}
		return nil, s.c.EnableMount(ctx, e)
	case logical.DeleteOperation:
		return nil, s.c.DisableMount(ctx, t, path)
	}
	return nil, logical.ErrUnsupportedOperation
}

func (s *systemBackend) tune(ctx context.Context, req *logical.Request, t Table, p string) (*logical.Response, error) {
	rp := normalizeMountPath(p)
	if t == AuthTable {
		rp = "auth/" + rp
	}
	switch req.Operation {
	case logical.ReadOperation:
		e := s.c.MountFor(rp)
		if e == nil || e.RoutePath() != rp {
			return nil, logical.Errorf(http.StatusBadRequest, "no mount at %q to read the tuning of", rp)
		}
		data := map[string]any{
			"default_lease_ttl": e.Config.DefaultLeaseTTL,
			"max_lease_ttl":     e.Config.MaxLeaseTTL,
			"force_no_cache":    false,
			"description":       e.Description,
		}
		if len(e.Options) > 0 {
			data["options"] = e.Options
		}
		return &logical.Response{Data: data}, nil
	case logical.CreateOperation, logical.UpdateOperation:
		var desc *string
		if v, ok := req.Data["description"]; ok {
			d, isStr := v.(string)
			if !isStr {
				return nil, logical.InvalidRequest("field \"description\" must be a string")
			}
			desc = &d
		}
		cfg, err := parseMountConfig(req.Data)
		if err != nil {
			return nil, err
		}
		opts, err := fieldStringMap(req.Data, "options")
		if err != nil {
			return nil, err
		}
		return nil, s.c.TuneMount(ctx, rp, desc, &cfg, opts)
	}
	return nil, logical.ErrUnsupportedOperation
}

// parseMountConfig reads default_lease_ttl / max_lease_ttl as seconds or
// duration strings; an absent field is -1 (unchanged).
func parseMountConfig(raw any) (MountConfig, error) {
	cfg := MountConfig{DefaultLeaseTTL: -1, MaxLeaseTTL: -1}
	if raw == nil {
		return cfg, nil
	}
	m, ok := raw.(map[string]any)
	if !ok {
		return cfg, logical.InvalidRequest("field \"config\" must be an object")
	}
	for name, dst := range map[string]*int64{"default_lease_ttl": &cfg.DefaultLeaseTTL, "max_lease_ttl": &cfg.MaxLeaseTTL} {
		v, ok := m[name]
		if !ok || v == nil || v == "" {
			continue
		}
		d, err := logical.ParseDuration(name, v)
		if err != nil {
			return cfg, err
		}
		*dst = int64(d / time.Second)
	}
	return cfg, nil
}

func (s *systemBackend) policy(ctx context.Context, req *logical.Request, name, textField string) (*logical.Response, error) {
	switch req.Operation {
	case logical.ReadOperation:
		text, ok, err := s.c.policies.getRaw(ctx, name)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, logical.ErrNotFound
		}
		return &logical.Response{Data: map[string]any{"name": acl.NormalizeName(name), textField: text}}, nil
	case logical.CreateOperation, logical.UpdateOperation:
		if err := s.c.refuseOnSecondary(false); err != nil {
			return nil, err
		}
		text, err := fieldString(req.Data, "policy")
		if err != nil {
			return nil, err
		}
		if text == "" {
			if text, err = fieldString(req.Data, "rules"); err != nil {
				return nil, err
			}
		}
		return nil, s.c.policies.put(ctx, name, text)
	case logical.DeleteOperation:
		if err := s.c.refuseOnSecondary(false); err != nil {
			return nil, err
		}
		return nil, s.c.policies.delete(ctx, name)
	}
	return nil, logical.ErrUnsupportedOperation
}

func (s *systemBackend) uiMounts() *logical.Response {
	secret, auth := map[string]any{}, map[string]any{}
	for _, e := range s.c.Mounts(SecretTable) {
		secret[e.Path] = mountData(e)
	}
	for _, e := range s.c.Mounts(AuthTable) {
		auth[e.Path] = mountData(e)
	}
	return &logical.Response{Data: map[string]any{"secret": secret, "auth": auth}}
}

// uiMount answers the vault CLI's kv preflight: which mount serves path,
// and its options (the kv version).
func (s *systemBackend) uiMount(p string) (*logical.Response, error) {
	e := s.c.MountFor(p)
	if e == nil || e.builtin {
		return nil, logical.Errorf(http.StatusBadRequest, "no secrets engine is mounted at or above %q: enable one with sys/mounts (coffer secrets enable)", p)
	}
	d := mountData(e)
	d["path"] = e.RoutePath()
	return &logical.Response{Data: d}, nil
}

func (s *systemBackend) capabilities(ctx context.Context, req *logical.Request, self bool) (*logical.Response, error) {
	te := caller(ctx)
	if !self {
		tok, err := fieldString(req.Data, "token")
		if err != nil {
			return nil, err
		}
		if te, err = s.c.tokens.Lookup(ctx, tok); err != nil {
			return nil, err
		}
	}
	if te == nil {
		return nil, logical.InvalidRequest("token not found: pass a valid token")
	}
	paths, err := fieldStrings(req.Data, "paths")
	if err != nil {
		return nil, err
	}
	if p, _ := fieldString(req.Data, "path"); p != "" {
		paths = append(paths, p)
	}
	if len(paths) == 0 {
		return nil, logical.InvalidRequest("missing \"paths\": the paths to report capabilities for")
	}
	a, err := s.c.policies.aclFor(ctx, te.Policies)
	if err != nil {
		return nil, err
	}
	data := map[string]any{}
	var all []string
	for _, p := range paths {
		var caps []string
		if a.IsRoot() {
			caps = []string{"root"}
		} else {
			caps = a.Capabilities(strings.TrimPrefix(p, "/")).Strings()
			if len(caps) == 0 {
				caps = []string{"deny"}
			}
		}
		data[p] = caps
		all = caps
	}
	if len(paths) == 1 {
		data["capabilities"] = all
	}
	return &logical.Response{Data: data}, nil
}

// enableFields are what enabling a secrets engine, an auth method or an audit
// device takes in common.
type enableFields struct {
	Type, Description string
	Local             bool
	Options           map[string]string
}

func readEnableFields(d map[string]any) (enableFields, error) {
	var ef enableFields
	var err error
	if ef.Type, err = fieldString(d, "type"); err != nil {
		return ef, err
	}
	if ef.Description, err = fieldString(d, "description"); err != nil {
		return ef, err
	}
	if ef.Local, err = fieldBool(d, "local"); err != nil {
		return ef, err
	}
	ef.Options, err = fieldStringMap(d, "options")
	return ef, err
}

// field helpers: the logical package's typed reads, without the "given" flag.

func fieldString(d map[string]any, name string) (string, error) {
	v, _, err := logical.FieldString(d, name)
	return v, err
}

func fieldBool(d map[string]any, name string) (bool, error) {
	v, _, err := logical.FieldBool(d, name)
	return v, err
}

func fieldStrings(d map[string]any, name string) ([]string, error) {
	v, _, err := logical.FieldStrings(d, name)
	return v, err
}

func fieldStringMap(d map[string]any, name string) (map[string]string, error) {
	v, given, err := logical.FieldStringMap(d, name)
	if !given || v == nil {
		v = map[string]string{}
	}
	return v, err
}

func sortStrings(s []string) { sort.Strings(s) }
