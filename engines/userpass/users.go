package userpass

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/bcrypt"

	"github.com/cofferhq/coffer/engines/internal/tokenfields"
	"github.com/cofferhq/coffer/logical"
)

// fieldSet names the fields an endpoint reads; any other field in the
// request is ignored with a warning, as Vault does.
type fieldSet map[string]bool

var (
	passwordFields = fieldSet{"password": true, "password_hash": true}
	policyFields   = fieldSet{"token_policies": true, "policies": true}
	userFields     = fieldSet{
		"password": true, "password_hash": true,
		"token_policies": true, "policies": true,
		"token_ttl": true, "ttl": true,
		"token_max_ttl": true, "max_ttl": true,
		"token_explicit_max_ttl": true, "token_period": true,
		"token_num_uses": true, "token_no_default_policy": true,
		"token_type":        true,
		"token_bound_cidrs": true, "bound_cidrs": true,
	}
)

// userUpdate is a parsed write: nil fields were not given and keep their
// stored value.
type userUpdate struct {
	passwordHash *string
	token        *tokenfields.Update
	warnings     []string
}

// parseUpdate reads the fields of allowed from data, hashing a new
// password. It touches no storage, so the slow hash runs outside the lock.
func (b *Backend) parseUpdate(data map[string]any, allowed fieldSet) (*userUpdate, error) {
	u := &userUpdate{}
	var ignored []string
	for k := range data {
		if !allowed[k] && k != "username" {
			ignored = append(ignored, k)
		}
	}
	if w := logical.IgnoredFieldsWarning(ignored); w != "" {
		u.warnings = append(u.warnings, w)
	}
	get := func(k string) (any, bool) {
		if !allowed[k] {
			return nil, false
		}
		v, ok := data[k]
		return v, ok
	}

	if err := b.parsePassword(get, u); err != nil {
		return nil, err
	}
	token, err := tokenfields.Parse(get)
	if err != nil {
		return nil, err
	}
	u.token = token
	return u, nil
}

// parsePassword reads password or password_hash, at most one of them; an
// empty string counts as not given, as in Vault.
func (b *Backend) parsePassword(get func(string) (any, bool), u *userUpdate) error {
	var password, hash string
	if v, ok := get("password"); ok {
		s, err := logical.ParseSecret("password", v)
		if err != nil {
			return err
		}
		password = s
	}
	if v, ok := get("password_hash"); ok {
		s, err := logical.ParseSecret("password_hash", v)
		if err != nil {
			return err
		}
		hash = s
	}
	switch {
	case password != "" && hash != "":
		return logical.InvalidRequest("password and password_hash cannot be given together: give one of them")
	case password != "":
		h, err := bcrypt.GenerateFromPassword([]byte(password), b.cost())
		if errors.Is(err, bcrypt.ErrPasswordTooLong) {
			return logical.InvalidRequest("password: longer than 72 bytes, the most bcrypt can hash; choose a shorter password")
		}
		if err != nil {
			return fmt.Errorf("hash password: %w", err)
		}
		s := string(h)
		u.passwordHash = &s
	case hash != "":
		if err := checkHash(hash); err != nil {
			return err
		}
		u.passwordHash = &hash
	}
	return nil
}

// checkHash accepts a bcrypt hash made elsewhere ($2a$, $2b$ or $2y$).
func checkHash(hash string) error {
	if len(hash) != 60 || !(strings.HasPrefix(hash, "$2a$") || strings.HasPrefix(hash, "$2b$") || strings.HasPrefix(hash, "$2y$")) {
		return logical.InvalidRequest("password_hash: expected a 60-character bcrypt hash beginning with $2a$, $2b$ or $2y$ (e.g. from htpasswd -bnBC 10)")
	}
	if _, err := bcrypt.Cost([]byte(hash)); err != nil {
		return logical.InvalidRequest("password_hash: not a valid bcrypt hash: %v", err)
	}
	return nil
}

// apply merges the update into a stored user.
func (up *userUpdate) apply(u *user) {
	if up.passwordHash != nil {
		u.PasswordHash = *up.passwordHash
	}
	up.token.Apply(&u.Settings)
}

// writeUser creates or updates a user from the fields of allowed. A new user
// needs a password; the password and policies endpoints need an existing one.
func (b *Backend) writeUser(ctx context.Context, req *logical.Request, name string, ep endpoint) (*logical.Response, error) {
	allowed := map[endpoint]fieldSet{epUser: userFields, epPassword: passwordFields, epPolicies: policyFields}[ep]
	up, err := b.parseUpdate(req.Data, allowed)
	if err != nil {
		return nil, err
	}
	unlock := b.locks.lock(name)
	defer unlock()
	u, err := loadUser(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	switch {
	case u == nil && ep != epUser:
		return nil, logical.InvalidRequest("user %q does not exist: create it first with a write to users/%s", name, name)
	case u == nil && up.passwordHash == nil:
		return nil, logical.InvalidRequest("missing password: give password (or password_hash, a bcrypt hash) to create user %q", name)
	case u == nil:
		u = &user{Settings: tokenfields.Settings{TokenType: "default"}}
	case ep == epPassword && up.passwordHash == nil:
		return nil, logical.InvalidRequest("missing password: give password or password_hash, the new password of user %q", name)
	case ep == epPolicies && up.token.Policies == nil:
		return nil, logical.InvalidRequest("missing token_policies: give the policies of user %q as a list or a comma-separated string (empty for none)", name)
	}
	up.apply(u)
	if err := u.Check(); err != nil {
		return nil, err
	}
	if err := saveUser(ctx, req.Storage, name, u); err != nil {
		return nil, err
	}
	if len(up.warnings) > 0 {
		return &logical.Response{Warnings: up.warnings}, nil
	}
	return nil, nil
}

// readUser returns a user's token settings in Vault's shape; never its
// password hash.
func (b *Backend) readUser(ctx context.Context, req *logical.Request, name string) (*logical.Response, error) {
	u, err := loadUser(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if u == nil {
		return nil, fmt.Errorf("%w: no user %q", logical.ErrNotFound, name)
	}
	data := u.Data()
	return &logical.Response{Data: data}, nil
}

// deleteUser removes a user; deleting a missing user is not an error.
// Tokens its logins created stay valid until they expire or are revoked.
func (b *Backend) deleteUser(ctx context.Context, req *logical.Request, name string) (*logical.Response, error) {
	unlock := b.locks.lock(name)
	defer unlock()
	if err := req.Storage.Delete(ctx, userKey(name)); err != nil {
		return nil, fmt.Errorf("delete user %q: %w", name, err)
	}
	return nil, nil
}

// listUsers answers {"keys": [...]}, or 404 when there is no user.
func (b *Backend) listUsers(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	keys, err := req.Storage.List(ctx, userPrefix)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: no users", logical.ErrNotFound)
	}
	return &logical.Response{Data: map[string]any{"keys": keys}}, nil
}
