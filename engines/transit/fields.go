package transit

import (
	"crypto"
	_ "crypto/sha256" // registers SHA-224 and SHA-256 for crypto.Hash
	_ "crypto/sha3"   // registers SHA3-* for crypto.Hash
	_ "crypto/sha512" // registers SHA-384 and SHA-512 for crypto.Hash
	"encoding/base64"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/cofferhq/coffer/logical"
)

// Request fields are read with logical's Parse and Field functions; the
// helpers here add transit's own rules on top of them.

// fieldSet names the fields an endpoint reads; any other field in the
// request is ignored with a warning, as Vault does.
type fieldSet map[string]bool

func fields(names ...string) fieldSet {
	s := make(fieldSet, len(names))
	for _, n := range names {
		s[n] = true
	}
	return s
}

// warnings returns Vault's warning naming the fields of data that allowed
// does not hold, or nil.
func (s fieldSet) warnings(data map[string]any) []string {
	var ignored []string
	for k := range data {
		if !s[k] {
			ignored = append(ignored, k)
		}
	}
	if w := logical.IgnoredFieldsWarning(ignored); w != "" {
		return []string{w}
	}
	return nil
}

// badRequest is a 400 carrying msg exactly: transit's errors are Vault's
// words where clients may match them.
func badRequest(format string, args ...any) error {
	return logical.Errorf(http.StatusBadRequest, format, args...)
}

// isUserError reports whether err is the caller's to fix (a 400), as
// opposed to a failure of the server.
func isUserError(err error) bool {
	return logical.StatusCode(err) == http.StatusBadRequest
}

// stringField reads d[name] as a string, "" when absent.
func stringField(d map[string]any, name string) (string, error) {
	s, _, err := logical.FieldString(d, name)
	return s, err
}

// intField reads d[name] as an integer, 0 when absent.
func intField(d map[string]any, name string) (int, error) {
	n, _, err := logical.FieldInt(d, name)
	return int(n), err
}

// boolField reads d[name] as a boolean, false when absent.
func boolField(d map[string]any, name string) (bool, error) {
	b, _, err := logical.FieldBool(d, name)
	return b, err
}

// base64Field reads d[name] as base64 (standard encoding), nil when absent.
func base64Field(d map[string]any, name string) ([]byte, error) {
	s, err := stringField(d, name)
	if err != nil || s == "" {
		return nil, err
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, badRequest("failed to base64-decode %s: %v; send it base64-encoded", name, err)
	}
	return b, nil
}

// batchItems reads batch_input: a list of objects. ok is false when the
// request has none, so the caller serves the single-item form.
func batchItems(d map[string]any) (items []map[string]any, ok bool, err error) {
	raw, present := d["batch_input"]
	if !present || raw == nil {
		return nil, false, nil
	}
	list, isList := raw.([]any)
	if !isList {
		return nil, true, logical.InvalidRequest("batch_input: expected a list of objects, got %s", logical.Describe(raw))
	}
	if len(list) == 0 {
		return nil, true, badRequest("missing batch input to process: give batch_input at least one item")
	}
	items = make([]map[string]any, len(list))
	for i, it := range list {
		m, isMap := it.(map[string]any)
		if !isMap {
			return nil, true, logical.InvalidRequest("batch_input[%d]: expected an object, got %s", i, logical.Describe(it))
		}
		items[i] = m
	}
	return items, true, nil
}

// batchResponse answers a batch as Vault does: the results in
// batch_results, each echoing its item's reference, and the status 400 when
// an item failed through the caller's fault (500 when one failed through
// the server's), unless partial_failure_response_code overrides it while
// some items succeeded.
func batchResponse(d map[string]any, items []map[string]any, results []map[string]any, errs []error, warnings []string) (*logical.Response, error) {
	var ok, userErr, internalErr bool
	out := make([]any, len(results))
	for i := range results {
		r := results[i]
		if errs[i] != nil {
			r = map[string]any{"error": errs[i].Error()}
			if isUserError(errs[i]) {
				userErr = true
			} else {
				internalErr = true
			}
		} else {
			ok = true
		}
		ref, _ := items[i]["reference"].(string)
		r["reference"] = ref
		out[i] = r
	}
	resp := &logical.Response{Data: map[string]any{"batch_results": out}, Warnings: warnings}
	if !userErr && !internalErr {
		return resp, nil
	}
	code := http.StatusInternalServerError
	if userErr {
		code = http.StatusBadRequest
	}
	if ok {
		if override, given, err := logical.FieldInt(d, "partial_failure_response_code"); err != nil {
			return nil, err
		} else if given {
			if override < 1 || override > 599 {
				resp.Warnings = append(resp.Warnings, fmt.Sprintf("invalid HTTP response code override from partial_failure_response_code, reverting to %d", code))
			} else {
				code = int(override)
			}
		}
	}
	resp.StatusCode = code
	return resp, nil
}

// hashes are the hash algorithms of sign/, verify/, hmac/ and hash/.
var hashes = map[string]crypto.Hash{
	"sha2-224": crypto.SHA224,
	"sha2-256": crypto.SHA256,
	"sha2-384": crypto.SHA384,
	"sha2-512": crypto.SHA512,
	"sha3-224": crypto.SHA3_224,
	"sha3-256": crypto.SHA3_256,
	"sha3-384": crypto.SHA3_384,
	"sha3-512": crypto.SHA3_512,
}

// parseHash reads an algorithm name; "" is sha2-256.
func parseHash(name string) (crypto.Hash, error) {
	if name == "" {
		return crypto.SHA256, nil
	}
	h, ok := hashes[strings.ToLower(name)]
	if !ok {
		names := make([]string, 0, len(hashes))
		for n := range hashes {
			names = append(names, n)
		}
		sort.Strings(names)
		return 0, badRequest("unsupported hash algorithm %s: use one of %s", name, strings.Join(names, ", "))
	}
	return h, nil
}

// algorithmField is the hash algorithm of a request: the URL's, else the
// first of the named fields that is given.
func algorithmField(d map[string]any, url string, names ...string) (crypto.Hash, error) {
	if url != "" {
		return parseHash(url)
	}
	for _, n := range names {
		s, err := stringField(d, n)
		if err != nil {
			return 0, err
		}
		if s != "" {
			return parseHash(s)
		}
	}
	return parseHash("")
}
