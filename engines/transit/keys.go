package transit

import (
	"context"
	"fmt"

	"github.com/cofferhq/coffer/logical"
)

var (
	createFields = fields("type", "exportable", "allow_plaintext_backup", "key_size",
		"derived", "convergent_encryption", "auto_rotate_period")
	configFields = fields("min_decryption_version", "min_encryption_version", "deletion_allowed",
		"exportable", "allow_plaintext_backup", "auto_rotate_period")
)

// listKeys answers {"keys": [...]}, 404 when there is none.
func (b *Backend) listKeys(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	keys, err := req.Storage.List(ctx, keyPrefix)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: no keys", logical.ErrNotFound)
	}
	return &logical.Response{Data: map[string]any{"keys": keys}}, nil
}

// readKey answers the key's description, 404 when it does not exist.
func (b *Backend) readKey(ctx context.Context, req *logical.Request, name string) (*logical.Response, error) {
	k, err := loadKey(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if k == nil {
		return nil, fmt.Errorf("%w: no key named %q", logical.ErrNotFound, name)
	}
	return &logical.Response{Data: k.info()}, nil
}

// refuseUnsupported refuses the options coffer does not implement (see
// doc.go): derivation, convergent encryption and automatic rotation.
func refuseUnsupported(d map[string]any) error {
	for _, f := range []string{"derived", "convergent_encryption"} {
		on, err := boolField(d, f)
		if err != nil {
			return err
		}
		if on {
			return badRequest("%s is not supported by coffer's transit engine: create the key without it (key derivation and convergent encryption are not implemented)", f)
		}
	}
	period, _, err := logical.FieldDuration(d, "auto_rotate_period")
	if err != nil {
		return err
	}
	if period != 0 {
		return badRequest("auto_rotate_period is not supported by coffer's transit engine: set it to 0 and rotate with keys/<name>/rotate")
	}
	return nil
}

// createKey creates a key, or answers the existing one with Vault's
// warning. Its answer is the key's description, as Vault's.
func (b *Backend) createKey(ctx context.Context, req *logical.Request, name string) (*logical.Response, error) {
	d := req.Data
	warnings := createFields.warnings(d)
	if err := refuseUnsupported(d); err != nil {
		return nil, err
	}
	typeStr, err := stringField(d, "type")
	if err != nil {
		return nil, err
	}
	t, err := parseKeyType(typeStr)
	if err != nil {
		return nil, err
	}
	keySize, err := intField(d, "key_size")
	if err != nil {
		return nil, err
	}
	if keySize != 0 {
		if t != typeHMAC {
			return nil, badRequest("key_size is not valid for algorithm %s: it applies to hmac keys only", t)
		}
		if keySize < hmacMinKeySize || keySize > hmacMaxKeySize {
			return nil, badRequest("invalid key_size %d: an hmac key is %d to %d bytes", keySize, hmacMinKeySize, hmacMaxKeySize)
		}
	}
	exportable, err := boolField(d, "exportable")
	if err != nil {
		return nil, err
	}
	backup, err := boolField(d, "allow_plaintext_backup")
	if err != nil {
		return nil, err
	}

	defer b.locks.lock(name)()
	k, err := loadKey(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if k != nil {
		warnings = append(warnings, fmt.Sprintf("key %s already existed", name))
		return &logical.Response{Data: k.info(), Warnings: warnings}, nil
	}
	if k, err = newKey(name, t, keySize); err != nil {
		return nil, err
	}
	k.Exportable, k.AllowPlaintextBackup = exportable, backup
	if err := saveKey(ctx, req.Storage, k); err != nil {
		return nil, err
	}
	return &logical.Response{Data: k.info(), Warnings: warnings}, nil
}

// deleteKey deletes a key whose deletion_allowed is set.
func (b *Backend) deleteKey(ctx context.Context, req *logical.Request, name string) (*logical.Response, error) {
	defer b.locks.lock(name)()
	k, err := loadKey(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if k == nil {
		return nil, badRequest("error deleting policy %s: could not delete key; not found", name)
	}
	if !k.DeletionAllowed {
		return nil, badRequest("error deleting policy %s: deletion is not allowed for this key; set deletion_allowed=true at keys/%s/config first", name, name)
	}
	if err := req.Storage.Delete(ctx, storageKey(name)); err != nil {
		return nil, fmt.Errorf("delete key %q: %w", name, err)
	}
	return nil, nil
}

// rotateKey adds a new latest version and answers the key's description.
func (b *Backend) rotateKey(ctx context.Context, req *logical.Request, name string) (*logical.Response, error) {
	warnings := fields().warnings(req.Data)
	defer b.locks.lock(name)()
	k, err := loadKey(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if k == nil {
		return nil, badRequest("key not found: create it first at keys/%s", name)
	}
	if err := k.rotate(); err != nil {
		return nil, err
	}
	if err := saveKey(ctx, req.Storage, k); err != nil {
		return nil, err
	}
	return &logical.Response{Data: k.info(), Warnings: warnings}, nil
}

// configKey changes a key's settings with Vault's rules and messages, and
// answers the key's description.
func (b *Backend) configKey(ctx context.Context, req *logical.Request, name string) (*logical.Response, error) {
	d := req.Data
	warnings := configFields.warnings(d)
	if err := refuseUnsupported(d); err != nil {
		return nil, err
	}
	defer b.locks.lock(name)()
	k, err := loadKey(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if k == nil {
		return nil, badRequest("no existing key named %s could be found: create it first at keys/%s", name, name)
	}
	w, err := applyVersions(k, d)
	if err != nil {
		return nil, err
	}
	warnings = append(warnings, w...)
	w, err = applyFlags(k, d)
	if err != nil {
		return nil, err
	}
	warnings = append(warnings, w...)
	if err := saveKey(ctx, req.Storage, k); err != nil {
		return nil, err
	}
	return &logical.Response{Data: k.info(), Warnings: warnings}, nil
}

// applyVersions sets min_decryption_version and min_encryption_version.
func applyVersions(k *key, d map[string]any) ([]string, error) {
	var warnings []string
	if n, given, err := logical.FieldInt(d, "min_decryption_version"); err != nil {
		return nil, err
	} else if given {
		if n < 0 {
			return nil, badRequest("min decryption version cannot be negative")
		}
		if n == 0 {
			n = 1
			warnings = append(warnings, "since Vault 0.3, transit key numbering starts at 1; forcing minimum to 1")
		}
		if n > int64(k.LatestVersion) {
			return nil, badRequest("cannot set min decryption version of %d, latest key version is %d", n, k.LatestVersion)
		}
		k.MinDecryptionVersion = int(n)
	}
	if n, given, err := logical.FieldInt(d, "min_encryption_version"); err != nil {
		return nil, err
	} else if given {
		if n < 0 {
			return nil, badRequest("min encryption version cannot be negative")
		}
		if n > int64(k.LatestVersion) {
			return nil, badRequest("cannot set min encryption version of %d, latest key version is %d", n, k.LatestVersion)
		}
		k.MinEncryptionVersion = int(n)
	}
	if k.MinEncryptionVersion > 0 && k.MinEncryptionVersion < k.MinDecryptionVersion {
		return nil, badRequest("cannot set min encryption/decryption values; min encryption version of %d must be greater than or equal to min decryption version of %d",
			k.MinEncryptionVersion, k.MinDecryptionVersion)
	}
	return warnings, nil
}

// applyFlags sets deletion_allowed, exportable and allow_plaintext_backup.
// The last two cannot be turned off once on: Vault ignores the attempt, and
// so does coffer, with a warning.
func applyFlags(k *key, d map[string]any) ([]string, error) {
	var warnings []string
	if on, given, err := logical.FieldBool(d, "deletion_allowed"); err != nil {
		return nil, err
	} else if given {
		k.DeletionAllowed = on
	}
	for _, f := range []struct {
		name string
		v    *bool
	}{{"exportable", &k.Exportable}, {"allow_plaintext_backup", &k.AllowPlaintextBackup}} {
		on, given, err := logical.FieldBool(d, f.name)
		if err != nil {
			return nil, err
		}
		switch {
		case given && on:
			*f.v = true
		case given && *f.v:
			warnings = append(warnings, fmt.Sprintf("%s cannot be disabled once enabled; it stays true", f.name))
		}
	}
	return warnings, nil
}
