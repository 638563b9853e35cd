package forwarder

import (
	"fmt"
	"strings"
)

// The forwarding allow-list: what a primary accepts from a secondary. The
// secondary decides what to forward with its mount table (core's
// shouldForward); the primary checks the request's shape again, because a
// compromised or buggy secondary must not reach endpoints that were never
// meant to be forwarded (seal, init, replication, tokens, leases...).
//
//	operations: create, update, patch, delete, and read and list outside
//	            sys/ (a read is forwarded when the client asks for a state
//	            this cluster has not reached: X-Vault-Inconsistent:
//	            forward-active-node; it can only return replicated data,
//	            which the secondary holds anyway)
//	sys/ paths: writes to policies/acl/*, policy/*, mounts/* (not
//	            mounts/auth/*), auth/*, audit/*; every other sys/ path, and
//	            every sys/ read, is refused
//
// The primary also refuses what its mount table says is not replicated
// (local mounts, logins, the token store): core's ApplyForwarded.
//	auth/token/*: refused (tokens are local to each cluster), but for
//	            writes to auth/token/roles/<name>: token roles are
//	            replicated configuration, written on the primary
//	any other path: accepted (the data of a mount)

var forwardableOps = map[string]bool{"create": true, "update": true, "patch": true, "delete": true, "read": true, "list": true}

var forwardableSys = []string{"policies/acl/", "policy/", "mounts/", "auth/", "audit/"}

// Allowed reports, with an error that names the reason, whether a forwarded
// request of operation op on path (the full path after /v1/) may be applied.
func Allowed(op, path string) error {
	if !forwardableOps[op] {
		return fmt.Errorf("operation %q is never forwarded", op)
	}
	p := strings.TrimPrefix(path, "/")
	if p == "" || strings.Contains(p, "..") {
		return fmt.Errorf("path %q cannot be forwarded", path)
	}
	switch {
	case strings.HasPrefix(p, "auth/token/roles/") && len(p) > len("auth/token/roles/") && op != "read" && op != "list":
		return nil // token roles are replicated configuration
	case strings.HasPrefix(p, "auth/token/") || p == "auth/token":
		return fmt.Errorf("path %q is local to each cluster (tokens) and is never forwarded", path)
	case strings.HasPrefix(p, "sys/"):
		rel := strings.TrimPrefix(p, "sys/")
		if op == "read" || op == "list" {
			return fmt.Errorf("system path %q is never read through the primary: read it on this cluster", path)
		}
		if strings.HasPrefix(rel, "mounts/auth/") {
			return fmt.Errorf("path %q is never forwarded", path)
		}
		for _, pre := range forwardableSys {
			if strings.HasPrefix(rel, pre) && len(rel) > len(pre) {
				return nil
			}
		}
		return fmt.Errorf("system path %q is never forwarded: it is served by each cluster itself", path)
	}
	return nil
}
