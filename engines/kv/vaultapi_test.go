package kv

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/cofferhq/coffer/logical"
)

// vaultShim serves one backend at /v1/secret/ the way Vault's HTTP layer
// does, just enough for vault/api to talk to it: it stands in for the router
// and httpapi, which other packages own, so that this package can prove its
// response shapes decode in the real client.
func vaultShim(t *testing.T, h *harness) *api.Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path, ok := strings.CutPrefix(r.URL.Path+"/", "/v1/secret/")
		path = strings.TrimSuffix(path, "/")
		if !ok {
			http.NotFound(w, r)
			return
		}
		data := map[string]any{}
		if r.Body != nil {
			if err := json.NewDecoder(r.Body).Decode(&data); err != nil && err.Error() != "EOF" {
				http.Error(w, err.Error(), 400)
				return
			}
		}
		var op logical.Operation
		switch r.Method {
		case http.MethodGet:
			op = logical.ReadOperation
			for k, v := range r.URL.Query() {
				data[k] = v[0]
			}
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
		case http.MethodPatch:
			if r.Header.Get("Content-Type") != "application/merge-patch+json" {
				http.Error(w, "unsupported content type", http.StatusUnsupportedMediaType)
				return
			}
			op = logical.PatchOperation
		case http.MethodDelete:
			op = logical.DeleteOperation
		}
		resp, err := h.b.HandleRequest(r.Context(), &logical.Request{Operation: op, Path: path, Data: data, Storage: h.view})
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
		code := http.StatusOK
		if resp.StatusCode != 0 {
			code = resp.StatusCode
		}
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]any{
			"request_id": "r", "lease_id": "", "renewable": false, "lease_duration": 0,
			"data": resp.Data, "wrap_info": nil, "warnings": resp.Warnings, "auth": nil,
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

func TestVaultAPIKVv2(t *testing.T) {
	h := newHarness(t, "2")
	kv := vaultShim(t, h).KVv2("secret")
	ctx := context.Background()

	s, err := kv.Put(ctx, "app", map[string]any{"user": "u", "pw": "p"})
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if s.VersionMetadata.Version != 1 || !s.VersionMetadata.CreatedTime.Equal(t0) {
		t.Fatalf("Put metadata %+v", s.VersionMetadata)
	}
	h.now = t0.Add(time.Minute)
	if _, err := kv.Put(ctx, "app", map[string]any{"pw": "q"}, api.WithCheckAndSet(1)); err != nil {
		t.Fatalf("Put with cas: %v", err)
	}
	_, err = kv.Put(ctx, "app", map[string]any{"pw": "r"}, api.WithCheckAndSet(1))
	var re *api.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 400 || !strings.Contains(strings.Join(re.Errors, ""), msgCASMismatch) {
		t.Fatalf("Put with a stale cas: %v", err)
	}

	got, err := kv.Get(ctx, "app")
	if err != nil || got.Data["pw"] != "q" || got.VersionMetadata.Version != 2 {
		t.Fatalf("Get: %+v %v", got, err)
	}
	old, err := kv.GetVersion(ctx, "app", 1)
	if err != nil || old.Data["user"] != "u" {
		t.Fatalf("GetVersion(1): %+v %v", old, err)
	}

	if _, err := kv.Patch(ctx, "app", map[string]any{"extra": "e"}); err != nil {
		t.Fatalf("Patch: %v", err)
	}
	if got, _ = kv.Get(ctx, "app"); got.Data["extra"] != "e" || got.Data["pw"] != "q" || got.VersionMetadata.Version != 3 {
		t.Fatalf("after Patch: %+v", got.Data)
	}

	if err := kv.PutMetadata(ctx, "app", api.KVMetadataPutInput{
		MaxVersions: 5, DeleteVersionAfter: time.Hour, CustomMetadata: map[string]any{"owner": "ops"},
	}); err != nil {
		t.Fatalf("PutMetadata: %v", err)
	}
	two := 6
	if err := kv.PatchMetadata(ctx, "app", api.KVMetadataPatchInput{MaxVersions: &two}); err != nil {
		t.Fatalf("PatchMetadata: %v", err)
	}

	h.now = t0.Add(2 * time.Minute)
	if err := kv.Delete(ctx, "app"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	deleted, err := kv.Get(ctx, "app")
	if err != nil || deleted.Data != nil || !deleted.VersionMetadata.DeletionTime.Equal(h.now) {
		t.Fatalf("Get of a deleted version: %+v %v (want no data and a deletion time)", deleted, err)
	}
	if err := kv.Undelete(ctx, "app", []int{3}); err != nil {
		t.Fatalf("Undelete: %v", err)
	}
	if err := kv.DeleteVersions(ctx, "app", []int{1}); err != nil {
		t.Fatalf("DeleteVersions: %v", err)
	}
	if err := kv.Destroy(ctx, "app", []int{2}); err != nil {
		t.Fatalf("Destroy: %v", err)
	}

	md, err := kv.GetMetadata(ctx, "app")
	if err != nil {
		t.Fatalf("GetMetadata: %v", err)
	}
	if md.CurrentVersion != 3 || md.MaxVersions != 6 || md.DeleteVersionAfter != time.Hour ||
		md.CustomMetadata["owner"] != "ops" || !md.CreatedTime.Equal(t0) || !md.UpdatedTime.Equal(t0.Add(time.Minute)) {
		t.Fatalf("GetMetadata: %+v", md)
	}
	if !md.Versions["2"].Destroyed || md.Versions["1"].DeletionTime.IsZero() || !md.Versions["3"].DeletionTime.IsZero() {
		t.Fatalf("version metadata: %+v", md.Versions)
	}
	list, err := kv.GetVersionsAsList(ctx, "app")
	if err != nil || len(list) != 3 || list[0].Version != 1 || list[2].Version != 3 {
		t.Fatalf("GetVersionsAsList: %+v %v", list, err)
	}
	withCM, err := kv.Get(ctx, "app")
	if err != nil || withCM.CustomMetadata["owner"] != "ops" {
		t.Fatalf("Get custom metadata: %+v %v", withCM, err)
	}

	keys, err := vaultShim(t, h).Logical().List("secret/metadata/")
	if err != nil || keys == nil || len(keys.Data["keys"].([]any)) != 1 {
		t.Fatalf("List: %+v %v", keys, err)
	}

	if err := kv.DeleteMetadata(ctx, "app"); err != nil {
		t.Fatalf("DeleteMetadata: %v", err)
	}
	if _, err := kv.Get(ctx, "app"); !errors.Is(err, api.ErrSecretNotFound) {
		t.Fatalf("Get after DeleteMetadata: %v, want ErrSecretNotFound", err)
	}
}

func TestVaultAPIKVv1(t *testing.T) {
	h := newHarness(t, "1")
	c := vaultShim(t, h)
	kv := c.KVv1("secret")
	ctx := context.Background()
	if err := kv.Put(ctx, "dir/app", map[string]any{"pw": "p"}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	s, err := kv.Get(ctx, "dir/app")
	if err != nil || s.Data["pw"] != "p" {
		t.Fatalf("Get: %+v %v", s, err)
	}
	keys, err := c.Logical().List("secret/")
	if err != nil || keys == nil || keys.Data["keys"].([]any)[0] != "dir/" {
		t.Fatalf("List: %+v %v", keys, err)
	}
	if err := kv.Delete(ctx, "dir/app"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := kv.Get(ctx, "dir/app"); !errors.Is(err, api.ErrSecretNotFound) {
		t.Fatalf("Get after Delete: %v", err)
	}
}
