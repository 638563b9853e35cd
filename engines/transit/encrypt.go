package transit

import (
	"context"
	"encoding/base64"
	"fmt"

	"github.com/cofferhq/coffer/logical"
)

var (
	encryptFields = fields("plaintext", "context", "nonce", "key_version", "type", "convergent_encryption",
		"batch_input", "associated_data", "partial_failure_response_code", "padding_scheme", "reference")
	decryptFields = fields("ciphertext", "context", "nonce", "batch_input", "associated_data",
		"partial_failure_response_code", "padding_scheme", "reference")
	rewrapFields = fields("ciphertext", "context", "nonce", "key_version", "batch_input",
		"partial_failure_response_code", "encrypt_padding_scheme", "decrypt_padding_scheme", "reference")
	datakeyFields = fields("bits", "context", "nonce", "key_version")
)

// itemFunc serves one item of a request: the request itself, or one
// object of its batch_input.
type itemFunc func(item map[string]any) (map[string]any, error)

// serveItems runs fn on the request's items and answers as Vault does: the
// single form fails with the item's error; a batch answers every item (see
// batchResponse).
func serveItems(d map[string]any, warnings []string, fn itemFunc) (*logical.Response, error) {
	items, batch, err := batchItems(d)
	if err != nil {
		return nil, err
	}
	if !batch {
		res, err := fn(d)
		if err != nil {
			return nil, err
		}
		return &logical.Response{Data: res, Warnings: warnings}, nil
	}
	results := make([]map[string]any, len(items))
	errs := make([]error, len(items))
	for i, it := range items {
		results[i], errs[i] = fn(it)
	}
	return batchResponse(d, items, results, errs, warnings)
}

// requireSingle refuses a request without batch_input that lacks field,
// with Vault's message.
func requireSingle(d map[string]any, field, msg string) error {
	if _, batch := d["batch_input"]; batch {
		return nil
	}
	if v, ok := d[field]; !ok || v == nil {
		return badRequest("%s", msg)
	}
	return nil
}

// checkContext validates an item's context, which a key without derivation
// ignores, as Vault does; and refuses a nonce, which only convergent keys
// take.
func checkContext(item map[string]any) error {
	if _, err := base64Field(item, "context"); err != nil {
		return err
	}
	nonce, err := stringField(item, "nonce")
	if err != nil {
		return err
	}
	if nonce != "" {
		return badRequest("nonce provided when not allowed: only convergent encryption takes a nonce, and coffer does not support it")
	}
	return nil
}

// paddingField reads an RSA padding scheme from the item, else the request.
func paddingField(item, d map[string]any, name string) (string, error) {
	p, err := stringField(item, name)
	if err != nil || p != "" {
		return p, err
	}
	return stringField(d, name)
}

func (b *Backend) encrypt(ctx context.Context, req *logical.Request, name string) (*logical.Response, error) {
	d := req.Data
	if err := requireSingle(d, "plaintext", "missing plaintext to encrypt"); err != nil {
		return nil, err
	}
	k, err := b.keyForEncrypt(ctx, req, name)
	if err != nil {
		return nil, err
	}
	return serveItems(d, encryptFields.warnings(d), func(item map[string]any) (map[string]any, error) {
		pt, err := stringField(item, "plaintext")
		if err != nil {
			return nil, err
		}
		plaintext, err := base64.StdEncoding.DecodeString(pt)
		if err != nil {
			return nil, badRequest("failed to base64-decode plaintext: %v; send the plaintext base64-encoded", err)
		}
		if err := checkContext(item); err != nil {
			return nil, err
		}
		ver, err := intField(item, "key_version")
		if err != nil {
			return nil, err
		}
		var o encOpts
		if o.aad, err = base64Field(item, "associated_data"); err != nil {
			return nil, err
		}
		if o.padding, err = paddingField(item, d, "padding_scheme"); err != nil {
			return nil, err
		}
		ct, used, err := k.encrypt(ver, plaintext, o)
		if err != nil {
			return nil, err
		}
		return map[string]any{"ciphertext": ct, "key_version": used}, nil
	})
}

// keyForEncrypt loads the key of an encrypt, creating it when the request
// is a create (the router found no key: Vault's upsert). The write of a
// new key may fail with logical.ErrReadOnly on a performance secondary;
// that error is returned wrapped, never replaced, so the router forwards
// the request to the primary.
func (b *Backend) keyForEncrypt(ctx context.Context, req *logical.Request, name string) (*key, error) {
	k, err := loadKey(ctx, req.Storage, name)
	if err != nil || k != nil {
		return k, err
	}
	if req.Operation != logical.CreateOperation {
		return nil, badRequest("encryption key not found")
	}
	d := req.Data
	typeStr, err := stringField(d, "type")
	if err != nil {
		return nil, err
	}
	t, err := parseKeyType(typeStr)
	if err != nil {
		return nil, err
	}
	if !keyTypes[t].encrypt {
		return nil, badRequest("key type %s cannot encrypt, so encrypt/ does not create it: create it at keys/%s, or use an encryption type", t, name)
	}
	if err := refuseDerivedUpsert(d); err != nil {
		return nil, err
	}
	defer b.locks.lock(name)()
	if k, err = loadKey(ctx, req.Storage, name); err != nil || k != nil {
		return k, err
	}
	if k, err = newKey(name, t, 0); err != nil {
		return nil, err
	}
	if err := saveKey(ctx, req.Storage, k); err != nil {
		return nil, fmt.Errorf("create key %q on first use: %w", name, err)
	}
	return k, nil
}

// refuseDerivedUpsert refuses an encrypt that would create a derived or
// convergent key in Vault: a context in the request (or any batch item),
// or convergent_encryption.
func refuseDerivedUpsert(d map[string]any) error {
	if err := refuseUnsupported(map[string]any{"convergent_encryption": d["convergent_encryption"]}); err != nil {
		return err
	}
	items, _, err := batchItems(d)
	if err != nil {
		return err
	}
	for _, it := range append(items, d) {
		if c, _ := it["context"].(string); c != "" {
			return badRequest("a context on an encrypt that creates its key asks for key derivation, which coffer does not support: create the key at keys/<name> first, or drop the context")
		}
	}
	return nil
}

// loadExisting loads a key that the endpoint needs, refusing with missing
// (Vault's 400) when it does not exist.
func loadExisting(ctx context.Context, req *logical.Request, name, missing string) (*key, error) {
	k, err := loadKey(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if k == nil {
		return nil, badRequest("%s", missing)
	}
	return k, nil
}

// eachCiphertext serves decrypt and rewrap: the named key, then fn for the
// ciphertext of the request or of each batch_input item.
func eachCiphertext(ctx context.Context, req *logical.Request, name, what string, known fieldSet,
	fn func(k *key, item map[string]any, ct string) (map[string]any, error)) (*logical.Response, error) {
	d := req.Data
	missing := "missing ciphertext to " + what
	if err := requireSingle(d, "ciphertext", missing); err != nil {
		return nil, err
	}
	k, err := loadExisting(ctx, req, name, "encryption key not found")
	if err != nil {
		return nil, err
	}
	return serveItems(d, known.warnings(d), func(item map[string]any) (map[string]any, error) {
		ct, err := stringField(item, "ciphertext")
		if err != nil {
			return nil, err
		}
		if ct == "" {
			return nil, badRequest("%s", missing)
		}
		return fn(k, item, ct)
	})
}

func (b *Backend) decrypt(ctx context.Context, req *logical.Request, name string) (*logical.Response, error) {
	d := req.Data
	return eachCiphertext(ctx, req, name, "decrypt", decryptFields, func(k *key, item map[string]any, ct string) (map[string]any, error) {
		if _, err := base64Field(item, "context"); err != nil {
			return nil, err
		}
		var o encOpts
		var err error
		if o.aad, err = base64Field(item, "associated_data"); err != nil {
			return nil, err
		}
		if o.padding, err = paddingField(item, d, "padding_scheme"); err != nil {
			return nil, err
		}
		plain, _, err := k.decrypt(ct, o)
		if err != nil {
			return nil, err
		}
		return map[string]any{"plaintext": base64.StdEncoding.EncodeToString(plain)}, nil
	})
}

func (b *Backend) rewrap(ctx context.Context, req *logical.Request, name string) (*logical.Response, error) {
	d := req.Data
	return eachCiphertext(ctx, req, name, "rewrap", rewrapFields, func(k *key, item map[string]any, ct string) (map[string]any, error) {
		if err := checkContext(item); err != nil {
			return nil, err
		}
		ver, err := intField(item, "key_version")
		if err != nil {
			return nil, err
		}
		var dec, enc encOpts
		if dec.padding, err = paddingField(item, d, "decrypt_padding_scheme"); err != nil {
			return nil, err
		}
		if enc.padding, err = paddingField(item, d, "encrypt_padding_scheme"); err != nil {
			return nil, err
		}
		plain, _, err := k.decrypt(ct, dec)
		if err != nil {
			return nil, err
		}
		out, used, err := k.encrypt(ver, plain, enc)
		if err != nil {
			return nil, err
		}
		return map[string]any{"ciphertext": out, "key_version": used}, nil
	})
}

// datakey makes a random key of bits bits, answers it encrypted with the
// named key, and in plaintext too when plaintext is set.
func (b *Backend) datakey(ctx context.Context, req *logical.Request, name string, plaintext bool) (*logical.Response, error) {
	d := req.Data
	warnings := datakeyFields.warnings(d)
	bits, given, err := logical.FieldInt(d, "bits")
	if err != nil {
		return nil, err
	}
	if !given {
		bits = 256
	}
	if bits != 128 && bits != 256 && bits != 512 {
		return nil, badRequest("invalid bits %d: use 128, 256 or 512", bits)
	}
	if err := checkContext(d); err != nil {
		return nil, err
	}
	ver, err := intField(d, "key_version")
	if err != nil {
		return nil, err
	}
	k, err := loadExisting(ctx, req, name, "encryption key not found")
	if err != nil {
		return nil, err
	}
	dk := randBytes(int(bits / 8))
	ct, used, err := k.encrypt(ver, dk, encOpts{})
	if err != nil {
		return nil, err
	}
	data := map[string]any{"ciphertext": ct, "key_version": used}
	if plaintext {
		data["plaintext"] = base64.StdEncoding.EncodeToString(dk)
	}
	return &logical.Response{Data: data, Warnings: warnings}, nil
}
