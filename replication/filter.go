package replication

import (
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Filter is a performance secondary's paths filter, as Vault's
// sys/replication/performance/primary/paths-filter/:id sets it: which
// mounts' data the primary ships to that secondary (docs/replication.md,
// "Paths filter", where the rest of the design waits to be built). It is a
// pure decision: the primary resolves a storage key to its mount path and
// asks Allows. The replicated configuration outside mounts (the mount and
// auth tables, policies, the keyring) is never filtered.
type Filter struct {
	// Mode is "allow" (only these mounts) or "deny" (every mount but these).
	Mode string `json:"mode"`
	// Paths are mount paths as the mount tables name them ("secret/",
	// "auth/userpass/"), sorted, without duplicates.
	Paths []string `json:"paths"`
}

// Filter modes.
const (
	FilterAllow = "allow"
	FilterDeny  = "deny"
)

// ParseFilter checks and normalises a filter as an operator writes it:
// mode allow or deny, at least one path, each a mount path (a trailing "/"
// is added, a leading one removed); sys/ and the token store are never
// filtered (they are not data of a mount that replication may hold back),
// and a path may not hold "..", "*" or "+".
func ParseFilter(mode string, paths []string) (*Filter, error) {
	if mode != FilterAllow && mode != FilterDeny {
		return nil, fmt.Errorf("invalid mode %q: give allow (only these mounts are replicated) or deny (every mount but these)", mode)
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("no paths: name the mounts to %s, e.g. paths=secret/,auth/userpass/", mode)
	}
	var out []string
	for _, p := range paths {
		p = strings.TrimSpace(p)
		p = strings.TrimPrefix(p, "/")
		if p == "" {
			return nil, fmt.Errorf("an empty path: name a mount, e.g. secret/")
		}
		if !strings.HasSuffix(p, "/") {
			p += "/"
		}
		switch {
		case strings.Contains(p, "..") || strings.ContainsAny(p, "*+ "):
			return nil, fmt.Errorf("path %q: give a mount path as sys/mounts lists it, without wildcards", p)
		case p == "sys/" || strings.HasPrefix(p, "sys/") || p == "auth/token/" || p == "auth/":
			return nil, fmt.Errorf("path %q cannot be filtered: it is not the data of a mount (sys/ and the token store are never replicated as mount data)", p)
		}
		out = append(out, p)
	}
	slices.Sort(out)
	return &Filter{Mode: mode, Paths: slices.Compact(out)}, nil
}

// Allows reports whether the data of the mount at mountPath ("secret/") goes
// to the filtered secondary. A nil filter allows everything.
func (f *Filter) Allows(mountPath string) bool {
	if f == nil {
		return true
	}
	_, listed := slices.BinarySearch(f.Paths, mountPath)
	return listed == (f.Mode == FilterAllow)
}

// ID names the filter by its content: secondaries with the same filter
// share its batches. 16 hex digits of the SHA-256 of its JSON, stable for
// a normalised filter.
func (f *Filter) ID() string {
	b, _ := json.Marshal(f) // a struct of strings: cannot fail
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// FilterKey is the key that seals a filter's batch copies in the epoch whose
// replication key is key: HKDF-SHA256 of it, info "coffer-paths-filter-v1|"
// and the filter's ID. A filtered secondary is given this key, never the
// epoch's replication key, so it cannot open the unfiltered batches on the
// bus; nor can it derive that key from its own.
func FilterKey(key []byte, filterID string) []byte {
	out, err := hkdf.Key(sha256.New, key, nil, "coffer-paths-filter-v1|"+filterID, KeySize)
	if err != nil {
		panic(err) // KeySize is far below HKDF-SHA256's limit
	}
	return out
}
