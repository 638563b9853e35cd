package transit

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"strconv"

	"github.com/cofferhq/coffer/logical"
)

var (
	signFields = fields("input", "key_version", "hash_algorithm", "algorithm", "context", "prehashed",
		"signature_algorithm", "marshaling_algorithm", "salt_length", "batch_input",
		"partial_failure_response_code", "reference")
	verifyFields = fields("input", "signature", "hmac", "hash_algorithm", "algorithm", "context", "prehashed",
		"signature_algorithm", "marshaling_algorithm", "salt_length", "batch_input",
		"partial_failure_response_code", "reference")
	hmacFields = fields("input", "key_version", "algorithm", "batch_input", "partial_failure_response_code", "reference")
)

// inputField reads an item's base64 input; absent is empty, as in Vault.
func inputField(item map[string]any) ([]byte, error) {
	s, err := stringField(item, "input")
	if err != nil {
		return nil, err
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, badRequest("unable to decode input as base64: %v; send the input base64-encoded", err)
	}
	return b, nil
}

// parseSignOpts reads the request-wide options of sign/ and verify/. The
// URL's algorithm wins over hash_algorithm, which wins over its older
// name algorithm, as in Vault.
func parseSignOpts(d map[string]any, urlAlg string) (signOpts, error) {
	var o signOpts
	var err error
	if o.hash, err = algorithmField(d, urlAlg, "hash_algorithm", "algorithm"); err != nil {
		return o, err
	}
	if o.prehashed, err = boolField(d, "prehashed"); err != nil {
		return o, err
	}
	if o.sigAlg, err = stringField(d, "signature_algorithm"); err != nil {
		return o, err
	}
	if o.sigAlg != "" && o.sigAlg != "pss" && o.sigAlg != "pkcs1v15" {
		return o, badRequest("unsupported signature_algorithm %q: use \"pss\" (the default) or \"pkcs1v15\"", o.sigAlg)
	}
	if o.marshaling, err = stringField(d, "marshaling_algorithm"); err != nil {
		return o, err
	}
	if o.marshaling != "" && o.marshaling != "asn1" && o.marshaling != "jws" {
		return o, badRequest("invalid marshaling type %q: use \"asn1\" (the default) or \"jws\"", o.marshaling)
	}
	salt, err := stringField(d, "salt_length")
	if err != nil {
		return o, err
	}
	switch salt {
	case "", "auto":
		o.saltLength = rsa.PSSSaltLengthAuto
	case "hash":
		o.saltLength = rsa.PSSSaltLengthEqualsHash
	default:
		n, err := strconv.Atoi(salt)
		if err != nil || n < 0 {
			return o, badRequest("invalid salt_length %q: use \"auto\", \"hash\" or a number of bytes", salt)
		}
		o.saltLength = n
	}
	return o, nil
}

func (b *Backend) sign(ctx context.Context, req *logical.Request, name, urlAlg string) (*logical.Response, error) {
	d := req.Data
	o, err := parseSignOpts(d, urlAlg)
	if err != nil {
		return nil, err
	}
	ver, err := intField(d, "key_version")
	if err != nil {
		return nil, err
	}
	k, err := loadExisting(ctx, req, name, "signing key not found")
	if err != nil {
		return nil, err
	}
	if !keyTypes[k.Type].sign {
		return nil, badRequest("key type %s does not support signing: use an ed25519, ecdsa-p256 or rsa key", k.Type)
	}
	return serveItems(d, signFields.warnings(d), func(item map[string]any) (map[string]any, error) {
		input, err := inputField(item)
		if err != nil {
			return nil, err
		}
		sig, used, err := k.sign(ver, input, o)
		if err != nil {
			return nil, err
		}
		return map[string]any{"signature": sig, "key_version": used}, nil
	})
}

// verify checks signatures, or HMACs for the items that carry "hmac"
// instead of "signature", as Vault's verify/ does.
func (b *Backend) verify(ctx context.Context, req *logical.Request, name, urlAlg string) (*logical.Response, error) {
	d := req.Data
	o, err := parseSignOpts(d, urlAlg)
	if err != nil {
		return nil, err
	}
	hmacHash, err := algorithmField(d, urlAlg, "algorithm", "hash_algorithm")
	if err != nil {
		return nil, err
	}
	k, err := loadExisting(ctx, req, name, "signature verification key not found")
	if err != nil {
		return nil, err
	}
	return serveItems(d, verifyFields.warnings(d), func(item map[string]any) (map[string]any, error) {
		input, err := inputField(item)
		if err != nil {
			return nil, err
		}
		sig, err := stringField(item, "signature")
		if err != nil {
			return nil, err
		}
		mac, err := stringField(item, "hmac")
		if err != nil {
			return nil, err
		}
		var valid bool
		switch {
		case sig != "" && mac != "":
			return nil, badRequest("provide one of signature or hmac, not both")
		case mac != "":
			valid, err = k.verifyHMAC(mac, hmacHash, input)
		case sig != "":
			valid, err = k.verify(sig, input, o)
		default:
			return nil, badRequest("missing signature: give the signature (or the hmac) to verify")
		}
		if err != nil {
			return nil, err
		}
		return map[string]any{"valid": valid}, nil
	})
}

func (b *Backend) hmac(ctx context.Context, req *logical.Request, name, urlAlg string) (*logical.Response, error) {
	d := req.Data
	h, err := algorithmField(d, urlAlg, "algorithm")
	if err != nil {
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
	return serveItems(d, hmacFields.warnings(d), func(item map[string]any) (map[string]any, error) {
		input, err := inputField(item)
		if err != nil {
			return nil, err
		}
		mac, _, err := k.computeHMAC(ver, h, input)
		if err != nil {
			return nil, err
		}
		return map[string]any{"hmac": mac}, nil
	})
}
