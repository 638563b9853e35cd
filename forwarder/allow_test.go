package forwarder

import "testing"

func TestAllowed(t *testing.T) {
	for _, tc := range []struct {
		op, path string
		ok       bool
	}{
		{"update", "secret/data/app", true},
		{"create", "kv/app", true},
		{"patch", "secret/data/app", true},
		{"delete", "secret/metadata/app", true},
		{"update", "auth/userpass/users/bob", true},
		{"update", "sys/policies/acl/dev", true},
		{"update", "sys/policy/dev", true},
		{"update", "sys/mounts/kv2", true},
		{"update", "sys/mounts/kv2/tune", true},
		{"update", "sys/auth/userpass", true},
		{"update", "sys/audit/file", true},
		{"delete", "sys/audit/file", true},
		{"read", "secret/data/app", true},
		{"list", "secret/metadata/", true},
		{"read", "sys/seal-status", false},
		{"read", "sys/policies/acl/dev", false},
		{"list", "sys/audit/x", false},
		{"rollback", "secret/data/app", false},
		{"update", "sys/seal", false},
		{"update", "sys/init", false},
		{"update", "sys/replication/performance/primary/enable", false},
		{"update", "sys/mounts/auth/userpass/tune", false},
		{"update", "sys/policies/acl/", false},
		{"update", "sys/mounts", false},
		{"update", "auth/token/create", false},
		{"update", "auth/token", false},
		// Token roles are replicated configuration; nothing else there is.
		{"update", "auth/token/roles/app", true},
		{"delete", "auth/token/roles/app", true},
		{"read", "auth/token/roles/app", false},
		{"update", "auth/token/roles/", false},
		{"update", "auth/token/create/app", false},
		{"update", "auth/token/roles/../create", false},
		{"update", "", false},
		{"update", "secret/../sys/seal", false},
		{"sudo", "secret/x", false},
	} {
		err := Allowed(tc.op, tc.path)
		if (err == nil) != tc.ok {
			t.Errorf("Allowed(%q, %q) = %v, want ok=%v", tc.op, tc.path, err, tc.ok)
		}
	}
}
