package userpass

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"

	"github.com/cofferhq/coffer/logical"
)

// vaultShim serves one backend at /v1/auth/userpass/ the way Vault's HTTP
// layer does, just enough for vault/api to talk to it: it stands in for the
// router and httpapi, which other packages own, so that this package can
// prove its request and response shapes work with the real client. On a
// login it puts a made-up token where the router would create a real one.
func vaultShim(t *testing.T, h *harness) *api.Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path, ok := strings.CutPrefix(r.URL.Path, "/v1/"+mount)
		if !ok {
			http.NotFound(w, r)
			return
		}
		if !LoginPath(path) && r.Header.Get("X-Vault-Token") == "" {
			http.Error(w, "missing client token", http.StatusForbidden)
			return
		}
		data := map[string]any{}
		if r.Body != nil {
			dec := json.NewDecoder(r.Body)
			dec.UseNumber()
			if err := dec.Decode(&data); err != nil && err.Error() != "EOF" {
				http.Error(w, err.Error(), 400)
				return
			}
		}
		var op logical.Operation
		switch r.Method {
		case http.MethodGet:
			op = logical.ReadOperation
			if r.URL.Query().Get("list") == "true" {
				op = logical.ListOperation
			}
		case "LIST":
			op = logical.ListOperation
		case http.MethodPost, http.MethodPut:
			exists, err := h.b.ExistenceCheck(r.Context(), &logical.Request{Path: path, Storage: h.view})
			if err != nil {
				http.Error(w, err.Error(), logical.StatusCode(err))
				return
			}
			op = logical.CreateOperation
			if exists {
				op = logical.UpdateOperation
			}
		case http.MethodDelete:
			op = logical.DeleteOperation
		}
		resp, err := h.b.HandleRequest(r.Context(), &logical.Request{
			Operation: op, Path: path, Data: data, Storage: h.view, MountPoint: mount, RemoteAddr: r.RemoteAddr,
		})
		w.Header().Set("Content-Type", "application/json")
		if err != nil {
			w.WriteHeader(logical.StatusCode(err))
			_ = json.NewEncoder(w).Encode(map[string]any{"errors": []string{err.Error()}})
			return
		}
		if resp == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		var auth *logical.Auth
		if resp.Auth != nil {
			a := *resp.Auth
			a.ClientToken, a.Accessor = "hvs.shim", "accessor"
			a.LeaseDuration = int(a.TTL.Seconds())
			auth = &a
		}
		_ = json.NewEncoder(w).Encode(map[string]any{
			"request_id": "r", "lease_id": "", "renewable": false, "lease_duration": 0,
			"data": resp.Data, "wrap_info": nil, "warnings": resp.Warnings, "auth": auth,
		})
	}))
	t.Cleanup(srv.Close)
	cfg := api.DefaultConfig()
	cfg.Address = srv.URL
	cfg.MaxRetries = 0
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken("root")
	return c
}

func TestVaultAPI(t *testing.T) {
	h := newHarness(t)
	c := vaultShim(t, h)

	if _, err := c.Logical().Write("auth/userpass/users/Alice", map[string]any{
		"password": "s3cr3t", "token_policies": []string{"dev", "ops"}, "token_ttl": "30m", "token_num_uses": 4,
	}); err != nil {
		t.Fatalf("create user: %v", err)
	}
	s, err := c.Logical().Read("auth/userpass/users/alice")
	if err != nil || s == nil {
		t.Fatalf("read user: %v %v", s, err)
	}
	if s.Data["token_ttl"] != json.Number("1800") || s.Data["password"] != nil {
		t.Fatalf("read user: %v", s.Data)
	}
	l, err := c.Logical().List("auth/userpass/users")
	if err != nil || l == nil {
		t.Fatalf("list: %v %v", l, err)
	}
	jsonEq(t, "list", l.Data["keys"], []string{"alice"})

	// Login needs no token.
	anon, err := c.Clone()
	if err != nil {
		t.Fatal(err)
	}
	anon.ClearToken()
	s, err = anon.Logical().Write("auth/userpass/login/alice", map[string]any{"password": "s3cr3t"})
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	if s.Auth == nil || s.Auth.ClientToken != "hvs.shim" || s.Auth.LeaseDuration != 1800 || !s.Auth.Renewable {
		t.Fatalf("login auth: %+v", s.Auth)
	}
	jsonEq(t, "policies", s.Auth.Policies, []string{"default", "dev", "ops"})
	jsonEq(t, "metadata", s.Auth.Metadata, map[string]string{"username": "alice"})
	if ttl, err := s.TokenTTL(); err != nil || ttl.Minutes() != 30 {
		t.Fatalf("TokenTTL %v %v", ttl, err)
	}

	_, err = anon.Logical().Write("auth/userpass/login/alice", map[string]any{"password": "wrong"})
	var re *api.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 400 || strings.Join(re.Errors, "") != "invalid username or password" {
		t.Fatalf("wrong password: %v", err)
	}

	if _, err := c.Logical().Write("auth/userpass/users/alice/password", map[string]any{"password": "n3w"}); err != nil {
		t.Fatalf("password update: %v", err)
	}
	if _, err := anon.Logical().Write("auth/userpass/login/alice", map[string]any{"password": "n3w"}); err != nil {
		t.Fatalf("login with the new password: %v", err)
	}
	if _, err := c.Logical().Delete("auth/userpass/users/alice"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if s, err := c.Logical().Read("auth/userpass/users/alice"); err != nil || s != nil {
		t.Fatalf("read after delete: %v %v, want nil, nil (a 404)", s, err)
	}
}
