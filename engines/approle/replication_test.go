package approle

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/engines/internal/enginetest"
	"github.com/cofferhq/coffer/logical"
)

func TestServedLocally(t *testing.T) {
	b := New()
	enginetest.ServedLocally(t, b, []enginetest.Route{
		{Op: wr, Path: "role/web/secret-id", Local: true},
		{Op: cr, Path: "role/web/secret-id", Local: true},
		{Op: wr, Path: "role/web/custom-secret-id", Local: true},
		{Op: wr, Path: "role/web/secret-id/lookup", Local: true},
		{Op: wr, Path: "role/web/secret-id/destroy", Local: true},
		{Op: del, Path: "role/web/secret-id/destroy", Local: true},
		{Op: wr, Path: "role/web/secret-id-accessor/lookup", Local: true},
		{Op: wr, Path: "role/web/secret-id-accessor/destroy", Local: true},
		{Op: del, Path: "role/web/secret-id-accessor/destroy", Local: true},
		{Op: wr, Path: "tidy/secret-id", Local: true},
		{Op: wr, Path: "login", Local: true},
		{Op: wr, Path: "role/Web/secret-id", Local: true},
		{Op: cr, Path: "role/web"},
		{Op: wr, Path: "role/web"},
		{Op: del, Path: "role/web"},
		{Op: wr, Path: "role/web/role-id"},
		{Op: wr, Path: "role/web/nope"},
		{Op: wr, Path: "login/web"},
		{Op: wr, Path: "tidy"},
		{Op: wr, Path: "role/-bad/secret-id"},
	})
	jsonEq(t, "prefixes", b.LocalStoragePrefixes(), []string{"secret_id/", "accessor/"})
}

// TestLocalWrites checks that every key the locally served endpoints write
// lies under LocalStoragePrefixes, and that role writes stay outside them.
func TestLocalWrites(t *testing.T) {
	h := newHarness(t)
	local := h.b.LocalStoragePrefixes()
	id := h.role("a", map[string]any{"secret_id_num_uses": 2})
	for _, k := range h.rec.reset() {
		if underAny(k, local) {
			t.Fatalf("role write wrote local key %q", k)
		}
	}
	gen := h.secret("a", nil)
	sec := gen["secret_id"].(string)
	h.must(wr, "role/a/custom-secret-id", map[string]any{"secret_id": "custom", "ttl": 1})
	h.login(id, sec)
	h.login(id, sec) // the last use: deletes
	gen2 := h.secret("a", nil)
	h.must(wr, "role/a/secret-id-accessor/destroy", map[string]any{"secret_id_accessor": gen2["secret_id_accessor"]})
	h.clock = h.clock.AddDate(0, 0, 1)
	h.must(wr, "tidy/secret-id", nil)
	written := h.rec.reset()
	if len(written) < 8 {
		t.Fatalf("only %d keys written: %v", len(written), written)
	}
	for _, k := range written {
		if !underAny(k, local) {
			t.Fatalf("a locally served request wrote replicated key %q", k)
		}
	}
	// Listing the storage: local keys are the salt, secret ids and accessors only.
	for _, k := range h.keys() {
		switch {
		case k == localSaltKey, strings.HasPrefix(k, secretIDPrefix), strings.HasPrefix(k, accessorPrefix):
		case strings.HasPrefix(k, rolePrefix), strings.HasPrefix(k, roleIDPrefix), k == roleSaltKey:
		default:
			t.Fatalf("unexpected key %q", k)
		}
	}
}

// TestNothingInClear checks that no key and no value holds a secret id, and
// no key an accessor or a role_id.
func TestNothingInClear(t *testing.T) {
	h := newHarness(t)
	id := h.role("a", map[string]any{"role_id": "my-role-id"})
	gen := h.secret("a", nil)
	h.must(wr, "role/a/custom-secret-id", map[string]any{"secret_id": "pushed-secret"})
	ctx := context.Background()
	for _, k := range h.keys() {
		for _, s := range []string{id, gen["secret_id"].(string), gen["secret_id_accessor"].(string), "pushed-secret"} {
			if strings.Contains(k, s) {
				t.Fatalf("key %q holds %q in clear", k, s)
			}
		}
		e, err := h.view.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{gen["secret_id"].(string), "pushed-secret"} {
			if strings.Contains(string(e.Value), s) {
				t.Fatalf("value of %q holds a secret id", k)
			}
		}
	}
}

// TestAnotherCluster runs a secondary over its own storage, sharing the
// primary's replicated keys: its secret ids live and die there, and a
// secret id of one cluster does not log in on the other.
func TestAnotherCluster(t *testing.T) {
	p := newHarness(t)
	id := p.role("a", map[string]any{"secret_id_num_uses": 2})
	secP := p.secret("a", nil)["secret_id"].(string)

	s := p.newSecondary()
	// Role writes are not served locally: the secondary's storage refuses
	// them with ErrReadOnly, which the router turns into a forward.
	if _, err := s.req(wr, "role/b", nil); !errors.Is(err, logical.ErrReadOnly) {
		t.Fatalf("role write on the secondary: %v, want ErrReadOnly", err)
	}
	s.rec.reset()
	gen := s.secret("a", nil)
	secS := gen["secret_id"].(string)
	s.login(id, secS)
	jsonEq(t, "secondary lookup", s.must(wr, "role/a/secret-id/lookup", map[string]any{"secret_id": secS}).Data["secret_id_num_uses"], 1)
	jsonEq(t, "secondary list", s.must(list, "role/a/secret-id", nil).Data["keys"], []string{gen["secret_id_accessor"].(string)})

	// Each cluster refuses the other's secret id, with the same answer.
	s.refused(id, secP)
	p.refused(id, secS)
	if resp := p.must(wr, "role/a/secret-id/lookup", map[string]any{"secret_id": secS}); resp != nil {
		t.Fatalf("the primary sees the secondary's secret id: %+v", resp)
	}
	p.fails(wr, "role/a/secret-id-accessor/lookup", map[string]any{"secret_id_accessor": gen["secret_id_accessor"]}, 404, "failed to find accessor entry")
	p.login(id, secP)

	// A custom role_id set on the primary reaches the secondary.
	p.must(wr, "role/a/role-id", map[string]any{"role_id": "new-id"})
	p.replicateTo(s)
	s.refused(id, secS)
	s.login("new-id", secS) // the last use, spent on the secondary only
	s.refused("new-id", secS)
	p.login("new-id", secP)

	// The role deleted on the primary: the secondary's secret ids no longer
	// log in, its tidy removes them, and a role created again under the
	// same name does not inherit them.
	secS = s.secret("a", nil)["secret_id"].(string)
	p.must(del, "role/a", nil)
	p.replicateTo(s)
	s.refused("new-id", secS)
	s.must(wr, "tidy/secret-id", nil)
	for _, k := range s.keys() {
		if k != localSaltKey && underAny(k, s.b.LocalStoragePrefixes()) {
			t.Fatalf("key %q left on the secondary after tidy", k)
		}
	}
	for _, k := range s.rec.reset() {
		if !underAny(k, s.b.LocalStoragePrefixes()) {
			t.Fatalf("the secondary wrote replicated key %q", k)
		}
	}
}

func TestOrphanAfterRecreate(t *testing.T) {
	p := newHarness(t)
	p.role("a", map[string]any{"role_id": "rid"})
	s := p.newSecondary()
	secS := s.secret("a", nil)["secret_id"].(string)
	p.must(del, "role/a", nil)
	p.role("a", map[string]any{"role_id": "rid"})
	p.replicateTo(s)
	s.refused("rid", secS)
	if resp := s.must(wr, "role/a/secret-id/lookup", map[string]any{"secret_id": secS}); resp != nil {
		t.Fatalf("a recreated role sees its predecessor's secret id: %+v", resp)
	}
}
