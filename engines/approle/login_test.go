package approle

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cofferhq/coffer/logical"
)

func TestLoginShape(t *testing.T) {
	h := newHarness(t)
	id := h.role("web", map[string]any{
		"token_policies": "b,a", "token_ttl": "20m", "token_max_ttl": "1h",
		"token_num_uses": 7,
	})
	sec := h.secret("web", map[string]any{"metadata": `{"env":"prod"}`})["secret_id"].(string)
	auth := h.login(id, sec)
	jsonEq(t, "policies", auth.Policies, []string{"a", "b", "default"})
	jsonEq(t, "token policies", auth.TokenPolicies, []string{"a", "b", "default"})
	jsonEq(t, "metadata", auth.Metadata, map[string]string{"role_name": "web", "env": "prod"})
	if auth.DisplayName != "approle" || auth.TTL != 20*time.Minute || auth.ExplicitMaxTTL != time.Hour ||
		auth.NumUses != 7 || !auth.Renewable || auth.Period != 0 || auth.TokenType != "service" {
		t.Fatalf("auth: %+v", auth)
	}

	// A periodic role with no default policy.
	h.must(wr, "role/web", map[string]any{"token_period": "1h", "token_no_default_policy": true})
	auth = h.login(id, sec)
	jsonEq(t, "no default", auth.Policies, []string{"a", "b"})
	if auth.Period != time.Hour || auth.ExplicitMaxTTL != 0 {
		t.Fatalf("periodic auth: %+v", auth)
	}
	// The login path is unauthenticated and the only one.
	if !LoginPath("login") || LoginPath("role/web") || LoginPath("login/x") {
		t.Fatal("LoginPath")
	}
	jsonEq(t, "unauthenticated", UnauthenticatedPaths(), []string{"login"})
}

func TestLoginRefusals(t *testing.T) {
	h := newHarness(t)
	idA := h.role("a", nil)
	idB := h.role("b", nil)
	secA := h.secret("a", nil)["secret_id"].(string)
	secB := h.secret("b", nil)["secret_id"].(string)

	h.refused(idA, "wrong")
	h.refused(idA, "")
	h.refused("no-such-role-id", secA)
	h.refused(idA, secB) // a secret id of another role
	h.refused(idB, secA)
	h.fails(wr, "login", map[string]any{"secret_id": secA}, 400, "missing role_id")
	h.fails(wr, "login", map[string]any{"role_id": idA, "secret_id": 5}, 400, "secret_id: expected a string, got a number")
	h.login(idA, secA)
	h.login(idB, secB)
}

func TestLoginExpired(t *testing.T) {
	h := newHarness(t)
	id := h.role("a", map[string]any{"secret_id_ttl": "10m"})
	sec := h.secret("a", nil)["secret_id"].(string)
	h.clock = h.clock.Add(9 * time.Minute)
	h.login(id, sec)
	h.clock = h.clock.Add(time.Minute)
	h.refused(id, sec)

	// tidy removes it with its accessor.
	resp := h.must(wr, "tidy/secret-id", nil)
	if resp.StatusCode != 202 || !strings.Contains(resp.Warnings[0], "removed 1 ") {
		t.Fatalf("tidy: %+v", resp)
	}
	for _, k := range h.keys() {
		if k != localSaltKey && underAny(k, h.b.LocalStoragePrefixes()) {
			t.Fatalf("key %q left after tidy", k)
		}
	}
}

func TestLoginExhausted(t *testing.T) {
	h := newHarness(t)
	id := h.role("a", map[string]any{"secret_id_num_uses": 1})
	gen := h.secret("a", nil)
	sec := gen["secret_id"].(string)
	h.login(id, sec)
	h.refused(id, sec)
	h.fails(wr, "role/a/secret-id-accessor/lookup", map[string]any{"secret_id_accessor": gen["secret_id_accessor"]}, 404, "failed to find accessor entry")

	// Two uses: the count goes down, then the secret id is gone.
	sec = h.secret("a", map[string]any{"num_uses": 1})["secret_id"].(string)
	h.role("two", map[string]any{"secret_id_num_uses": 2})
	id2 := h.must(rd, "role/two/role-id", nil).Data["role_id"].(string)
	sec2 := h.secret("two", nil)["secret_id"].(string)
	h.clock = h.clock.Add(time.Second)
	h.login(id2, sec2)
	look := h.must(wr, "role/two/secret-id/lookup", map[string]any{"secret_id": sec2}).Data
	jsonEq(t, "uses left", look["secret_id_num_uses"], 1)
	jsonEq(t, "updated", look["last_updated_time"], h.clock.Format(time.RFC3339Nano))
	h.login(id2, sec2)
	h.refused(id2, sec2)
	h.login(id, sec)
}

func TestLoginUsesUnderConcurrency(t *testing.T) {
	h := newHarness(t)
	id := h.role("a", map[string]any{"secret_id_num_uses": 5})
	sec := h.secret("a", nil)["secret_id"].(string)
	var ok, bad atomic.Int32
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			_, err := h.req(wr, "login", map[string]any{"role_id": id, "secret_id": sec})
			if err == nil {
				ok.Add(1)
			} else if err.Error() == "invalid role or secret ID" {
				bad.Add(1)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 5 || bad.Load() != 15 {
		t.Fatalf("%d logins succeeded and %d were refused, want 5 and 15", ok.Load(), bad.Load())
	}
}

func TestLoginWithoutSecretID(t *testing.T) {
	h := newHarness(t)
	id := h.role("a", map[string]any{"bind_secret_id": false, "secret_id_bound_cidrs": "127.0.0.0/8"})
	auth := h.login(id, "")
	jsonEq(t, "metadata", auth.Metadata, map[string]string{"role_name": "a"})
	h.login(id, "ignored")
	h.refused("other", "")

	h.remote = "10.1.2.3:4000"
	h.fails(wr, "login", map[string]any{"role_id": id}, 403, "CIDR restrictions on the role")
	h.remote = ""
	h.fails(wr, "login", map[string]any{"role_id": id}, 403, "the client's address is unknown")
}

func TestLoginBoundCIDRs(t *testing.T) {
	h := newHarness(t)
	id := h.role("a", map[string]any{"secret_id_bound_cidrs": "10.0.0.0/8", "token_bound_cidrs": "10.0.0.0/8", "secret_id_num_uses": 1})
	sec := h.secret("a", map[string]any{"cidr_list": "10.1.0.0/16", "token_bound_cidrs": "10.1.2.0/24"})["secret_id"].(string)

	for remote, want := range map[string]string{
		"192.168.0.1:1": "CIDR restrictions on the role",
		"10.2.0.1:1":    "CIDR restrictions on the secret ID",
		"10.1.3.1":      "token_bound_cidrs",
	} {
		h.remote = remote
		err := h.fails(wr, "login", map[string]any{"role_id": id, "secret_id": sec}, 403, want)
		if strings.Contains(err.Error(), sec) {
			t.Fatalf("error %q shows the secret id", err)
		}
	}
	// No use was spent by the refusals.
	h.remote = "[::ffff:10.1.2.9]:443"
	h.login(id, sec)
	h.refused(id, sec)
	if logical.StatusCode(errInvalidCredentials) != 400 {
		t.Fatal("status")
	}
}
