package transit

import (
	"encoding/base64"
	"encoding/hex"
	"strings"

	"github.com/cofferhq/coffer/logical"
)

// maxRandomBytes is the most random/ hands out at once, as in Vault.
const maxRandomBytes = 128 * 1024

var (
	randomFields = fields("bytes", "format", "source")
	hashFields   = fields("input", "algorithm", "format")
)

// encode renders b in format: "base64" or "hex"; def when format is "".
func encode(b []byte, format, def string) (string, error) {
	if format == "" {
		format = def
	}
	switch strings.ToLower(format) {
	case "base64":
		return base64.StdEncoding.EncodeToString(b), nil
	case "hex":
		return hex.EncodeToString(b), nil
	}
	return "", badRequest("unsupported encoding format %q; must be \"hex\" or \"base64\"", format)
}

// randomBytes answers {"random_bytes": ...}. Every source (platform, seal,
// all) is crypto/rand: coffer has no separate seal entropy.
func randomBytes(req *logical.Request, urlSource, urlBytes string) (*logical.Response, error) {
	d := req.Data
	source := urlSource
	if source == "" {
		s, err := stringField(d, "source")
		if err != nil {
			return nil, err
		}
		source = s
	}
	switch source {
	case "", "platform", "seal", "all":
	default:
		return nil, badRequest("unsupported entropy source %q; must be \"platform\" or \"seal\", or \"all\"", source)
	}
	n := int64(32)
	if urlBytes != "" {
		var err error
		if n, err = logical.ParseInt("bytes", urlBytes); err != nil {
			return nil, err
		}
	} else if v, given, err := logical.FieldInt(d, "bytes"); err != nil {
		return nil, err
	} else if given {
		n = v
	}
	if n < 1 {
		return nil, badRequest("bytes must be greater than 0")
	}
	if n > maxRandomBytes {
		return nil, badRequest("bytes cannot be greater than %d", maxRandomBytes)
	}
	format, err := stringField(d, "format")
	if err != nil {
		return nil, err
	}
	out, err := encode(randBytes(int(n)), format, "base64")
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]any{"random_bytes": out}, Warnings: randomFields.warnings(d)}, nil
}

// hashInput answers {"sum": ...}, hex unless format says base64.
func hashInput(req *logical.Request, urlAlg string) (*logical.Response, error) {
	d := req.Data
	h, err := algorithmField(d, urlAlg, "algorithm")
	if err != nil {
		return nil, err
	}
	input, err := inputField(d)
	if err != nil {
		return nil, err
	}
	format, err := stringField(d, "format")
	if err != nil {
		return nil, err
	}
	hh := h.New()
	hh.Write(input)
	out, err := encode(hh.Sum(nil), format, "hex")
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]any{"sum": out}, Warnings: hashFields.warnings(d)}, nil
}
