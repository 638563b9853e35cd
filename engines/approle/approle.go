package approle

import (
	"context"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"time"

	"github.com/cofferhq/coffer/internal/clock"
	"github.com/cofferhq/coffer/logical"
)

// Backend is the AppRole auth method of one mount. Its only state is
// configuration fixed at creation and in-process locks; roles and secret
// ids are read from storage on every request.
type Backend struct {
	// mountPoint is the mount's path from BackendConfig.
	mountPoint string
	// now is the clock of secret id creation and expiry; tests replace it.
	now func() time.Time

	// locks serialise the read-modify-write cycles on one role and its
	// secret ids (a login consuming a use, a destroy, a role update).
	locks roleLocks
	// saltMu serialises the creation of the two salts.
	saltMu sync.Mutex
	// roleIDMu serialises role_id changes across roles, so two roles never
	// take the same role_id at once.
	roleIDMu sync.Mutex
}

var (
	_ logical.Backend      = (*Backend)(nil)
	_ logical.ClusterLocal = (*Backend)(nil)
)

// New returns an AppRole backend.
func New() *Backend {
	return &Backend{now: clock.Now}
}

// Factory creates the AppRole backend of one auth mount. It takes no
// options.
func Factory(ctx context.Context, cfg logical.BackendConfig) (logical.Backend, error) {
	b := New()
	b.mountPoint = cfg.MountPoint
	return b, nil
}

// UnauthenticatedPaths are the paths, relative to the mount and in Vault's
// glob form, that the router must serve without a client token.
func UnauthenticatedPaths() []string { return []string{"login"} }

// LoginPath reports whether path, relative to the mount, is served without
// a client token: "login" only.
func LoginPath(path string) bool { return path == "login" }

// The endpoints of the method (see doc.go).
type endpoint int

const (
	epRoleList endpoint = iota + 1
	epRole
	epRoleID
	epSecretID
	epCustomSecretID
	epSecretIDLookup
	epSecretIDDestroy
	epAccessorLookup
	epAccessorDestroy
	epLogin
	epTidy
)

// subEndpoints are the endpoints under role/<name>/.
var subEndpoints = map[string]endpoint{
	"role-id":                    epRoleID,
	"secret-id":                  epSecretID,
	"custom-secret-id":           epCustomSecretID,
	"secret-id/lookup":           epSecretIDLookup,
	"secret-id/destroy":          epSecretIDDestroy,
	"secret-id-accessor/lookup":  epAccessorLookup,
	"secret-id-accessor/destroy": epAccessorDestroy,
}

// localEndpoints are served by the cluster that receives them: they write
// only cluster-local keys (see doc.go).
var localEndpoints = map[endpoint]bool{
	epSecretID: true, epCustomSecretID: true,
	epSecretIDLookup: true, epSecretIDDestroy: true,
	epAccessorLookup: true, epAccessorDestroy: true,
	epLogin: true, epTidy: true,
}

// route splits a request path into its endpoint and role name. The name is
// validated and lowercased. It reads no storage.
func route(path string) (endpoint, string, error) {
	switch path {
	case "role", "role/":
		return epRoleList, "", nil
	case "login":
		return epLogin, "", nil
	case "tidy/secret-id":
		return epTidy, "", nil
	}
	rest, ok := strings.CutPrefix(path, "role/")
	if !ok {
		return 0, "", unsupportedPath(path)
	}
	name, tail, _ := strings.Cut(rest, "/")
	ep := epRole
	if tail = strings.TrimSuffix(tail, "/"); tail != "" {
		if ep, ok = subEndpoints[tail]; !ok {
			return 0, "", unsupportedPath(path)
		}
	}
	if err := checkName(name); err != nil {
		return 0, "", err
	}
	return ep, strings.ToLower(name), nil
}

func unsupportedPath(path string) error {
	return fmt.Errorf("%w: %q: approle serves role/, role/<name>, role/<name>/role-id, role/<name>/secret-id, role/<name>/custom-secret-id, role/<name>/secret-id/lookup|destroy, role/<name>/secret-id-accessor/lookup|destroy, login and tidy/secret-id", logical.ErrUnsupportedPath, path)
}

// maxNameLen is Vault's limit on a role name (and on a secret id).
const maxNameLen = 4096

// checkName accepts Vault's role names: letters, digits and "_", with "-"
// and "." also allowed inside the name.
func checkName(name string) error {
	if name == "" {
		return logical.InvalidRequest("missing role_name: name the role after the endpoint, e.g. role/web")
	}
	if len(name) > maxNameLen {
		return logical.InvalidRequest("role_name is longer than maximum of %d bytes", maxNameLen)
	}
	if !logical.NameOK(name) {
		return logical.InvalidRequest("role name %q: use letters, digits and \"_\", and \"-\" or \".\" anywhere but first or last", name)
	}
	return nil
}

func isWrite(op logical.Operation) bool {
	return op == logical.CreateOperation || op == logical.UpdateOperation
}

// HandleRequest serves the endpoints of doc.go.
func (b *Backend) HandleRequest(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	ep, name, err := route(req.Path)
	if err != nil {
		return nil, err
	}
	op := req.Operation
	switch {
	case ep == epRoleList && op == logical.ListOperation:
		return b.listRoles(ctx, req)
	case ep == epRole && op == logical.ReadOperation:
		return b.readRole(ctx, req, name)
	case ep == epRole && isWrite(op):
		return b.writeRole(ctx, req, name)
	case ep == epRole && op == logical.DeleteOperation:
		return b.deleteRole(ctx, req, name)
	case ep == epRoleID && op == logical.ReadOperation:
		return b.readRoleID(ctx, req, name)
	case ep == epRoleID && isWrite(op):
		return b.writeRoleID(ctx, req, name)
	case ep == epSecretID && op == logical.ListOperation:
		return b.listSecretIDs(ctx, req, name)
	case (ep == epSecretID || ep == epCustomSecretID) && isWrite(op):
		return b.generate(ctx, req, name, ep == epCustomSecretID)
	case ep == epSecretIDLookup && isWrite(op):
		return b.lookupSecretID(ctx, req, name)
	case ep == epSecretIDDestroy && (isWrite(op) || op == logical.DeleteOperation):
		return b.destroySecretID(ctx, req, name)
	case ep == epAccessorLookup && isWrite(op):
		return b.lookupAccessor(ctx, req, name)
	case ep == epAccessorDestroy && (isWrite(op) || op == logical.DeleteOperation):
		return b.destroyAccessor(ctx, req, name)
	case ep == epLogin && isWrite(op):
		return b.login(ctx, req)
	case ep == epTidy && isWrite(op):
		return b.tidy(ctx, req)
	}
	allowed := map[endpoint]string{
		epRoleList: "list", epRole: "read, write, delete", epRoleID: "read, write",
		epSecretID: "write, list", epCustomSecretID: "write",
		epSecretIDLookup: "write", epSecretIDDestroy: "write, delete",
		epAccessorLookup: "write", epAccessorDestroy: "write, delete",
		epLogin: "write", epTidy: "write",
	}[ep]
	return nil, fmt.Errorf("%w: %s on %q: this endpoint supports %s", logical.ErrUnsupportedOperation, op, req.Path, allowed)
}

// ExistenceCheck reports whether role/<name> exists, so the router
// authorizes a write as create or update. Every other path is an update,
// as in Vault, except login, which no ACL checks and reports false.
func (b *Backend) ExistenceCheck(ctx context.Context, req *logical.Request) (bool, error) {
	ep, name, err := route(req.Path)
	if err != nil {
		// HandleRequest reports the bad path; the ACL check needs no answer.
		return false, nil
	}
	switch ep {
	case epRole:
		r, err := loadRole(ctx, req.Storage, name)
		if err != nil {
			return false, fmt.Errorf("existence check %q: %w", req.Path, err)
		}
		return r != nil, nil
	case epLogin:
		return false, nil
	}
	return true, nil
}

// ServedLocally reports whether a write is served by the cluster that
// receives it: the secret id endpoints, login and tidy/secret-id write only
// cluster-local keys; role writes and role-id updates go to the primary.
// It reads no storage.
func (b *Backend) ServedLocally(req *logical.Request) bool {
	ep, _, err := route(req.Path)
	return err == nil && localEndpoints[ep]
}

// LocalStoragePrefixes are the cluster-local prefixes of the mount's view:
// secret ids, their accessors and the salt that hashes both.
func (b *Backend) LocalStoragePrefixes() []string {
	return []string{secretIDPrefix, accessorPrefix}
}

// CanonicalPath is the path as this backend reads it: role names are
// case-insensitive (route lowercases them), so the name segment of role/
// is lowercased here and core authorizes the path that will be served.
func (b *Backend) CanonicalPath(rel string) (string, error) {
	rest, ok := strings.CutPrefix(rel, "role/")
	if !ok {
		return rel, nil
	}
	name, tail, hasTail := strings.Cut(rest, "/")
	lower := strings.ToLower(name)
	if lower == name {
		return rel, nil
	}
	if hasTail {
		return "role/" + lower + "/" + tail, nil
	}
	return "role/" + lower, nil
}

// roleLocks serialise work on one role. Names hash onto a fixed set of
// locks, so memory does not grow with the number of roles.
type roleLocks [64]sync.Mutex

func (l *roleLocks) lock(name string) func() {
	h := fnv.New32a()
	_, _ = h.Write([]byte(name))
	m := &l[h.Sum32()%uint32(len(l))]
	m.Lock()
	return m.Unlock
}
