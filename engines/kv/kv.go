package kv

import (
	"context"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"

	"github.com/cofferhq/coffer/logical"
)

// ParseVersion returns the KV version a mount's options select: 1 when
// options has no "version" or an empty one, else 1 or 2. Core calls it when a
// mount is created and when its options are tuned, and refuses a tune that
// would change the result (see doc.go: a mount's version is fixed).
func ParseVersion(options map[string]string) (int, error) {
	switch v := strings.TrimSpace(options["version"]); v {
	case "", "1":
		return 1, nil
	case "2":
		return 2, nil
	default:
		return 0, fmt.Errorf("kv: options.version must be \"1\" or \"2\", got %q: enable the mount with -version=1 or -version=2", v)
	}
}

// Factory creates the KV backend of one mount: version 1 or 2 as
// cfg.Options["version"] selects (see ParseVersion).
func Factory(ctx context.Context, cfg logical.BackendConfig) (logical.Backend, error) {
	v, err := ParseVersion(cfg.Options)
	if err != nil {
		return nil, err
	}
	if v == 2 {
		return NewV2(), nil
	}
	return NewV1(), nil
}

// keyLocks serialises the read-modify-write cycles on one key (KV v2 keeps
// a key's metadata in one record that every write rewrites). Keys hash onto a
// fixed set of locks, so memory does not grow with the number of keys.
type keyLocks [256]sync.Mutex

func (l *keyLocks) lock(key string) func() {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	m := &l[h.Sum32()%uint32(len(l))]
	m.Lock()
	return m.Unlock
}

// checkKey validates a key path taken from a request path.
func checkKey(key string) error {
	switch {
	case key == "":
		return logical.InvalidRequest("missing path: name the key after the endpoint, e.g. data/my-app")
	case strings.HasSuffix(key, "/"):
		return logical.InvalidRequest("path %q ends with \"/\": that names a folder, and only keys can be written or read; drop the trailing slash", key)
	case strings.IndexByte(key, 0) >= 0:
		return logical.InvalidRequest("path %q holds a NUL byte, which keys may not contain", key)
	}
	return nil
}

// folderPrefix turns a list request's path into the storage prefix to list:
// "" stays "", anything else gets a trailing slash (Vault lists "a" and "a/"
// alike).
func folderPrefix(p string) string {
	if p != "" && !strings.HasSuffix(p, "/") {
		p += "/"
	}
	return p
}

// listResponse answers a LIST the way Vault does: {"keys": [...]}, and 404
// when there is nothing under the prefix.
func listResponse(keys []string) (*logical.Response, error) {
	if len(keys) == 0 {
		return nil, logical.ErrNotFound
	}
	return &logical.Response{Data: map[string]any{"keys": keys}}, nil
}
