package approle

import (
	"context"
	"fmt"
	"maps"

	"github.com/cofferhq/coffer/engines/internal/tokenfields"
	"github.com/cofferhq/coffer/logical"
)

// errInvalidCredentials is the one answer to every failed credential
// check: an unknown role_id, a wrong, expired, exhausted or destroyed
// secret id, a secret id of another role or of another cluster. Status 400
// and Vault's message.
var errInvalidCredentials = logical.Errorf(400, "invalid role or secret ID")

// absent names no role and no role uid: role names and uids never begin
// with "-", so reads under it find nothing, with the same cost.
const absent = "-"

// zeroKey stands for a salt that does not exist yet (no role, or no secret
// id on this cluster): HMACs under it find nothing, with the same cost.
var zeroKey = make([]byte, 32)

// login checks role_id and secret_id and returns the Auth the router turns
// into a token. Whatever the credentials, it reads the same records and
// computes the same HMACs, so neither the answer nor its timing tells
// whether a role exists.
func (b *Backend) login(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	get, _ := getter(req.Data, map[string]bool{"role_id": true, "secret_id": true})
	rawID, ok := get("role_id")
	if !ok {
		return nil, logical.InvalidRequest("missing role_id")
	}
	roleID, err := logical.ParseSecret("role_id", rawID)
	if err != nil {
		return nil, err
	}
	if roleID == "" {
		return nil, logical.InvalidRequest("missing role_id")
	}
	secret := ""
	if v, ok := get("secret_id"); ok {
		if secret, err = logical.ParseSecret("secret_id", v); err != nil {
			return nil, err
		}
	}

	name, r, err := b.roleForLogin(ctx, req.Storage, roleID)
	if err != nil {
		return nil, err
	}
	unlock := b.locks.lock(name)
	defer unlock()

	uid := absent
	if r != nil {
		uid = r.UID
	}
	var rec *secretID
	var key, accKey string
	if r == nil || r.BindSecretID {
		if rec, key, accKey, err = b.findForLogin(ctx, req.Storage, uid, secret); err != nil {
			return nil, err
		}
		if r == nil || rec == nil || secret == "" || rec.expired(b.now()) {
			return nil, errInvalidCredentials
		}
	}
	if err := checkAddr(req.RemoteAddr, r, rec); err != nil {
		return nil, err
	}
	metadata := map[string]string{}
	if rec != nil {
		if err := b.consume(ctx, req.Storage, rec, key, accKey); err != nil {
			return nil, err
		}
		maps.Copy(metadata, rec.Metadata)
	}
	metadata["role_name"] = name
	return &logical.Response{Auth: r.Auth(metadata, "approle")}, nil
}

// roleForLogin finds the role of a role_id: always three reads (the salt,
// the index, a role), found or not. It returns the name to lock on.
func (b *Backend) roleForLogin(ctx context.Context, s logical.Storage, roleID string) (string, *role, error) {
	key, err := loadSalt(ctx, s, roleSaltKey)
	if err != nil {
		return "", nil, err
	}
	if key == nil {
		key = zeroKey
	}
	idx, err := loadRoleIDIndex(ctx, s, mac(key, roleID))
	if err != nil {
		return "", nil, err
	}
	name := absent
	if idx != nil {
		name = idx.Name
	}
	r, err := loadRole(ctx, s, name)
	if err != nil {
		return "", nil, err
	}
	if r == nil || !sameSecret(r.RoleID, roleID) {
		// A stale index (the role's role_id changed): no role.
		return absent + mac(key, roleID), nil, nil
	}
	return name, r, nil
}

// findForLogin reads the secret id under the role uid: always two reads
// (the local salt, the record). The caller holds the role's lock.
func (b *Backend) findForLogin(ctx context.Context, s logical.Storage, uid, secret string) (*secretID, string, string, error) {
	salt, err := b.localSalt(ctx, s, false)
	if err != nil {
		return nil, "", "", err
	}
	if salt == nil {
		salt = zeroKey
	}
	key := secretIDKey(uid, mac(salt, secret))
	rec, err := loadSecretID(ctx, s, key)
	if err != nil || rec == nil {
		return nil, "", "", err
	}
	return rec, key, accessorKey(mac(salt, rec.Accessor)), nil
}

// checkAddr enforces, after the credentials were checked, the role's
// secret_id_bound_cidrs, the secret id's cidr_list and the token CIDRs
// (the secret id's token_bound_cidrs, else the role's) against the
// client's address: 403 outside them, as userpass answers for its bound
// CIDRs. The token CIDRs are enforced at login because logical.Auth has no
// field to bind them to the token.
func checkAddr(addr string, r *role, rec *secretID) error {
	refuse := func(what string) error {
		if addr == "" {
			return fmt.Errorf("%w: this login is bound to the %s, and the client's address is unknown", logical.ErrPermissionDenied, what)
		}
		return fmt.Errorf("%w: source address unauthorized by the %s", logical.ErrPermissionDenied, what)
	}
	if len(r.SecretIDBoundCIDRs) > 0 && !tokenfields.AddrAllowed(addr, r.SecretIDBoundCIDRs) {
		return refuse("CIDR restrictions on the role (secret_id_bound_cidrs)")
	}
	tokenCIDRs := r.TokenBoundCIDRs
	if rec != nil {
		if len(rec.CIDRList) > 0 && !tokenfields.AddrAllowed(addr, rec.CIDRList) {
			return refuse("CIDR restrictions on the secret ID (cidr_list)")
		}
		if len(rec.TokenBoundCIDRs) > 0 {
			tokenCIDRs = rec.TokenBoundCIDRs
		}
	}
	if len(tokenCIDRs) > 0 && !tokenfields.AddrAllowed(addr, tokenCIDRs) {
		return refuse("token_bound_cidrs")
	}
	return nil
}

// consume spends one use of a limited secret id: the last use deletes it
// with its accessor. The record was read under the role's lock, which the
// caller still holds, and the write is one transaction, so two logins never
// spend the same use.
func (b *Backend) consume(ctx context.Context, s logical.Storage, rec *secretID, key, accKey string) error {
	if rec.NumUses == 0 {
		return nil
	}
	var ops []*txnOp
	if rec.NumUses == 1 {
		ops = []*txnOp{deleteOp(key), deleteOp(accKey)}
	} else {
		rec.NumUses--
		rec.LastUpdatedTime = b.now().UTC()
		put, err := putOp(key, rec)
		if err != nil {
			return err
		}
		ops = []*txnOp{put}
	}
	if err := s.Transaction(ctx, ops); err != nil {
		return fmt.Errorf("spend a use of the secret id: %w", err)
	}
	return nil
}
