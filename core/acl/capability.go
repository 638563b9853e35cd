package acl

import "strings"

// Capability is a set of the capabilities a policy path grants, one bit each.
// The zero value grants nothing.
type Capability uint16

// The capabilities of Vault's policy language. Deny is not a permission but a
// verdict: a rule holding Deny holds nothing else (the parser and the merge
// both enforce it) and refuses every operation on the paths it decides.
//
// Subscribe (Vault's event subscriptions) and Recover (Vault's snapshot
// recovery) are accepted so that policies written for Vault parse unchanged,
// and they are kept in the set, but no Coffer operation requires them: they
// grant nothing until Coffer serves those APIs.
const (
	Deny Capability = 1 << iota
	Create
	Read
	Update
	Patch
	Delete
	List
	Sudo
	Subscribe
	Recover
)

// AllCapabilities is every granting capability (Deny excluded): what the root
// policy holds on every path.
const AllCapabilities = Create | Read | Update | Patch | Delete | List | Sudo | Subscribe | Recover

// capabilityNames is in the canonical order used by Strings and in messages.
var capabilityNames = [...]struct {
	name string
	c    Capability
}{
	{"deny", Deny},
	{"create", Create},
	{"read", Read},
	{"update", Update},
	{"patch", Patch},
	{"delete", Delete},
	{"list", List},
	{"sudo", Sudo},
	{"subscribe", Subscribe},
	{"recover", Recover},
}

// validCapabilities lists the accepted names, for error messages.
var validCapabilities = func() string {
	names := make([]string, len(capabilityNames))
	for i, n := range capabilityNames {
		names[i] = n.name
	}
	return strings.Join(names, ", ")
}()

// ParseCapability returns the capability named name (Vault's spelling, lower
// case) and whether the name is known.
func ParseCapability(name string) (Capability, bool) {
	for _, n := range capabilityNames {
		if n.name == name {
			return n.c, true
		}
	}
	return 0, false
}

// Has reports whether c holds every capability of x. Has(0) is false, so a
// missing requirement never reads as granted.
func (c Capability) Has(x Capability) bool {
	return x != 0 && c&x == x
}

// Allows reports whether c permits op: c holds the capability op requires and
// does not hold Deny. An unknown operation is never allowed.
func (c Capability) Allows(op Operation) bool {
	return c&Deny == 0 && c.Has(op.Capability())
}

// Strings returns the names of the capabilities in c in the canonical order
// deny, create, read, update, patch, delete, list, sudo, subscribe, recover.
// (Vault's sys/capabilities answers "deny" for an empty set and "root" for a
// root token; that translation belongs to the caller.)
func (c Capability) Strings() []string {
	var out []string
	for _, n := range capabilityNames {
		if c&n.c != 0 {
			out = append(out, n.name)
		}
	}
	return out
}

// String returns the capabilities as a bracketed list, "[create read]".
func (c Capability) String() string {
	return "[" + strings.Join(c.Strings(), " ") + "]"
}

// Operation is the kind of a logical request, spelled as Vault's
// logical.Operation. Deciding which operation a request is (for example create
// versus update after an existence check) is the caller's job.
type Operation string

// The operations a policy can authorize.
const (
	OpCreate Operation = "create"
	OpRead   Operation = "read"
	OpUpdate Operation = "update"
	OpPatch  Operation = "patch"
	OpDelete Operation = "delete"
	OpList   Operation = "list"
)

// Capability returns the capability op requires, or 0 for an operation this
// package does not know (which Allows then refuses).
func (op Operation) Capability() Capability {
	switch op {
	case OpCreate:
		return Create
	case OpRead:
		return Read
	case OpUpdate:
		return Update
	case OpPatch:
		return Patch
	case OpDelete:
		return Delete
	case OpList:
		return List
	}
	return 0
}
