package approle

import (
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestGenerateLookupDestroy(t *testing.T) {
	h := newHarness(t)
	h.role("a", map[string]any{"secret_id_ttl": "1h", "secret_id_num_uses": 5, "secret_id_bound_cidrs": "10.0.0.0/8"})
	h.fails(list, "role/a/secret-id", nil, 404, "no secret ids")

	gen := h.secret("a", map[string]any{
		"metadata":  `{"env":"prod","team":"web"}`,
		"cidr_list": "10.1.0.0/16",
		"ttl":       "30m",
		"num_uses":  2,
	})
	sec, acc := gen["secret_id"].(string), gen["secret_id_accessor"].(string)
	for _, v := range []string{sec, acc} {
		if _, err := uuid.Parse(v); err != nil {
			t.Fatalf("%q is not a UUID", v)
		}
	}
	jsonEq(t, "generate", gen, map[string]any{
		"secret_id": sec, "secret_id_accessor": acc, "secret_id_ttl": 1800, "secret_id_num_uses": 2,
	})

	created := h.clock.Format(time.RFC3339Nano)
	want := map[string]any{
		"cidr_list":          []string{"10.1.0.0/16"},
		"creation_time":      created,
		"expiration_time":    h.clock.Add(30 * time.Minute).Format(time.RFC3339Nano),
		"last_updated_time":  created,
		"metadata":           map[string]string{"env": "prod", "team": "web"},
		"secret_id_accessor": acc,
		"secret_id_num_uses": 2,
		"secret_id_ttl":      1800,
		"token_bound_cidrs":  []string{},
	}
	jsonEq(t, "lookup", h.must(wr, "role/a/secret-id/lookup", map[string]any{"secret_id": sec}).Data, want)
	jsonEq(t, "accessor lookup", h.must(wr, "role/a/secret-id-accessor/lookup", map[string]any{"secret_id_accessor": acc}).Data, want)

	// Defaults come from the role.
	gen2 := h.secret("a", nil)
	jsonEq(t, "defaults", []any{gen2["secret_id_ttl"], gen2["secret_id_num_uses"]}, []any{3600, 5})
	keys := h.must(list, "role/a/secret-id", nil).Data["keys"].([]string)
	if len(keys) != 2 || !(keys[0] == acc || keys[1] == acc) {
		t.Fatalf("list: %v", keys)
	}

	// Unknown ones: nothing (204), as Vault answers; unknown accessor 404.
	if resp := h.must(wr, "role/a/secret-id/lookup", map[string]any{"secret_id": "nope"}); resp != nil {
		t.Fatalf("lookup of an unknown secret id: %+v", resp)
	}
	if resp := h.must(wr, "role/a/secret-id/destroy", map[string]any{"secret_id": "nope"}); resp != nil {
		t.Fatalf("destroy of an unknown secret id: %+v", resp)
	}
	h.fails(wr, "role/a/secret-id-accessor/lookup", map[string]any{"secret_id_accessor": "nope"}, 404, `failed to find accessor entry for secret_id_accessor: "nope"`)
	h.fails(wr, "role/a/secret-id-accessor/destroy", map[string]any{"secret_id_accessor": "nope"}, 404, "failed to find accessor entry")
	h.fails(wr, "role/a/secret-id/lookup", nil, 400, "missing secret_id")
	h.fails(wr, "role/a/secret-id-accessor/lookup", nil, 400, "missing secret_id_accessor")
	h.fails(wr, "role/zz/secret-id/lookup", map[string]any{"secret_id": sec}, 404, `role "zz" does not exist`)

	// Destroy by value, then by accessor.
	h.must(wr, "role/a/secret-id/destroy", map[string]any{"secret_id": sec})
	if resp := h.must(wr, "role/a/secret-id/lookup", map[string]any{"secret_id": sec}); resp != nil {
		t.Fatalf("lookup after destroy: %+v", resp)
	}
	h.fails(wr, "role/a/secret-id-accessor/lookup", map[string]any{"secret_id_accessor": acc}, 404, "failed to find accessor entry")
	h.must(del, "role/a/secret-id-accessor/destroy", map[string]any{"secret_id_accessor": gen2["secret_id_accessor"]})
	h.fails(list, "role/a/secret-id", nil, 404, "no secret ids")
}

func TestAccessorOfAnotherRole(t *testing.T) {
	h := newHarness(t)
	h.role("a", nil)
	h.role("b", nil)
	acc := h.secret("a", nil)["secret_id_accessor"]
	h.fails(wr, "role/b/secret-id-accessor/lookup", map[string]any{"secret_id_accessor": acc}, 404, "failed to find accessor entry")
	h.fails(wr, "role/b/secret-id-accessor/destroy", map[string]any{"secret_id_accessor": acc}, 404, "failed to find accessor entry")
	h.must(wr, "role/a/secret-id-accessor/lookup", map[string]any{"secret_id_accessor": acc})
}

func TestGenerateLimits(t *testing.T) {
	h := newHarness(t)
	h.role("a", map[string]any{"secret_id_ttl": "1h", "secret_id_num_uses": 3,
		"secret_id_bound_cidrs": "10.0.0.0/8", "token_bound_cidrs": "10.0.0.0/8"})
	for _, c := range []struct {
		data map[string]any
		want string
	}{
		{map[string]any{"num_uses": -1}, "num_uses cannot be negative"},
		{map[string]any{"num_uses": 4}, "num_uses cannot be higher than the role's secret_id_num_uses"},
		{map[string]any{"num_uses": 0}, "num_uses cannot be higher than the role's secret_id_num_uses"},
		{map[string]any{"ttl": "2h"}, "ttl cannot be longer than the role's secret_id_ttl"},
		{map[string]any{"ttl": 0}, "ttl cannot be longer than the role's secret_id_ttl"},
		{map[string]any{"ttl": "-1s"}, "ttl: must not be negative"},
		{map[string]any{"cidr_list": "11.0.0.0/8"}, "failed to verify subset relationship between CIDR blocks on the role"},
		{map[string]any{"cidr_list": "0.0.0.0/0"}, "failed to verify subset relationship"},
		{map[string]any{"token_bound_cidrs": "192.168.0.1"}, "failed to verify subset relationship"},
		{map[string]any{"metadata": "{bad"}, "metadata: expected a JSON object of strings"},
		{map[string]any{"metadata": `{"n":1}`}, `metadata: value of "n" must be a string`},
	} {
		h.fails(wr, "role/a/secret-id", c.data, 400, c.want)
	}
	h.secret("a", map[string]any{"cidr_list": "10.2.3.4", "token_bound_cidrs": "10.9.0.0/16", "num_uses": 3, "ttl": 60})
	h.secret("a", map[string]any{"metadata": map[string]any{"k": "v"}})

	h.role("nobind", map[string]any{"bind_secret_id": false, "secret_id_bound_cidrs": "127.0.0.1"})
	h.fails(wr, "role/nobind/secret-id", nil, 400, "bind_secret_id is not set on the role")
	h.fails(wr, "role/zz/secret-id", nil, 404, `role "zz" does not exist`)
}

func TestCustomSecretID(t *testing.T) {
	h := newHarness(t)
	id := h.role("a", nil)
	h.role("b", nil)
	resp := h.must(wr, "role/a/custom-secret-id", map[string]any{"secret_id": "s3cret", "num_uses": 2})
	jsonEq(t, "custom", resp.Data["secret_id"], "s3cret")
	jsonEq(t, "uses", resp.Data["secret_id_num_uses"], 2)
	h.fails(wr, "role/a/custom-secret-id", map[string]any{"secret_id": "s3cret"}, 400, "SecretID is already registered")
	// The same value on another role is another secret id.
	h.must(wr, "role/b/custom-secret-id", map[string]any{"secret_id": "s3cret"})
	h.fails(wr, "role/a/custom-secret-id", nil, 400, "missing secret_id")
	h.fails(wr, "role/a/custom-secret-id", map[string]any{"secret_id": 12}, 400, "secret_id: expected a string, got a number")
	h.login(id, "s3cret")
}
