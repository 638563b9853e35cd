package userpass

import (
	"context"
	"fmt"
	"strings"

	"github.com/cofferhq/coffer/engines/internal/tokenfields"
	"github.com/cofferhq/coffer/logical"
)

// errInvalidCredentials is the one answer to every failed login, whether the
// user is unknown or the password wrong: status 400 and Vault's message.
var errInvalidCredentials = logical.Errorf(400, "invalid username or password")

// login checks a user's password and returns the Auth the router turns into
// a token.
func (b *Backend) login(ctx context.Context, req *logical.Request, name string) (*logical.Response, error) {
	raw, ok := req.Data["password"]
	if !ok {
		return nil, logical.InvalidRequest("missing password: give password in the login request")
	}
	password, err := logical.ParseSecret("password", raw)
	if err != nil {
		return nil, err
	}
	if password == "" {
		return nil, errInvalidCredentials
	}

	u, loadErr := loadUser(ctx, req.Storage, name)
	var hash []byte
	if u != nil {
		hash = []byte(u.PasswordHash)
	} else {
		// No such user (or storage failed): compare against a dummy hash
		// of the same cost, so the answer takes as long as for a known user.
		if hash, err = b.dummy(); err != nil {
			return nil, err
		}
	}
	match := b.compare(hash, []byte(password)) == nil
	if loadErr != nil {
		return nil, loadErr
	}
	if u == nil || !match {
		return nil, errInvalidCredentials
	}

	if len(u.TokenBoundCIDRs) > 0 && !tokenfields.AddrAllowed(req.RemoteAddr, u.TokenBoundCIDRs) {
		return nil, permissionDenied(req.RemoteAddr)
	}

	auth := u.Auth(map[string]string{"username": name}, displayName(b.mountFor(req), name))
	return &logical.Response{Auth: auth}, nil
}

func permissionDenied(addr string) error {
	if addr == "" {
		return fmt.Errorf("%w: this user may only log in from its token_bound_cidrs, and the client's address is unknown", logical.ErrPermissionDenied)
	}
	return fmt.Errorf("%w: this user may not log in from this address: it is outside the user's token_bound_cidrs", logical.ErrPermissionDenied)
}

func (b *Backend) mountFor(req *logical.Request) string {
	if req.MountPoint != "" {
		return req.MountPoint
	}
	return b.mountPoint
}

// displayName is Vault's display name of a login token: the mount path
// without "auth/", its slashes turned into dashes, then the username
// ("auth/userpass/" and "alice" give "userpass-alice").
func displayName(mount, name string) string {
	m := strings.Trim(strings.TrimPrefix(mount, "auth/"), "/")
	if m == "" {
		m = "userpass"
	}
	return strings.ReplaceAll(m, "/", "-") + "-" + name
}
