package core

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/cofferhq/coffer/logical"
	"github.com/cofferhq/coffer/storage"
	"github.com/google/uuid"
)

// Mount tables, stored under the barrier. Each is JSON:
//
//	{"v": 1, "entries": [MountEntry, ...]}
//
// Replicated entries and local entries live in separate records so that the
// WAL classifies them by key alone:
//
//	core/mounts          secrets engines (replicated)
//	core/local-mounts    secrets engines enabled with local=true (local)
//	core/auth            auth methods (replicated)
//	core/local-auth      auth methods enabled with local=true (local)
//
// A secrets engine's data lives under logical/<uuid>/, an auth method's under
// auth/<uuid>/; the class of those keys follows the entry's Local flag.
const (
	mountTableVersion   = 1
	mountsPath          = "core/mounts"
	localMountsPath     = "core/local-mounts"
	authPath            = "core/auth"
	localAuthPath       = "core/local-auth"
	secretStoragePrefix = "logical/"
	authStoragePrefix   = "auth/"
)

// Table names a mount table.
type Table string

// The two mount tables.
const (
	SecretTable Table = "mounts"
	AuthTable   Table = "auth"
)

// MountConfig is a mount's tunable configuration, TTLs in seconds.
type MountConfig struct {
	DefaultLeaseTTL int64 `json:"default_lease_ttl"`
	MaxLeaseTTL     int64 `json:"max_lease_ttl"`
}

// MountEntry is one enabled secrets engine or auth method.
type MountEntry struct {
	Table       Table             `json:"table"`
	Path        string            `json:"path"` // "secret/", "userpass/": relative to its table's root
	Type        string            `json:"type"`
	Description string            `json:"description"`
	UUID        string            `json:"uuid"`
	Accessor    string            `json:"accessor"`
	Local       bool              `json:"local"`
	SealWrap    bool              `json:"seal_wrap"`
	Options     map[string]string `json:"options"`
	Config      MountConfig       `json:"config"`
	// builtin marks the system and token backends: listed, never stored, never removed.
	builtin bool
}

// RoutePath is where requests reach the mount: "secret/" or "auth/userpass/".
func (m *MountEntry) RoutePath() string {
	if m.Table == AuthTable {
		return "auth/" + m.Path
	}
	return m.Path
}

// StoragePrefix is where the mount's data lives under the barrier.
func (m *MountEntry) StoragePrefix() string {
	if m.Table == AuthTable {
		return authStoragePrefix + m.UUID + "/"
	}
	return secretStoragePrefix + m.UUID + "/"
}

func (m *MountEntry) clone() *MountEntry {
	c := *m
	c.Options = make(map[string]string, len(m.Options))
	for k, v := range m.Options {
		c.Options[k] = v
	}
	return &c
}

type mountTable struct {
	V       int           `json:"v"`
	Entries []*MountEntry `json:"entries"`
}

// mountedBackend is a live mount: its entry and its backend.
type mountedBackend struct {
	entry   *MountEntry
	backend logical.Backend
	storage logical.Storage
}

// router maps request paths to mounts by longest prefix.
type router struct {
	mu     sync.RWMutex
	routes map[string]*mountedBackend // keyed by RoutePath
	// localPrefixes are the storage prefixes of local mounts and the local
	// prefixes of ClusterLocal backends, for the WAL classifier.
	localPrefixes map[string]bool
}

func newRouter() *router {
	return &router{routes: map[string]*mountedBackend{}, localPrefixes: map[string]bool{}}
}

// match returns the mount serving path and the path relative to it.
func (r *router) match(path string) (*mountedBackend, string) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	best := ""
	var mb *mountedBackend
	for p, m := range r.routes {
		if (strings.HasPrefix(path, p) || path+"/" == p) && len(p) > len(best) {
			best, mb = p, m
		}
	}
	if mb == nil {
		return nil, ""
	}
	if len(path) < len(best) {
		return mb, ""
	}
	return mb, path[len(best):]
}

func (r *router) add(mb *mountedBackend) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.routes[mb.entry.RoutePath()] = mb
	for _, p := range localPrefixesOf(mb) {
		r.localPrefixes[p] = true
	}
}

func (r *router) remove(routePath string) *mountedBackend {
	r.mu.Lock()
	defer r.mu.Unlock()
	mb := r.routes[routePath]
	delete(r.routes, routePath)
	if mb != nil {
		for _, p := range localPrefixesOf(mb) {
			delete(r.localPrefixes, p)
		}
	}
	return mb
}

func (r *router) isLocalKey(key string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for p := range r.localPrefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// mountOfKey is the route path ("secret/", "auth/userpass/") of the mount
// whose data key is, false for a key outside every mount's data.
func (r *router) mountOfKey(key string) (string, bool) {
	if !strings.HasPrefix(key, secretStoragePrefix) && !strings.HasPrefix(key, authStoragePrefix) {
		return "", false
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	for rp, mb := range r.routes {
		if !mb.entry.builtin && strings.HasPrefix(key, mb.entry.StoragePrefix()) {
			return rp, true
		}
	}
	return "", false
}

// entries lists the mounts of one table, sorted by path.
func (r *router) entries(t Table) []*MountEntry {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []*MountEntry
	for _, mb := range r.routes {
		if mb.entry.Table == t {
			out = append(out, mb.entry.clone())
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

func (r *router) clear() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.routes = map[string]*mountedBackend{}
	r.localPrefixes = map[string]bool{}
}

// normalizeMountPath trims slashes and adds the trailing one.
func normalizeMountPath(p string) string {
	p = strings.Trim(strings.TrimSpace(p), "/")
	if p == "" {
		return ""
	}
	return p + "/"
}

// reservedSecretPaths can never be used by a secrets engine.
var reservedSecretPaths = []string{"sys/", "auth/", "cubbyhole/", "identity/", "wal/", "merkle/", "core/"}

// mountTypeAlias maps Vault's type aliases to a type and options.
func mountTypeAlias(t string, opts map[string]string) (string, map[string]string) {
	if opts == nil {
		opts = map[string]string{}
	}
	switch t {
	case "kv-v2":
		opts["version"] = "2"
		return "kv", opts
	case "kv-v1":
		opts["version"] = "1"
		return "kv", opts
	}
	return t, opts
}

// loadMounts reads both tables of secrets engines and auth methods and
// mounts every entry. Called on unseal.
func (c *Core) loadMounts(ctx context.Context) error {
	c.router.clear()
	c.mountBuiltins()
	for _, p := range []string{mountsPath, localMountsPath, authPath, localAuthPath} {
		var mt mountTable
		ok, err := getJSON(ctx, c.barrier, p, &mt)
		if err != nil {
			return fmt.Errorf("load mount table %s: %w", p, err)
		}
		if !ok {
			continue
		}
		if mt.V != mountTableVersion {
			return fmt.Errorf("mount table %s has version %d; this coffer reads version %d: upgrade coffer", p, mt.V, mountTableVersion)
		}
		for _, e := range mt.Entries {
			if err := c.mountEntry(ctx, e); err != nil {
				c.logger.Error().Err(err).Str("path", e.RoutePath()).Msg("mount could not be loaded; requests to it fail until it is fixed")
			}
		}
	}
	return nil
}

// mountEntry builds the backend for e and adds it to the router.
func (c *Core) mountEntry(ctx context.Context, e *MountEntry) error {
	factory, ok := c.factories[e.Table][e.Type]
	if !ok {
		return logical.InvalidRequest("unknown %s type %q: supported are %s", tableNoun(e.Table), e.Type, strings.Join(c.factoryNames(e.Table), ", "))
	}
	view := logical.NewView(c.barrier, e.StoragePrefix())
	b, err := factory(ctx, logical.BackendConfig{Storage: view, Options: e.Options, MountPoint: e.RoutePath()})
	if err != nil {
		return logical.InvalidRequest("%s %q: %v", tableNoun(e.Table), e.RoutePath(), err)
	}
	c.router.add(&mountedBackend{entry: e, backend: b, storage: view})
	return nil
}

func tableNoun(t Table) string {
	if t == AuthTable {
		return "auth method"
	}
	return "secrets engine"
}

func (c *Core) factoryNames(t Table) []string {
	var out []string
	for n := range c.factories[t] {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// persistTable writes the stored table (replicated or local) that holds e's kind.
func (c *Core) persistTable(ctx context.Context, t Table, local bool) error {
	path := tablePath(t, local)
	mt := mountTable{V: mountTableVersion, Entries: []*MountEntry{}}
	for _, e := range c.router.entries(t) {
		if !e.builtin && e.Local == local {
			mt.Entries = append(mt.Entries, e)
		}
	}
	return putJSON(ctx, c.barrier, path, mt)
}

// tablePath is the record holding table t's replicated or local entries.
func tablePath(t Table, local bool) string {
	switch {
	case t == AuthTable && local:
		return localAuthPath
	case t == AuthTable:
		return authPath
	case local:
		return localMountsPath
	}
	return mountsPath
}

// EnableMount mounts a secrets engine (table SecretTable) or an auth method
// (AuthTable) at e.Path and persists the table.
func (c *Core) EnableMount(ctx context.Context, e *MountEntry) error {
	c.mountMu.Lock()
	defer c.mountMu.Unlock()
	e.Path = normalizeMountPath(e.Path)
	if e.Path == "" {
		return logical.InvalidRequest("a mount path is required")
	}
	e.Type, e.Options = mountTypeAlias(e.Type, e.Options)
	if e.Type == "" {
		return logical.InvalidRequest("a type is required: e.g. kv, or userpass for an auth method")
	}
	if err := c.refuseOnSecondary(e.Local); err != nil {
		return err
	}
	if err := c.freePath(e.Table, e.Path, ""); err != nil {
		return err
	}
	rp := e.RoutePath()
	e.UUID = uuid.NewString()
	e.Accessor = e.Type + "_" + e.UUID[:8]
	if err := c.mountEntry(ctx, e); err != nil {
		return err
	}
	if err := c.persistTable(ctx, e.Table, e.Local); err != nil {
		c.router.remove(rp)
		return fmt.Errorf("persist mount table: %w", err)
	}
	c.logger.Info().Str("path", rp).Str("type", e.Type).Bool("local", e.Local).Msg("enabled " + tableNoun(e.Table))
	return nil
}

// freePath checks that a mount of table t may take path (its path within
// the table): not reserved, not the built-in token method, and not at,
// above or below a mount in use other than the one at route path except.
func (c *Core) freePath(t Table, path, except string) error {
	if t == SecretTable {
		for _, r := range reservedSecretPaths {
			if strings.HasPrefix(path, r) || strings.HasPrefix(r, path) {
				return logical.InvalidRequest("cannot mount at %q: the path %q is reserved", path, r)
			}
		}
	}
	if t == AuthTable && path == "token/" {
		return logical.InvalidRequest("cannot mount at \"auth/token/\": the token auth method is built in")
	}
	rp := (&MountEntry{Table: t, Path: path}).RoutePath()
	for _, existing := range c.router.entries(t) {
		if ep := existing.RoutePath(); ep != except && (strings.HasPrefix(rp, ep) || strings.HasPrefix(ep, rp)) {
			return logical.InvalidRequest("path is already in use at %s: disable it first or choose another path", ep)
		}
	}
	return nil
}

// DisableMount unmounts path and deletes all of its data.
func (c *Core) DisableMount(ctx context.Context, t Table, path string) error {
	c.mountMu.Lock()
	defer c.mountMu.Unlock()
	path = normalizeMountPath(path)
	rp := path
	if t == AuthTable {
		rp = "auth/" + path
	}
	c.router.mu.RLock()
	mb := c.router.routes[rp]
	c.router.mu.RUnlock()
	if mb == nil || mb.entry.Table != t {
		// As Vault: disabling what is not there succeeds and reveals nothing.
		return nil
	}
	if mb.entry.builtin {
		return logical.InvalidRequest("%q is built in and cannot be disabled", rp)
	}
	if err := c.refuseOnSecondary(mb.entry.Local); err != nil {
		return err
	}
	c.router.remove(rp)
	if err := c.persistTable(ctx, t, mb.entry.Local); err != nil {
		c.router.add(mb)
		return fmt.Errorf("persist mount table: %w", err)
	}
	if t == AuthTable {
		// The tokens this method's logins issued go with it, as in Vault.
		c.revokeMethodTokens(ctx, rp, "disabled")
	}
	if err := deletePrefix(ctx, c.barrier, mb.entry.StoragePrefix()); err != nil {
		c.logger.Warn().Err(err).Str("path", rp).Msg("mount disabled but some of its data could not be deleted")
	}
	c.logger.Info().Str("path", rp).Msg("disabled " + tableNoun(t))
	return nil
}

// revokeMethodTokens revokes the tokens the auth method at rp issued, after
// it was disabled or moved (how, for the log).
func (c *Core) revokeMethodTokens(ctx context.Context, rp, how string) {
	if n, err := c.tokens.RevokeByPath(ctx, rp); err != nil {
		c.logger.Warn().Err(err).Str("path", rp).Msg("auth method " + how + " but some of its tokens could not be revoked; they expire with their TTL")
	} else if n > 0 {
		c.logger.Info().Int("tokens", n).Str("path", rp).Msg("revoked the tokens of the " + how + " auth method")
	}
}

// TuneMount changes a mount's description, TTLs and options. Changing a kv
// mount's version is refused: data written in one version cannot be read in
// the other.
func (c *Core) TuneMount(ctx context.Context, rp string, desc *string, cfg *MountConfig, opts map[string]string) error {
	c.mountMu.Lock()
	defer c.mountMu.Unlock()
	c.router.mu.RLock()
	mb := c.router.routes[rp]
	c.router.mu.RUnlock()
	if mb == nil {
		return logical.Errorf(400, "no mount at %q to tune: check the path", rp)
	}
	if mb.entry.builtin {
		return logical.InvalidRequest("%q is built in and cannot be tuned", rp)
	}
	if err := c.refuseOnSecondary(mb.entry.Local); err != nil {
		return err
	}
	ne := mb.entry.clone()
	if desc != nil {
		ne.Description = *desc
	}
	if cfg != nil {
		if cfg.DefaultLeaseTTL >= 0 {
			ne.Config.DefaultLeaseTTL = cfg.DefaultLeaseTTL
		}
		if cfg.MaxLeaseTTL >= 0 {
			ne.Config.MaxLeaseTTL = cfg.MaxLeaseTTL
		}
	}
	for k, v := range opts {
		if k == "version" && ne.Type == "kv" && v != ne.Options["version"] && !(v == "1" && ne.Options["version"] == "") {
			return logical.InvalidRequest("changing a kv mount's version (%q to %q) is not supported: enable a new mount with -version=%s and copy the data", ne.Options["version"], v, v)
		}
		ne.Options[k] = v
	}
	c.router.mu.Lock()
	c.router.routes[rp] = &mountedBackend{entry: ne, backend: mb.backend, storage: mb.storage}
	c.router.mu.Unlock()
	if err := c.persistTable(ctx, ne.Table, ne.Local); err != nil {
		c.router.mu.Lock()
		c.router.routes[rp] = mb
		c.router.mu.Unlock()
		return fmt.Errorf("persist mount table: %w", err)
	}
	return nil
}

// Mounts lists the mounts of table t.
func (c *Core) Mounts(t Table) []*MountEntry { return c.router.entries(t) }

// MountFor returns the mount serving a request path, or nil.
func (c *Core) MountFor(path string) *MountEntry {
	mb, _ := c.router.match(path)
	if mb == nil {
		return nil
	}
	return mb.entry.clone()
}

// deletePrefix deletes every key under prefix (listed first, then deleted).
func deletePrefix(ctx context.Context, b logical.Storage, prefix string) error {
	var doomed []string
	if err := storage.Walk(ctx, b, prefix, "", func(k string) (bool, error) {
		doomed = append(doomed, k)
		return true, nil
	}); err != nil {
		return err
	}
	for _, k := range doomed {
		if err := b.Delete(ctx, k); err != nil {
			return err
		}
	}
	return nil
}
