package userpass

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

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

	if len(u.TokenBoundCIDRs) > 0 && !addrAllowed(req.RemoteAddr, u.TokenBoundCIDRs) {
		return nil, permissionDenied(req.RemoteAddr)
	}

	policies := loginPolicies(u)
	return &logical.Response{Auth: &logical.Auth{
		Policies:       policies,
		TokenPolicies:  slices.Clone(policies),
		Metadata:       map[string]string{"username": name},
		DisplayName:    displayName(b.mountFor(req), name),
		TTL:            u.TokenTTL,
		ExplicitMaxTTL: explicitMaxTTL(u),
		Period:         u.TokenPeriod,
		NumUses:        u.TokenNumUses,
		Renewable:      true,
		TokenType:      "service",
	}}, nil
}

func permissionDenied(addr string) error {
	if addr == "" {
		return fmt.Errorf("%w: this user may only log in from its token_bound_cidrs, and the client's address is unknown", logical.ErrPermissionDenied)
	}
	return fmt.Errorf("%w: this user may not log in from this address: it is outside the user's token_bound_cidrs", logical.ErrPermissionDenied)
}

// loginPolicies are the user's policies plus "default", unless the user has
// token_no_default_policy or holds root (which stands alone, as in Vault).
func loginPolicies(u *user) []string {
	p := slices.Clone(u.TokenPolicies)
	if p == nil {
		p = []string{}
	}
	if !u.TokenNoDefaultPolicy && !slices.Contains(p, "root") && !slices.Contains(p, "default") {
		p = append(p, "default")
		slices.Sort(p)
	}
	return p
}

// explicitMaxTTL folds Vault's token_max_ttl (a cap on renewals that the
// Auth contract has no field for) into the explicit maximum: the smaller
// non-zero of the two. A periodic token keeps only token_explicit_max_ttl,
// since Vault lets a periodic token renew past token_max_ttl.
func explicitMaxTTL(u *user) time.Duration {
	d := u.TokenExplicitMaxTTL
	if u.TokenPeriod > 0 {
		return d
	}
	if m := u.TokenMaxTTL; m > 0 && (d == 0 || m < d) {
		d = m
	}
	return d
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

// addrAllowed reports whether the client's address (an IP, with or without
// a port) lies in one of the CIDR blocks. An unknown or unparsable address
// is refused.
func addrAllowed(remote string, cidrs []string) bool {
	var addr netip.Addr
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		addr = ap.Addr()
	} else if a, err := netip.ParseAddr(remote); err == nil {
		addr = a
	} else {
		return false
	}
	addr = addr.Unmap()
	for _, c := range cidrs {
		p, err := parsePrefix(c)
		if err == nil && p.Contains(addr) {
			return true
		}
	}
	return false
}
