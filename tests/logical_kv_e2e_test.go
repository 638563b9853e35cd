package tests

// The acceptance suite of the Vault-compatible logical layer, kv versions 1 and
// 2: driven through github.com/hashicorp/vault/api against real coffer
// processes. Expectations are Vault's (checked against Vault 1.21's source)
// unless a comment says Coffer decided otherwise.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

func TestLogicalKVv1(t *testing.T) {
	t.Parallel()
	_, root := devServer(t)
	ctx := context.Background()
	if err := root.Sys().Mount("kv", &api.MountInput{Type: "kv", Options: map[string]string{"version": "1"}}); err != nil {
		t.Fatalf("mount kv v1: %v", err)
	}
	kv := root.KVv1("kv")

	if err := kv.Put(ctx, "app/db", map[string]any{"password": "p1", "port": 5432}); err != nil {
		t.Fatalf("KVv1 Put: %v", err)
	}
	if err := kv.Put(ctx, "app/sub/x", map[string]any{"a": "b"}); err != nil {
		t.Fatalf("KVv1 Put: %v", err)
	}
	s, err := kv.Get(ctx, "app/db")
	if err != nil || s.Data["password"] != "p1" || num(t, "port", s.Data["port"]) != 5432 {
		t.Fatalf("KVv1 Get: %+v, %v", s, err)
	}
	// A write replaces the whole map.
	if err := kv.Put(ctx, "app/db", map[string]any{"password": "p2"}); err != nil {
		t.Fatalf("KVv1 Put again: %v", err)
	}
	if s, err := kv.Get(ctx, "app/db"); err != nil || s.Data["password"] != "p2" || s.Data["port"] != nil {
		t.Fatalf("KVv1 Get after the second put: %+v, %v; want only password p2", s, err)
	}
	l, err := root.Logical().List("kv/app")
	if err != nil || l == nil {
		t.Fatalf("LIST kv/app: %v, %v", l, err)
	}
	if keys := strs(l.Data["keys"]); !slices.Equal(keys, []string{"db", "sub/"}) {
		t.Fatalf("LIST kv/app keys %q; want [db sub/]", keys)
	}
	if l, err := root.Logical().List("kv/nothing-here"); err != nil || l != nil {
		t.Fatalf("LIST of an empty prefix: %v, %v; want nil (404)", l, err)
	}

	if err := kv.Delete(ctx, "app/db"); err != nil {
		t.Fatalf("KVv1 Delete: %v", err)
	}
	if _, err := kv.Get(ctx, "app/db"); !errors.Is(err, api.ErrSecretNotFound) {
		t.Fatalf("KVv1 Get after delete: %v; want ErrSecretNotFound", err)
	}
	if s, err := root.Logical().Read("kv/app/db"); err != nil || s != nil {
		t.Fatalf("Logical Read of a missing key: %+v, %v; want nil, nil (404)", s, err)
	}
	if r := rawJSON(t, root, http.MethodGet, "kv/app/db", nil); r.code != 404 {
		t.Fatalf("GET of a missing kv v1 key: %d, want 404 (%q)", r.code, r.body)
	}
	l, err = root.Logical().List("kv/app/")
	if err != nil || l == nil || !slices.Equal(strs(l.Data["keys"]), []string{"sub/"}) {
		t.Fatalf("LIST kv/app/ after delete: %v, %v; want [sub/]", l, err)
	}
}

func TestLogicalKVv2(t *testing.T) {
	t.Parallel()
	_, root := devServer(t)
	ctx := context.Background()
	kv := root.KVv2("secret")

	s, err := kv.Put(ctx, "app", map[string]any{"user": "a"})
	if err != nil || s.VersionMetadata == nil || s.VersionMetadata.Version != 1 {
		t.Fatalf("KVv2 Put v1: %+v, %v", s, err)
	}
	if s, err = kv.Put(ctx, "app", map[string]any{"user": "b"}); err != nil || s.VersionMetadata.Version != 2 {
		t.Fatalf("KVv2 Put v2: %+v, %v", s, err)
	}
	if s, err = kv.Get(ctx, "app"); err != nil || s.Data["user"] != "b" || s.VersionMetadata.Version != 2 {
		t.Fatalf("KVv2 Get: %+v, %v; want user b at version 2", s, err)
	}
	if s, err = kv.GetVersion(ctx, "app", 1); err != nil || s.Data["user"] != "a" || s.VersionMetadata.Version != 1 {
		t.Fatalf("KVv2 GetVersion 1: %+v, %v; want user a", s, err)
	}
	if s, err = kv.Patch(ctx, "app", map[string]any{"pass": "x"}); err != nil || s.VersionMetadata.Version != 3 {
		t.Fatalf("KVv2 Patch: %+v, %v; want version 3", s, err)
	}
	if s, err = kv.Get(ctx, "app"); err != nil || s.Data["user"] != "b" || s.Data["pass"] != "x" {
		t.Fatalf("KVv2 Get after patch: %+v, %v; want user b and pass x", s, err)
	}

	// Check-and-set.
	_, err = kv.Put(ctx, "app", map[string]any{"user": "c"}, api.WithCheckAndSet(1))
	refused(t, "put with a stale cas", err, 400, "check-and-set parameter did not match the current version")
	if s, err = kv.Put(ctx, "app", map[string]any{"user": "c"}, api.WithCheckAndSet(3)); err != nil || s.VersionMetadata.Version != 4 {
		t.Fatalf("put with cas 3: %+v, %v; want version 4", s, err)
	}
	_, err = kv.Put(ctx, "app", map[string]any{"user": "d"}, api.WithCheckAndSet(0))
	refused(t, "put with cas 0 on an existing key", err, 400, "check-and-set parameter did not match the current version")

	// Delete the latest version: vault/api still gets its metadata.
	if err := kv.Delete(ctx, "app"); err != nil {
		t.Fatalf("KVv2 Delete: %v", err)
	}
	sec, err := root.Logical().Read("secret/data/app")
	if err != nil || sec == nil {
		t.Fatalf("Logical Read of a deleted version: %+v, %v; want the secret with its metadata", sec, err)
	}
	if d, ok := sec.Data["data"]; !ok || d != nil {
		t.Fatalf("deleted version: data.data = %v (present %v); want null", d, ok)
	}
	if dt, _ := mapAt(sec.Data, "metadata", "deletion_time"); dt == nil || dt == "" {
		t.Fatalf("deleted version: metadata %v has no deletion_time", sec.Data["metadata"])
	}
	if r := rawJSON(t, root, http.MethodGet, "secret/data/app", nil); r.code != 404 {
		t.Fatalf("GET of a deleted version: %d, want 404 (%q)", r.code, r.body)
	} else if v, _ := mapAt(r.envelope(t), "data", "metadata", "version"); fmt.Sprint(v) != "4" {
		t.Fatalf("404 body of a deleted version: %q; want data.metadata.version 4", r.body)
	}
	if s, err = kv.Get(ctx, "app"); err != nil || s.Data != nil || s.VersionMetadata == nil || s.VersionMetadata.DeletionTime.IsZero() {
		t.Fatalf("KVv2 Get of the deleted latest: %+v, %v; want nil data with a deletion time", s, err)
	}
	if err := kv.Undelete(ctx, "app", []int{4}); err != nil {
		t.Fatalf("Undelete 4: %v", err)
	}
	if s, err = kv.Get(ctx, "app"); err != nil || s.Data["user"] != "c" || !s.VersionMetadata.DeletionTime.IsZero() {
		t.Fatalf("Get after undelete: %+v, %v; want user c and no deletion time", s, err)
	}
	if err := kv.DeleteVersions(ctx, "app", []int{1}); err != nil {
		t.Fatalf("DeleteVersions 1: %v", err)
	}
	if s, err = kv.GetVersion(ctx, "app", 1); err != nil || s.Data != nil || s.VersionMetadata.DeletionTime.IsZero() {
		t.Fatalf("GetVersion 1 after DeleteVersions: %+v, %v", s, err)
	}
	if err := kv.Destroy(ctx, "app", []int{2}); err != nil {
		t.Fatalf("Destroy 2: %v", err)
	}
	if err := kv.Undelete(ctx, "app", []int{2}); err != nil {
		t.Fatalf("Undelete of a destroyed version: %v; want accepted and ignored", err)
	}
	if s, err = kv.GetVersion(ctx, "app", 2); err != nil || s.Data != nil || !s.VersionMetadata.Destroyed {
		t.Fatalf("GetVersion 2 after Destroy: %+v, %v; want destroyed without data", s, err)
	}
	md, err := kv.GetMetadata(ctx, "app")
	if err != nil {
		t.Fatalf("GetMetadata: %v", err)
	}
	if md.CurrentVersion != 4 || len(md.Versions) != 4 || !md.Versions["2"].Destroyed ||
		md.Versions["1"].DeletionTime.IsZero() || !md.Versions["4"].DeletionTime.IsZero() {
		t.Fatalf("GetMetadata: %+v; want current 4, four versions, 2 destroyed, 1 deleted", md)
	}

	// Metadata settings.
	if err := kv.PutMetadata(ctx, "app", api.KVMetadataPutInput{
		MaxVersions: 2, CASRequired: true, DeleteVersionAfter: time.Hour,
		CustomMetadata: map[string]any{"owner": "team-a"},
	}); err != nil {
		t.Fatalf("PutMetadata: %v", err)
	}
	md, err = kv.GetMetadata(ctx, "app")
	if err != nil || md.MaxVersions != 2 || !md.CASRequired || md.DeleteVersionAfter != time.Hour || md.CustomMetadata["owner"] != "team-a" {
		t.Fatalf("GetMetadata after PutMetadata: %+v, %v", md, err)
	}
	_, err = kv.Put(ctx, "app", map[string]any{"user": "e"})
	refused(t, "put without cas when cas_required", err, 400, "check-and-set parameter required")
	s, err = kv.Put(ctx, "app", map[string]any{"user": "e"}, api.WithCheckAndSet(4))
	if err != nil || s.VersionMetadata.Version != 5 {
		t.Fatalf("put with cas 4: %+v, %v; want version 5", s, err)
	}
	if d := s.VersionMetadata.DeletionTime.Sub(s.VersionMetadata.CreatedTime); d != time.Hour {
		t.Fatalf("version 5 deletion_time - created_time = %s; want 1h (delete_version_after)", d)
	}
	if s, err = kv.Get(ctx, "app"); err != nil || s.Data["user"] != "e" || s.CustomMetadata["owner"] != "team-a" {
		t.Fatalf("Get after the capped write: %+v, %v; want user e with custom metadata", s, err)
	}
	md, err = kv.GetMetadata(ctx, "app")
	if err != nil {
		t.Fatalf("GetMetadata: %v", err)
	}
	var kept []string
	for v := range md.Versions {
		kept = append(kept, v)
	}
	sort.Strings(kept)
	if md.CurrentVersion != 5 || !slices.Equal(kept, []string{"4", "5"}) {
		t.Fatalf("versions kept with max_versions 2: %v (current %d); want [4 5]", kept, md.CurrentVersion)
	}

	// Raw logical calls: a create with cas 0, a read of a version by query.
	w, err := root.Logical().Write("secret/data/raw", map[string]any{"data": map[string]any{"k": "v"}, "options": map[string]any{"cas": 0}})
	if err != nil || w == nil || num(t, "version", w.Data["version"]) != 1 {
		t.Fatalf("raw write to secret/data/raw: %+v, %v; want version 1", w, err)
	}
	if _, err := root.Logical().Write("secret/data/raw", map[string]any{"data": map[string]any{"k": "v2"}}); err != nil {
		t.Fatalf("raw write v2: %v", err)
	}
	r, err := root.Logical().ReadWithData("secret/data/raw", map[string][]string{"version": {"1"}})
	if err != nil || r == nil {
		t.Fatalf("raw read ?version=1: %v, %v", r, err)
	}
	if v, _ := mapAt(r.Data, "data", "k"); v != "v" {
		t.Fatalf("raw read ?version=1: %v; want k=v", r.Data)
	}
	if _, err := root.Logical().Write("secret/data/nodata", map[string]any{}); statusOf(err) != 400 {
		t.Fatalf("write without data: %v; want 400", err)
	}

	// The mount's config.
	if _, err := root.Logical().Write("secret/config", map[string]any{"max_versions": 7, "cas_required": false, "delete_version_after": "2h"}); err != nil {
		t.Fatalf("write secret/config: %v", err)
	}
	cfg, err := root.Logical().Read("secret/config")
	if err != nil || cfg == nil || num(t, "max_versions", cfg.Data["max_versions"]) != 7 || cfg.Data["cas_required"] != false {
		t.Fatalf("read secret/config: %+v, %v; want max_versions 7", cfg, err)
	}
	if d, err := time.ParseDuration(fmt.Sprint(cfg.Data["delete_version_after"])); err != nil || d != 2*time.Hour {
		t.Fatalf("secret/config delete_version_after %v; want 2h", cfg.Data["delete_version_after"])
	}

	// Listing under metadata/.
	if _, err := kv.Put(ctx, "dir/sub", map[string]any{"a": "b"}); err != nil {
		t.Fatalf("put dir/sub: %v", err)
	}
	l, err := root.Logical().List("secret/metadata/")
	if err != nil || l == nil {
		t.Fatalf("LIST secret/metadata/: %v, %v", l, err)
	}
	if keys := strs(l.Data["keys"]); !slices.Equal(keys, []string{"app", "dir/", "raw"}) {
		t.Fatalf("LIST secret/metadata/ keys %q; want [app dir/ raw]", keys)
	}
	if l, err := root.Logical().List("secret/metadata/dir"); err != nil || l == nil || !slices.Equal(strs(l.Data["keys"]), []string{"sub"}) {
		t.Fatalf("LIST secret/metadata/dir: %v, %v; want [sub]", l, err)
	}

	// DeleteMetadata removes every version.
	if err := kv.DeleteMetadata(ctx, "app"); err != nil {
		t.Fatalf("DeleteMetadata: %v", err)
	}
	if _, err := kv.GetMetadata(ctx, "app"); !errors.Is(err, api.ErrSecretNotFound) {
		t.Fatalf("GetMetadata after DeleteMetadata: %v; want not found", err)
	}
	if _, err := kv.GetVersion(ctx, "app", 4); !errors.Is(err, api.ErrSecretNotFound) {
		t.Fatalf("GetVersion 4 after DeleteMetadata: %v; want not found", err)
	}
	if l, err := root.Logical().List("secret/metadata/"); err != nil || l == nil || slices.Contains(strs(l.Data["keys"]), "app") {
		t.Fatalf("LIST after DeleteMetadata: %v, %v; want no app", l, err)
	}
}
