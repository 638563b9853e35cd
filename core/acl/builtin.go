package acl

// Names of the built-in policies.
const (
	// RootPolicyName is the policy of root tokens: every capability, sudo
	// included, on every path. It has no text, cannot be written, modified or
	// deleted.
	RootPolicyName = "root"
	// DefaultPolicyName is the policy attached to every token unless the
	// token's creator opts out. Operators may rewrite it but not delete it.
	DefaultPolicyName = "default"
	// ResponseWrappingPolicyName is the policy of the single-use tokens that
	// hold a wrapped response. Built in and immutable, never assignable.
	ResponseWrappingPolicyName = "response-wrapping"
)

// DefaultPolicy is the initial text of the default policy: what any token
// needs to manage itself. It keeps the parts of Vault's default policy that
// concern Coffer (token self-service, leases, the cubbyhole, response
// wrapping, hashing) and leaves out identity templating, control groups, the
// UI and OIDC, which Coffer does not have.
const DefaultPolicy = `# The default policy: every token may manage itself with it.
# Operators may edit it; it cannot be deleted.

# The token itself: look it up, renew it, revoke it.
path "auth/token/lookup-self" {
  capabilities = ["read"]
}

path "auth/token/renew-self" {
  capabilities = ["update"]
}

path "auth/token/revoke-self" {
  capabilities = ["update"]
}

# Which capabilities does this token have on a path?
path "sys/capabilities-self" {
  capabilities = ["update"]
}

# Leases held by the token.
path "sys/renew" {
  capabilities = ["update"]
}

path "sys/leases/renew" {
  capabilities = ["update"]
}

path "sys/leases/lookup" {
  capabilities = ["update"]
}

# The token's private cubbyhole.
path "cubbyhole/*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}

# Response wrapping: wrap a value, inspect and open a wrapping token.
path "sys/wrapping/wrap" {
  capabilities = ["update"]
}

path "sys/wrapping/lookup" {
  capabilities = ["update"]
}

path "sys/wrapping/unwrap" {
  capabilities = ["update"]
}

# Hashing helpers.
path "sys/tools/hash" {
  capabilities = ["update"]
}

path "sys/tools/hash/*" {
  capabilities = ["update"]
}
`

// ResponseWrappingPolicy is the text of the response-wrapping policy: the
// wrapping token may read its response from its cubbyhole and unwrap itself.
const ResponseWrappingPolicy = `path "cubbyhole/response" {
  capabilities = ["create", "read"]
}

path "sys/wrapping/unwrap" {
  capabilities = ["update"]
}
`

// IsRoot reports whether name is the root policy's.
func IsRoot(name string) bool { return NormalizeName(name) == RootPolicyName }

// IsImmutable reports whether the policy called name is built in and can be
// neither written, modified nor deleted (root, response-wrapping).
func IsImmutable(name string) bool {
	switch NormalizeName(name) {
	case RootPolicyName, ResponseWrappingPolicyName:
		return true
	}
	return false
}

// IsDeletable reports whether the policy called name may be deleted: every
// policy but the built-in ones (default included, which may only be edited).
func IsDeletable(name string) bool {
	return !IsImmutable(name) && NormalizeName(name) != DefaultPolicyName
}

// RootPolicy returns the root policy. An ACL holding it allows everything.
func RootPolicy() *Policy { return &Policy{Name: RootPolicyName} }

// Default returns the built-in default policy, parsed from DefaultPolicy.
// A policy store that lets operators rewrite it parses their text instead.
func Default() *Policy { return mustParse(DefaultPolicyName, DefaultPolicy) }

// ResponseWrapping returns the built-in response-wrapping policy.
func ResponseWrapping() *Policy { return mustParse(ResponseWrappingPolicyName, ResponseWrappingPolicy) }

func mustParse(name, text string) *Policy {
	p, err := parse(name, text)
	if err != nil {
		panic("acl: built-in policy does not parse: " + err.Error())
	}
	return p
}
