package acl

import (
	"slices"
	"testing"
)

func TestParseCapabilityKnowsVaultsNames(t *testing.T) {
	for _, name := range []string{"deny", "create", "read", "update", "patch", "delete", "list", "sudo", "subscribe", "recover"} {
		c, ok := ParseCapability(name)
		if !ok || c == 0 {
			t.Fatalf("ParseCapability(%q) = %v, %v; want a known capability", name, c, ok)
		}
		if got := c.Strings(); !slices.Equal(got, []string{name}) {
			t.Fatalf("%q round-trips as %v", name, got)
		}
	}
	for _, name := range []string{"reed", "Read", "write", "root", ""} {
		if _, ok := ParseCapability(name); ok {
			t.Fatalf("ParseCapability(%q) accepted an unknown name", name)
		}
	}
}

func TestAllowsNeedsTheOperationsCapabilityAndNoDeny(t *testing.T) {
	tests := []struct {
		caps Capability
		op   Operation
		want bool
	}{
		{Read, OpRead, true},
		{Read, OpList, false},
		{Read | List, OpList, true},
		{Create, OpUpdate, false},
		{Update, OpPatch, false}, // patch is its own capability in Vault
		{Patch, OpPatch, true},
		{Delete, OpDelete, true},
		{AllCapabilities, OpCreate, true},
		{Deny | Read, OpRead, false},
		{Deny, OpRead, false},
		{0, OpRead, false},
		{AllCapabilities, Operation("rollback"), false},
		{AllCapabilities, Operation(""), false},
	}
	for _, tt := range tests {
		if got := tt.caps.Allows(tt.op); got != tt.want {
			t.Errorf("%v.Allows(%q) = %v, want %v", tt.caps, tt.op, got, tt.want)
		}
	}
	if Read.Has(0) {
		t.Error("Has(0) must be false: an empty requirement is never granted")
	}
	if got := (Read | Sudo | List).String(); got != "[read list sudo]" {
		t.Errorf("String() = %q", got)
	}
}
