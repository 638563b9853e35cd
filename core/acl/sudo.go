package acl

import "strings"

// sudoPaths are the paths whose every operation needs the sudo capability in
// addition to the operation's own, in the pattern syntax of policies. They are
// Vault's root-protected paths of the system backend and of the token auth
// method (mounted at auth/token/), kept whole, features Coffer lacks included,
// so that a policy means the same on both. Sources: the "Root" special paths
// of Vault's sys and token backends.
var sudoPaths = []string{
	"auth/token/accessors", // listed with or without the trailing slash
	"auth/token/accessors/",
	"auth/token/revoke-orphan",

	"sys/audit",
	"sys/audit/*",
	"sys/auth/*", // enabling, tuning and disabling auth methods; listing sys/auth is not sudo
	"sys/config/auditing/*",
	"sys/config/cors",
	"sys/config/ui/headers/*",
	"sys/internal/counters/activity/export",
	"sys/internal/inspect/*",
	"sys/leases",
	"sys/leases/lookup/*", // listing lease IDs under a prefix; sys/leases/lookup itself is not sudo
	"sys/leases/revoke-force/*",
	"sys/leases/revoke-prefix/*",
	"sys/plugins/catalog/*",
	"sys/plugins/runtimes/catalog/*",
	"sys/raw",
	"sys/raw/*",
	"sys/remount",
	"sys/replication/dr/primary/secondary-token",
	"sys/replication/dr/reindex",
	"sys/replication/performance/primary/secondary-token",
	"sys/replication/performance/reindex",
	"sys/replication/primary/secondary-token",
	"sys/replication/reindex",
	"sys/reporting/scan",
	"sys/revoke-force/*",
	"sys/revoke-prefix/*",
	"sys/rotate",
	"sys/seal",
	"sys/step-down",
	"sys/storage/raft/snapshot-auto/config/*",
}

// sudoACL answers RequiresSudo with the same matcher as policies.
var sudoACL = func() *ACL {
	p := &Policy{Name: "sudo-paths"}
	for _, s := range sudoPaths {
		p.Paths = append(p.Paths, PathRule{Path: s, Capabilities: Sudo})
	}
	a, err := NewACL(p)
	if err != nil {
		panic("acl: sudo path list does not compile: " + err.Error())
	}
	return a
}()

// SudoPaths returns the patterns of the paths that require sudo (a copy).
func SudoPaths() []string {
	return append([]string(nil), sudoPaths...)
}

// RequiresSudo reports whether a request on path (without /v1/; a leading
// slash is tolerated) needs the sudo capability besides its operation's.
// A path with a trailing slash, as a list sends it, needs sudo when the path
// without the slash does: "sys/replication/reindex/" is "sys/replication/reindex".
// The caller enforces it: allowed only if (*ACL).Allowed also reports sudo.
func RequiresSudo(path string) bool {
	if sudoACL.Capabilities(path) != 0 {
		return true
	}
	trimmed, ok := strings.CutSuffix(path, "/")
	return ok && sudoACL.Capabilities(trimmed) != 0
}
