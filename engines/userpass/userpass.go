package userpass

import (
	"context"
	"crypto/rand"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"

	"github.com/cofferhq/coffer/logical"
)

// Backend is the userpass auth method of one mount. Its only state is
// configuration fixed at creation and a dummy hash for timing-safe logins of
// unknown users; users themselves are read from storage on every request.
type Backend struct {
	// Cost is the bcrypt cost of the hashes it makes; 0 means
	// bcrypt.DefaultCost (10), as in Vault. Tests lower it to
	// bcrypt.MinCost for speed. Set it before the first request.
	Cost int

	// mountPoint is the mount's path from BackendConfig, for display names
	// when a request does not carry its own.
	mountPoint string
	// compare checks a password against a bcrypt hash; tests wrap it to see
	// which hash a login compares against.
	compare func(hash, password []byte) error

	dummyOnce sync.Once
	dummyHash []byte
	dummyErr  error

	locks userLocks
}

var _ logical.Backend = (*Backend)(nil)

// New returns a userpass backend with the default bcrypt cost.
func New() *Backend {
	return &Backend{compare: bcrypt.CompareHashAndPassword}
}

// Factory creates the userpass backend of one auth mount. It takes no
// options.
func Factory(ctx context.Context, cfg logical.BackendConfig) (logical.Backend, error) {
	b := New()
	b.mountPoint = cfg.MountPoint
	return b, nil
}

// UnauthenticatedPaths are the paths, relative to the mount and in Vault's
// glob form (a trailing "*" matches any suffix), that the router must serve
// without a client token.
func UnauthenticatedPaths() []string { return []string{"login/*"} }

// LoginPath reports whether path, relative to the mount ("login/alice"),
// is served without a client token.
func LoginPath(path string) bool { return strings.HasPrefix(path, "login/") }

// The endpoints of the method (see doc.go).
type endpoint int

const (
	epList endpoint = iota + 1
	epUser
	epPassword
	epPolicies
	epLogin
)

// route splits a request path into its endpoint and username. The name is
// validated and lowercased.
func route(path string) (endpoint, string, error) {
	var ep endpoint
	var name string
	switch {
	case path == "users" || path == "users/":
		return epList, "", nil
	case strings.HasPrefix(path, "users/"):
		parts := strings.Split(path[len("users/"):], "/")
		name = parts[0]
		switch {
		case len(parts) == 1:
			ep = epUser
		case len(parts) == 2 && parts[1] == "password":
			ep = epPassword
		case len(parts) == 2 && parts[1] == "policies":
			ep = epPolicies
		default:
			return 0, "", unsupportedPath(path)
		}
	case path == "login" || path == "login/":
		return 0, "", logical.InvalidRequest("missing username: log in at login/<username>")
	case strings.HasPrefix(path, "login/"):
		name = path[len("login/"):]
		if strings.Contains(name, "/") {
			return 0, "", unsupportedPath(path)
		}
		ep = epLogin
	default:
		return 0, "", unsupportedPath(path)
	}
	if err := checkName(name); err != nil {
		return 0, "", err
	}
	return ep, strings.ToLower(name), nil
}

func unsupportedPath(path string) error {
	return fmt.Errorf("%w: %q: userpass serves users/, users/<name>, users/<name>/password, users/<name>/policies and login/<name>", logical.ErrUnsupportedPath, path)
}

// checkName accepts Vault's usernames: letters, digits and "_", with "-",
// "." and "@" also allowed inside the name.
func checkName(name string) error {
	if name == "" {
		return logical.InvalidRequest("missing username: name the user after the endpoint, e.g. users/alice")
	}
	word := func(c byte) bool {
		return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		inner := i > 0 && i < len(name)-1
		if !word(c) && !(inner && (c == '-' || c == '.' || c == '@')) {
			return logical.InvalidRequest("username %q: use letters, digits and \"_\", and \"-\", \".\" or \"@\" anywhere but first or last", name)
		}
	}
	return nil
}

// HandleRequest serves the endpoints of doc.go.
func (b *Backend) HandleRequest(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	ep, name, err := route(req.Path)
	if err != nil {
		return nil, err
	}
	write := req.Operation == logical.CreateOperation || req.Operation == logical.UpdateOperation
	switch {
	case ep == epList && req.Operation == logical.ListOperation:
		return b.listUsers(ctx, req)
	case ep == epUser && req.Operation == logical.ReadOperation:
		return b.readUser(ctx, req, name)
	case ep == epUser && req.Operation == logical.DeleteOperation:
		return b.deleteUser(ctx, req, name)
	case (ep == epUser || ep == epPassword || ep == epPolicies) && write:
		return b.writeUser(ctx, req, name, ep)
	case ep == epLogin && write:
		return b.login(ctx, req, name)
	}
	allowed := map[endpoint]string{
		epList:     "list",
		epUser:     "read, write, delete",
		epPassword: "write",
		epPolicies: "write",
		epLogin:    "write",
	}[ep]
	return nil, fmt.Errorf("%w: %s on %q: this endpoint supports %s", logical.ErrUnsupportedOperation, req.Operation, req.Path, allowed)
}

// ExistenceCheck reports whether users/<name> exists, so the router
// authorizes a write as create or update. users/<name>/password and
// /policies are always updates, as in Vault; login/ is never checked by ACL
// and reports false.
func (b *Backend) ExistenceCheck(ctx context.Context, req *logical.Request) (bool, error) {
	ep, name, err := route(req.Path)
	if err != nil {
		// HandleRequest reports the bad path; the ACL check needs no answer.
		return false, nil
	}
	switch ep {
	case epUser:
		u, err := loadUser(ctx, req.Storage, name)
		if err != nil {
			return false, fmt.Errorf("existence check %q: %w", req.Path, err)
		}
		return u != nil, nil
	case epPassword, epPolicies:
		return true, nil
	}
	return false, nil
}

func (b *Backend) cost() int {
	if b.Cost == 0 {
		return bcrypt.DefaultCost
	}
	return b.Cost
}

// dummy is a hash of a random password at the backend's cost: a login of an
// unknown user compares against it, so it takes as long as one of a known
// user and reveals nothing through timing.
func (b *Backend) dummy() ([]byte, error) {
	b.dummyOnce.Do(func() {
		b.dummyHash, b.dummyErr = bcrypt.GenerateFromPassword([]byte(rand.Text()), b.cost())
	})
	return b.dummyHash, b.dummyErr
}

// userLocks serialises the read-modify-write cycles on one user (an update
// changes only the fields it names). Names hash onto a fixed set of locks,
// so memory does not grow with the number of users.
type userLocks [64]sync.Mutex

func (l *userLocks) lock(name string) func() {
	h := fnv.New32a()
	_, _ = h.Write([]byte(name))
	m := &l[h.Sum32()%uint32(len(l))]
	m.Lock()
	return m.Unlock
}

// CanonicalPath is the path as this backend reads it: user names are
// case-insensitive (route lowercases them), so the name segment of users/ and
// login/ is lowercased here, and core authorizes the path that will be
// served: a policy that denies auth/userpass/users/bob also denies
// users/BOB. Core calls it before the ACL (core/path.go).
func (b *Backend) CanonicalPath(rel string) (string, error) {
	for _, prefix := range []string{"users/", "login/"} {
		rest, ok := strings.CutPrefix(rel, prefix)
		if !ok {
			continue
		}
		name, tail, _ := strings.Cut(rest, "/")
		if lower := strings.ToLower(name); lower != name {
			if tail != "" || strings.HasSuffix(rest, "/") {
				return prefix + lower + "/" + tail, nil
			}
			return prefix + lower, nil
		}
	}
	return rel, nil
}
