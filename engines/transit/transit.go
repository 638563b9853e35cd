package transit

import (
	"context"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"sync"

	"github.com/cofferhq/coffer/logical"
)

// Backend is the transit engine of one mount. It holds no key material:
// every request reads its key from storage (see doc.go), so its only state
// is the per-name locks that serialise key changes in this process.
type Backend struct {
	locks keyLocks
}

var (
	_ logical.Backend      = (*Backend)(nil)
	_ logical.ClusterLocal = (*Backend)(nil)
)

// New returns a transit backend.
func New() *Backend { return &Backend{} }

// Factory creates the transit backend of one mount. It takes no options.
func Factory(ctx context.Context, cfg logical.BackendConfig) (logical.Backend, error) {
	return New(), nil
}

// The endpoints of the engine (see doc.go).
type endpoint int

const (
	epKeysList endpoint = iota + 1
	epKey
	epKeyConfig
	epKeyRotate
	epEncrypt
	epDecrypt
	epRewrap
	epDatakey
	epSign
	epVerify
	epHMAC
	epRandom
	epHash
)

// route is a request path split into its endpoint and parameters.
type route struct {
	ep   endpoint
	name string
	// arg is the optional URL parameter: the hash algorithm of sign/,
	// verify/, hmac/ and hash/, the datakey type, the random source.
	arg string
	// bytes is random's URL byte count, "" when absent.
	bytes string
}

const servedPaths = "keys/, keys/<name>, keys/<name>/config, keys/<name>/rotate, encrypt/<name>, decrypt/<name>, " +
	"rewrap/<name>, datakey/plaintext|wrapped/<name>, sign/<name>[/<algorithm>], verify/<name>[/<algorithm>], " +
	"hmac/<name>[/<algorithm>], random[/<source>][/<bytes>] and hash[/<algorithm>]"

func unsupportedPath(path string) error {
	return fmt.Errorf("%w: %q: transit serves %s", logical.ErrUnsupportedPath, path, servedPaths)
}

// parseRoute splits a request path. Key names are checked with checkName.
func parseRoute(path string) (route, error) {
	parts := strings.Split(strings.TrimSuffix(path, "/"), "/")
	head, rest := parts[0], parts[1:]
	var r route
	switch head {
	case "keys":
		switch {
		case len(rest) == 0:
			return route{ep: epKeysList}, nil
		case len(rest) == 1:
			r = route{ep: epKey, name: rest[0]}
		case len(rest) == 2 && rest[1] == "config":
			r = route{ep: epKeyConfig, name: rest[0]}
		case len(rest) == 2 && rest[1] == "rotate":
			r = route{ep: epKeyRotate, name: rest[0]}
		default:
			return route{}, unsupportedPath(path)
		}
	case "encrypt", "decrypt", "rewrap":
		if len(rest) != 1 {
			return route{}, missingOrExtra(path, head+"/<name>")
		}
		r = route{ep: map[string]endpoint{"encrypt": epEncrypt, "decrypt": epDecrypt, "rewrap": epRewrap}[head], name: rest[0]}
	case "datakey":
		if len(rest) != 2 {
			return route{}, missingOrExtra(path, "datakey/plaintext/<name> or datakey/wrapped/<name>")
		}
		if rest[0] != "plaintext" && rest[0] != "wrapped" {
			return route{}, logical.InvalidRequest("Invalid path, must be 'plaintext' or 'wrapped': use datakey/plaintext/<name> or datakey/wrapped/<name>")
		}
		r = route{ep: epDatakey, arg: rest[0], name: rest[1]}
	case "sign", "verify", "hmac":
		if len(rest) < 1 || len(rest) > 2 {
			return route{}, missingOrExtra(path, head+"/<name>[/<algorithm>]")
		}
		r = route{ep: map[string]endpoint{"sign": epSign, "verify": epVerify, "hmac": epHMAC}[head], name: rest[0]}
		if len(rest) == 2 {
			r.arg = rest[1]
		}
	case "random":
		return randomRoute(path, rest)
	case "hash":
		if len(rest) > 1 {
			return route{}, unsupportedPath(path)
		}
		r = route{ep: epHash}
		if len(rest) == 1 {
			r.arg = rest[0]
		}
		return r, nil
	case "export":
		return route{}, fmt.Errorf("%w: %q: key export is not supported by coffer's transit engine; "+
			"keys never leave it (see keys/<name> for public keys)", logical.ErrUnsupportedPath, path)
	default:
		return route{}, unsupportedPath(path)
	}
	if err := checkName(r.name); err != nil {
		return route{}, err
	}
	return r, nil
}

// randomRoute reads random, random/<bytes>, random/<source> and
// random/<source>/<bytes>.
func randomRoute(path string, rest []string) (route, error) {
	r := route{ep: epRandom}
	switch len(rest) {
	case 0:
	case 1:
		if _, err := strconv.Atoi(rest[0]); err == nil {
			r.bytes = rest[0]
		} else {
			r.arg = rest[0]
		}
	case 2:
		r.arg, r.bytes = rest[0], rest[1]
	default:
		return route{}, unsupportedPath(path)
	}
	return r, nil
}

func missingOrExtra(path, want string) error {
	if strings.Count(path, "/") == 0 || strings.HasSuffix(path, "/") {
		return logical.InvalidRequest("missing key name in %q: use %s", path, want)
	}
	return unsupportedPath(path)
}

// checkName accepts Vault's key names: letters, digits and "_", with "-"
// and "." also allowed inside the name.
func checkName(name string) error {
	if name == "" {
		return logical.InvalidRequest("missing key name: name the key after the endpoint, e.g. keys/my-key")
	}
	if !logical.NameOK(name) {
		return logical.InvalidRequest("key name %q: use letters, digits and \"_\", and \"-\" or \".\" anywhere but first or last", name)
	}
	return nil
}

func isWrite(op logical.Operation) bool {
	return op == logical.CreateOperation || op == logical.UpdateOperation
}

// HandleRequest serves the endpoints of doc.go.
func (b *Backend) HandleRequest(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	r, err := parseRoute(req.Path)
	if err != nil {
		return nil, err
	}
	op := req.Operation
	if req.Data == nil {
		req.Data = map[string]any{}
	}
	switch {
	case r.ep == epKeysList && (op == logical.ListOperation || op == logical.ReadOperation):
		return b.listKeys(ctx, req)
	case r.ep == epKey && op == logical.ReadOperation:
		return b.readKey(ctx, req, r.name)
	case r.ep == epKey && isWrite(op):
		return b.createKey(ctx, req, r.name)
	case r.ep == epKey && op == logical.DeleteOperation:
		return b.deleteKey(ctx, req, r.name)
	case r.ep == epKeyConfig && isWrite(op):
		return b.configKey(ctx, req, r.name)
	case r.ep == epKeyRotate && isWrite(op):
		return b.rotateKey(ctx, req, r.name)
	case isWrite(op):
		return b.handleCompute(ctx, req, r)
	}
	return nil, fmt.Errorf("%w: %s on %q: this endpoint supports %s", logical.ErrUnsupportedOperation, op, req.Path, allowedOps(r.ep))
}

// handleCompute serves the endpoints that compute without changing keys.
func (b *Backend) handleCompute(ctx context.Context, req *logical.Request, r route) (*logical.Response, error) {
	switch r.ep {
	case epEncrypt:
		return b.encrypt(ctx, req, r.name)
	case epDecrypt:
		return b.decrypt(ctx, req, r.name)
	case epRewrap:
		return b.rewrap(ctx, req, r.name)
	case epDatakey:
		return b.datakey(ctx, req, r.name, r.arg == "plaintext")
	case epSign:
		return b.sign(ctx, req, r.name, r.arg)
	case epVerify:
		return b.verify(ctx, req, r.name, r.arg)
	case epHMAC:
		return b.hmac(ctx, req, r.name, r.arg)
	case epRandom:
		return randomBytes(req, r.arg, r.bytes)
	case epHash:
		return hashInput(req, r.arg)
	}
	return nil, fmt.Errorf("%w: %s on %q: this endpoint supports %s", logical.ErrUnsupportedOperation, req.Operation, req.Path, allowedOps(r.ep))
}

func allowedOps(ep endpoint) string {
	switch ep {
	case epKeysList:
		return "list"
	case epKey:
		return "read, write and delete"
	}
	return "write (POST or PUT)"
}

// ExistenceCheck reports whether the key of encrypt/<name> exists, so the
// router authorizes an encrypt that would create its key as create, as
// Vault does. Every other path reports true (Vault has no existence check
// there, so it authorizes writes as update).
func (b *Backend) ExistenceCheck(ctx context.Context, req *logical.Request) (bool, error) {
	r, err := parseRoute(req.Path)
	if err != nil || r.ep != epEncrypt {
		return true, nil
	}
	k, err := loadKey(ctx, req.Storage, r.name)
	if err != nil {
		return false, fmt.Errorf("existence check %q: %w", req.Path, err)
	}
	return k != nil, nil
}

// localPrefixes are the first path segments of the writes served on the
// cluster that receives them: they compute without writing storage.
var localPrefixes = []string{"encrypt/", "decrypt/", "rewrap/", "datakey/", "sign/", "verify/", "hmac/", "random/", "hash/"}

// ServedLocally reports whether a write is served where it is received:
// yes for the compute endpoints, no for keys/ (key changes go to the
// primary). An encrypt that must create its key fails on a secondary with
// logical.ErrReadOnly, and the router then forwards it. It reads no storage.
func (b *Backend) ServedLocally(req *logical.Request) bool {
	if !isWrite(req.Operation) {
		return false
	}
	p := req.Path
	if p == "random" || p == "hash" {
		return true
	}
	for _, prefix := range localPrefixes {
		if strings.HasPrefix(p, prefix) {
			return true
		}
	}
	return false
}

// LocalStoragePrefixes is nil: every key is replicated configuration.
func (b *Backend) LocalStoragePrefixes() []string { return nil }

// keyLocks serialises the read-modify-write cycles on one key (create,
// config, rotate, delete, and the creation of a key by encrypt). Names hash
// onto a fixed set of locks, so memory does not grow with the number of
// keys. Reads take no lock: a key record is written whole.
type keyLocks [64]sync.Mutex

func (l *keyLocks) lock(name string) func() {
	h := fnv.New32a()
	_, _ = h.Write([]byte(name))
	m := &l[h.Sum32()%uint32(len(l))]
	m.Lock()
	return m.Unlock
}
