package tests

// The acceptance suite of the Vault-compatible logical layer: mounts, kv
// versions 1 and 2, tokens, policies, userpass, response wrapping and audit,
// driven through github.com/hashicorp/vault/api against real coffer
// processes. Expectations are Vault's (checked against Vault 1.21's source)
// unless a comment says Coffer decided otherwise.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/hashicorp/vault/api"
)

// num reads a JSON number (json.Number, float64 or numeric string) as int64.
func num(t *testing.T, what string, v any) int64 {
	t.Helper()
	n, err := strconv.ParseInt(fmt.Sprint(v), 10, 64)
	if err != nil {
		t.Fatalf("%s: %v (%T) is not an integer", what, v, v)
	}
	return n
}

func ptr[T any](v T) *T { return &v }

// strs reads a JSON list of strings.
func strs(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, e := range l {
		out = append(out, fmt.Sprint(e))
	}
	return out
}

// refused asserts err is a response error with status code whose errors
// mention substr (when substr is not empty).
func refused(t *testing.T, what string, err error, code int, substr string) {
	t.Helper()
	var re *api.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("%s: want a %d response error, got %T: %v", what, code, err, err)
	}
	if re.StatusCode != code {
		t.Fatalf("%s: status %d, want %d (errors %q)", what, re.StatusCode, code, re.Errors)
	}
	if substr != "" && !containsFold(re.Errors, substr) {
		t.Fatalf("%s: errors %q do not mention %q", what, re.Errors, substr)
	}
}

// ---------------------------------------------------------------- mounts

func TestLogicalMounts(t *testing.T) {
	t.Parallel()
	_, root := devServer(t)
	ctx := context.Background()
	sys := root.Sys()

	mounts, err := sys.ListMounts()
	if err != nil {
		t.Fatalf("ListMounts: %v", err)
	}
	if m := mounts["secret/"]; m == nil || m.Type != "kv" || m.Options["version"] != "2" {
		t.Fatalf("dev server's secret/: %+v; want kv version 2", m)
	}
	if m := mounts["sys/"]; m == nil || m.Type != "system" {
		t.Fatalf("sys/ in ListMounts: %+v; want type system", m)
	}

	// kv v1, kv v2 by options and by the kv-v2 type alias, a local mount.
	for path, in := range map[string]*api.MountInput{
		"kv1":     {Type: "kv", Description: "version one"},
		"kv2opt":  {Type: "kv", Options: map[string]string{"version": "2"}},
		"kv2type": {Type: "kv-v2"},
		"kvlocal": {Type: "kv", Local: true, Options: map[string]string{"version": "1"}},
	} {
		if err := sys.Mount(path, in); err != nil {
			t.Fatalf("Mount %s %+v: %v", path, in, err)
		}
	}
	mounts, err = sys.ListMounts()
	if err != nil {
		t.Fatalf("ListMounts: %v", err)
	}
	for path, want := range map[string]string{"kv1/": "", "kv2opt/": "2", "kv2type/": "2", "kvlocal/": "1"} {
		m := mounts[path]
		if m == nil || m.Type != "kv" || (want == "2") != (m.Options["version"] == "2") {
			t.Fatalf("ListMounts[%s] = %+v; want type kv, version 2: %v", path, m, want == "2")
		}
		if m.UUID == "" || m.Accessor == "" {
			t.Fatalf("ListMounts[%s] has no uuid or accessor: %+v", path, m)
		}
	}
	if !mounts["kvlocal/"].Local || mounts["kv1/"].Local {
		t.Fatalf("local flags: kvlocal %v, kv1 %v; want true, false", mounts["kvlocal/"].Local, mounts["kv1/"].Local)
	}
	if mounts["kv1/"].Description != "version one" {
		t.Fatalf("kv1 description %q", mounts["kv1/"].Description)
	}

	// GET sys/mounts/<path>.
	m, err := sys.GetMount("kv2type")
	if err != nil || m.Type != "kv" || m.Options["version"] != "2" {
		t.Fatalf("GetMount kv2type: %+v, %v; want kv version 2", m, err)
	}
	_, err = sys.GetMount("nosuchmount")
	refused(t, "GetMount of a path nothing is mounted at", err, 400, "nosuchmount")

	// Tune and read the tuning.
	desc := "tuned"
	if err := sys.TuneMountAllowNil("kv1", api.TuneMountConfigInput{DefaultLeaseTTL: ptr("1h"), MaxLeaseTTL: ptr("2h"), Description: &desc}); err != nil {
		t.Fatalf("TuneMount kv1: %v", err)
	}
	mc, err := sys.MountConfig("kv1")
	if err != nil || mc.DefaultLeaseTTL != 3600 || mc.MaxLeaseTTL != 7200 {
		t.Fatalf("MountConfig kv1 after tune: %+v, %v; want 3600/7200", mc, err)
	}
	if m, err := sys.GetMount("kv1"); err != nil || m.Description != "tuned" || m.Config.DefaultLeaseTTL != 3600 {
		t.Fatalf("GetMount kv1 after tune: %+v, %v", m, err)
	}
	// A tune that changes the kv version is refused (Vault refuses the
	// downgrade too; Coffer also refuses 1 -> 2, see engines/kv/doc.go).
	err = sys.TuneMountAllowNil("kv2opt", api.TuneMountConfigInput{Options: &map[string]string{"version": "1"}})
	refused(t, "tune kv2opt to version 1", err, 400, "version")
	err = sys.TuneMountAllowNil("kv1", api.TuneMountConfigInput{Options: &map[string]string{"version": "2"}})
	refused(t, "tune kv1 to version 2", err, 400, "version")
	if m, err := sys.GetMount("kv2opt"); err != nil || m.Options["version"] != "2" {
		t.Fatalf("kv2opt after the refused tune: %+v, %v; want still version 2", m, err)
	}
	if m, err := sys.GetMount("kv1"); err != nil || m.Options["version"] == "2" {
		t.Fatalf("kv1 after the refused tune: %+v, %v; want still version 1", m, err)
	}

	// The vault CLI's kv preflight.
	ui, err := root.Logical().Read("sys/internal/ui/mounts/kv2opt/some/key")
	if err != nil || ui == nil {
		t.Fatalf("sys/internal/ui/mounts/kv2opt/some/key: %v, %v", ui, err)
	}
	if ui.Data["path"] != "kv2opt/" || ui.Data["type"] != "kv" {
		t.Fatalf("ui mounts: path %v type %v; want kv2opt/ and kv", ui.Data["path"], ui.Data["type"])
	}
	if v, _ := mapAt(ui.Data, "options", "version"); v != "2" {
		t.Fatalf("ui mounts options.version = %v; want 2 (data %v)", v, ui.Data)
	}
	ui, err = root.Logical().Read("sys/internal/ui/mounts/kv1/a")
	if err != nil || ui == nil || ui.Data["path"] != "kv1/" {
		t.Fatalf("ui mounts of kv1: %v, %v", ui, err)
	}
	if v, _ := mapAt(ui.Data, "options", "version"); v == "2" {
		t.Fatalf("ui mounts of kv1 says version 2: %v", ui.Data)
	}

	// A request under no mount: 404 naming the path.
	rawJSON(t, root, http.MethodGet, "nosuch/foo", nil).expectError(t, 404, "nosuch/foo")
	_, err = root.Logical().Write("nosuch/foo", map[string]any{"a": "b"})
	refused(t, "write under no mount", err, 404, "nosuch/foo")

	// Mounting over an existing path, or inside or above one: 400.
	refused(t, "mount over kv1", sys.Mount("kv1", &api.MountInput{Type: "kv"}), 400, "already in use")
	refused(t, "mount inside kv1", sys.Mount("kv1/inner", &api.MountInput{Type: "kv"}), 400, "already in use")
	refused(t, "mount at sys/", sys.Mount("sys/x", &api.MountInput{Type: "kv"}), 400, "")
	refused(t, "mount of an unknown type", sys.Mount("weird", &api.MountInput{Type: "no-such-engine"}), 400, "no-such-engine")
	if m, err := sys.GetMount("kv1"); err != nil || m.Description != "tuned" {
		t.Fatalf("kv1 after refused mounts over it: %+v, %v", m, err)
	}

	// Unmount deletes the data: a new mount at the same path is empty.
	kv1 := root.KVv1("kv1")
	if err := kv1.Put(ctx, "keep", map[string]any{"v": "1"}); err != nil {
		t.Fatalf("kv1 put: %v", err)
	}
	if err := sys.Unmount("kv1"); err != nil {
		t.Fatalf("Unmount kv1: %v", err)
	}
	if mounts, err := sys.ListMounts(); err != nil || mounts["kv1/"] != nil {
		t.Fatalf("ListMounts after Unmount: kv1/ = %+v, %v", mounts["kv1/"], err)
	}
	if _, err := root.Logical().Write("kv1/keep", map[string]any{"v": "2"}); statusOf(err) != 404 {
		t.Fatalf("write to an unmounted path: %v; want 404", err)
	}
	// Vault answers success to an unmount of nothing, so as not to reveal
	// whether a mount existed.
	if err := sys.Unmount("kv1"); err != nil {
		t.Errorf("Unmount of a path nothing is mounted at: %v; want success as in Vault", err)
	}
	if err := sys.Mount("kv1", &api.MountInput{Type: "kv"}); err != nil {
		t.Fatalf("remount kv1: %v", err)
	}
	if s, err := kv1.Get(ctx, "keep"); !errors.Is(err, api.ErrSecretNotFound) {
		t.Fatalf("kv1/keep after unmount and remount: %+v, %v; want not found", s, err)
	}
}

// ---------------------------------------------------------------- kv v1

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

// ---------------------------------------------------------------- kv v2

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

// ---------------------------------------------------------------- tokens

func TestLogicalTokens(t *testing.T) {
	t.Parallel()
	_, root := devServer(t)
	ta := root.Auth().Token()
	if err := root.Sys().PutPolicy("p1", `path "secret/data/p1/*" { capabilities = ["read"] }`); err != nil {
		t.Fatalf("put policy p1: %v", err)
	}
	if err := root.Sys().PutPolicy("tokmaker", `
path "auth/token/create" { capabilities = ["update"] }
path "auth/token/create-orphan" { capabilities = ["update"] }
`); err != nil {
		t.Fatalf("put policy tokmaker: %v", err)
	}

	// create with every field, then lookup.
	sec, err := ta.Create(&api.TokenCreateRequest{
		Policies: []string{"p1"}, TTL: "1h", ExplicitMaxTTL: "2h", NumUses: 5,
		DisplayName: "myapp", Metadata: map[string]string{"team": "blue"},
	})
	if err != nil || sec.Auth == nil || sec.Auth.ClientToken == "" || sec.Auth.Accessor == "" {
		t.Fatalf("token create: %+v, %v", sec, err)
	}
	tok, acc := sec.Auth.ClientToken, sec.Auth.Accessor
	if !slices.Equal(sec.Auth.Policies, []string{"default", "p1"}) || sec.Auth.LeaseDuration != 3600 || !sec.Auth.Renewable {
		t.Fatalf("token create auth: %+v; want policies [default p1], lease 3600, renewable", sec.Auth)
	}
	look, err := ta.Lookup(tok)
	if err != nil || look == nil {
		t.Fatalf("lookup: %v, %v", look, err)
	}
	d := look.Data
	if d["id"] != tok || d["accessor"] != acc || d["display_name"] != "token-myapp" ||
		num(t, "num_uses", d["num_uses"]) != 5 || num(t, "explicit_max_ttl", d["explicit_max_ttl"]) != 7200 ||
		num(t, "creation_ttl", d["creation_ttl"]) != 3600 || d["orphan"] != false || d["path"] != "auth/token/create" {
		t.Fatalf("lookup data: %v", d)
	}
	if ttl := num(t, "ttl", d["ttl"]); ttl < 3500 || ttl > 3600 {
		t.Fatalf("lookup ttl %d; want about 3600", ttl)
	}
	if v, _ := mapAt(d, "meta", "team"); v != "blue" {
		t.Fatalf("lookup meta: %v; want team=blue", d["meta"])
	}
	if p := strs(d["policies"]); !slices.Equal(p, []string{"default", "p1"}) {
		t.Fatalf("lookup policies %q", p)
	}
	// lookup-self spends one of the five uses.
	self, err := withToken(t, root, tok).Auth().Token().LookupSelf()
	if err != nil || self.Data["accessor"] != acc || num(t, "num_uses", self.Data["num_uses"]) != 4 {
		t.Fatalf("lookup-self: %+v, %v; want the same accessor and 4 uses left", self, err)
	}
	la, err := ta.LookupAccessor(acc)
	if err != nil || la == nil || la.Data["accessor"] != acc || (la.Data["id"] != nil && la.Data["id"] != "") {
		t.Fatalf("lookup-accessor: %+v, %v; want the accessor and no id", la, err)
	}

	// Periodic token: ttl is the period; renew resets it.
	per, err := ta.Create(&api.TokenCreateRequest{Policies: []string{"p1"}, Period: "30m"})
	if err != nil || per.Auth.LeaseDuration != 1800 {
		t.Fatalf("periodic token create: %+v, %v; want lease 1800", per, err)
	}
	if l, err := ta.Lookup(per.Auth.ClientToken); err != nil || num(t, "period", l.Data["period"]) != 1800 {
		t.Fatalf("lookup of the periodic token: %+v, %v; want period 1800", l, err)
	}
	// Vault ignores the increment of a periodic token: the TTL is reset to
	// the period (sdk/framework.CalculateTTL).
	rn, err := ta.Renew(per.Auth.ClientToken, 60)
	if err != nil || rn.Auth == nil {
		t.Fatalf("renew of a periodic token: %+v, %v", rn, err)
	}
	if rn.Auth.LeaseDuration != 1800 {
		t.Errorf("renew of a periodic token with increment 60: lease_duration %d; want 1800 (the period), as in Vault", rn.Auth.LeaseDuration)
	}

	// renew and renew-self on an ordinary token.
	plain, err := ta.Create(&api.TokenCreateRequest{Policies: []string{"p1"}, TTL: "1h", ExplicitMaxTTL: "2h"})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	rn, err = ta.Renew(plain.Auth.ClientToken, 600)
	if err != nil || rn.Auth == nil || rn.Auth.LeaseDuration != 600 || rn.Auth.ClientToken != plain.Auth.ClientToken {
		t.Fatalf("renew increment 600: %+v, %v; want lease 600", rn, err)
	}
	if l, err := ta.Lookup(plain.Auth.ClientToken); err != nil || num(t, "ttl", l.Data["ttl"]) > 600 {
		t.Fatalf("lookup after renew: %+v, %v; want ttl at most 600", l, err)
	}
	rn, err = withToken(t, root, plain.Auth.ClientToken).Auth().Token().RenewSelf(900)
	if err != nil || rn.Auth == nil || rn.Auth.LeaseDuration != 900 {
		t.Fatalf("renew-self 900: %+v, %v; want lease 900", rn, err)
	}
	// explicit_max_ttl caps renewals.
	rn, err = ta.Renew(plain.Auth.ClientToken, 86400)
	if err != nil || rn.Auth == nil || rn.Auth.LeaseDuration > 7200 || rn.Auth.LeaseDuration < 7000 {
		t.Fatalf("renew beyond explicit_max_ttl: %+v, %v; want capped near 7200", rn, err)
	}

	// Parent, child and orphan.
	parentSec, err := ta.Create(&api.TokenCreateRequest{Policies: []string{"tokmaker", "p1"}})
	if err != nil {
		t.Fatalf("create parent: %v", err)
	}
	parent := withToken(t, root, parentSec.Auth.ClientToken)
	childSec, err := parent.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"p1"}})
	if err != nil || !slices.Equal(childSec.Auth.Policies, []string{"default", "p1"}) {
		t.Fatalf("parent creates child: %+v, %v", childSec, err)
	}
	_, err = parent.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"root"}})
	refused(t, "a non-root parent asks for root", err, 400, "")
	_, err = parent.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"other"}})
	refused(t, "a child policy outside the parent's", err, 400, "subset")
	orphanSec, err := parent.Auth().Token().CreateOrphan(&api.TokenCreateRequest{Policies: []string{"p1"}})
	if err != nil || !orphanSec.Auth.Orphan {
		t.Fatalf("create-orphan: %+v, %v; want an orphan", orphanSec, err)
	}
	if l, err := ta.Lookup(orphanSec.Auth.ClientToken); err != nil || l.Data["orphan"] != true {
		t.Fatalf("lookup of the orphan: %+v, %v", l, err)
	}
	if err := ta.RevokeTree(parentSec.Auth.ClientToken); err != nil {
		t.Fatalf("revoke parent: %v", err)
	}
	_, err = parent.Auth().Token().LookupSelf()
	refused(t, "the revoked parent", err, 403, "")
	_, err = withToken(t, root, childSec.Auth.ClientToken).Auth().Token().LookupSelf()
	refused(t, "the child of a revoked parent", err, 403, "")
	if _, err := withToken(t, root, orphanSec.Auth.ClientToken).Auth().Token().LookupSelf(); err != nil {
		t.Fatalf("the orphan after its creator's revocation: %v; want alive", err)
	}

	// revoke-orphan: the parent goes, its children stay, as orphans.
	p2Sec, err := ta.Create(&api.TokenCreateRequest{Policies: []string{"tokmaker", "p1"}})
	if err != nil {
		t.Fatalf("create parent 2: %v", err)
	}
	c2Sec, err := withToken(t, root, p2Sec.Auth.ClientToken).Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"p1"}})
	if err != nil || c2Sec.Auth.Orphan {
		t.Fatalf("parent 2 creates a child: %+v, %v", c2Sec, err)
	}
	err = withToken(t, root, c2Sec.Auth.ClientToken).Auth().Token().RevokeOrphan(p2Sec.Auth.ClientToken)
	if err == nil {
		t.Fatal("revoke-orphan without sudo succeeded")
	}
	if err := ta.RevokeOrphan(p2Sec.Auth.ClientToken); err != nil {
		t.Fatalf("revoke-orphan: %v", err)
	}
	_, err = withToken(t, root, p2Sec.Auth.ClientToken).Auth().Token().LookupSelf()
	refused(t, "the parent revoked with revoke-orphan", err, 403, "")
	c2Self, err := withToken(t, root, c2Sec.Auth.ClientToken).Auth().Token().LookupSelf()
	if err != nil || c2Self.Data["orphan"] != true {
		t.Fatalf("the child after revoke-orphan: %+v, %v; want alive and an orphan", c2Self, err)
	}

	// revoke-self, revoke-accessor, revoke.
	rs, err := ta.Create(&api.TokenCreateRequest{Policies: []string{"p1"}})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if err := withToken(t, root, rs.Auth.ClientToken).Auth().Token().RevokeSelf(""); err != nil {
		t.Fatalf("revoke-self: %v", err)
	}
	_, err = withToken(t, root, rs.Auth.ClientToken).Auth().Token().LookupSelf()
	refused(t, "a token after revoke-self", err, 403, "")
	ra, err := ta.Create(&api.TokenCreateRequest{Policies: []string{"p1"}})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if err := ta.RevokeAccessor(ra.Auth.Accessor); err != nil {
		t.Fatalf("revoke-accessor: %v", err)
	}
	_, err = withToken(t, root, ra.Auth.ClientToken).Auth().Token().LookupSelf()
	refused(t, "a token after revoke-accessor", err, 403, "")
	if _, err := ta.LookupAccessor(ra.Auth.Accessor); err == nil {
		t.Fatal("lookup-accessor of a revoked token succeeded")
	}
	_, err = withToken(t, root, plain.Auth.ClientToken).Logical().Read("secret/data/p1/x")
	if err != nil {
		t.Fatalf("a live token within its policy: %v", err)
	}
	if err := ta.RevokeTree(plain.Auth.ClientToken); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	_, err = withToken(t, root, plain.Auth.ClientToken).Logical().Read("secret/data/p1/x")
	refused(t, "a revoked token reads", err, 403, "permission denied")

	// A use-limited token works num_uses times, then is refused.
	lim, err := ta.Create(&api.TokenCreateRequest{Policies: []string{"p1"}, NumUses: 3})
	if err != nil {
		t.Fatalf("create a token with 3 uses: %v", err)
	}
	limC := withToken(t, root, lim.Auth.ClientToken)
	for i := 1; i <= 3; i++ {
		if _, err := limC.Logical().Read("secret/data/p1/x"); err != nil {
			t.Fatalf("use %d of 3: %v", i, err)
		}
	}
	_, err = limC.Logical().Read("secret/data/p1/x")
	refused(t, "use 4 of 3", err, 403, "permission denied")

	// An expiring token is refused once its TTL has passed.
	exp, err := ta.Create(&api.TokenCreateRequest{Policies: []string{"p1"}, TTL: "2s"})
	if err != nil || exp.Auth.LeaseDuration != 2 {
		t.Fatalf("create with ttl 2s: %+v, %v", exp, err)
	}
	expC := withToken(t, root, exp.Auth.ClientToken)
	created := time.Now()
	testutil.Eventually(t, waitTimeout, "the 2s token is refused", func() error {
		_, err := expC.Logical().Read("secret/data/p1/x")
		switch {
		case err == nil:
			return errors.New("still accepted")
		case statusOf(err) != 403:
			t.Fatalf("the expiring token got %v; want success, then 403", err)
		}
		return nil
	})
	if since := time.Since(created); since < time.Second {
		t.Fatalf("the 2s token was refused after only %s", since)
	}
}

// ---------------------------------------------------------------- policies

func TestLogicalPolicies(t *testing.T) {
	t.Parallel()
	_, root := devServer(t)
	ctx := context.Background()
	sys := root.Sys()

	readerHCL := `# reads under a/ and b/
path "secret/data/a/*" {
  capabilities = ["read"]
}
path "secret/data/b/*" {
  capabilities = ["read", "list"]
}
`
	denierJSON := `{"path": {"secret/data/b/*": {"capabilities": ["deny"]}}}`
	if err := sys.PutPolicy("reader", readerHCL); err != nil {
		t.Fatalf("PutPolicy reader (HCL): %v", err)
	}
	if err := sys.PutPolicy("denier", denierJSON); err != nil {
		t.Fatalf("PutPolicy denier (JSON): %v", err)
	}
	if got, err := sys.GetPolicy("reader"); err != nil || got != readerHCL {
		t.Fatalf("GetPolicy reader: %q, %v; want the text as written", got, err)
	}
	if got, err := sys.GetPolicy("denier"); err != nil || got != denierJSON {
		t.Fatalf("GetPolicy denier: %q, %v; want the JSON as written", got, err)
	}
	names, err := sys.ListPolicies()
	if err != nil {
		t.Fatalf("ListPolicies: %v", err)
	}
	for _, want := range []string{"default", "root", "reader", "denier"} {
		if !slices.Contains(names, want) {
			t.Fatalf("ListPolicies %q lacks %q", names, want)
		}
	}
	if got, err := sys.GetPolicy("no-such-policy"); err != nil || got != "" {
		t.Fatalf("GetPolicy of a missing policy: %q, %v; want empty", got, err)
	}

	kv := root.KVv2("secret")
	for _, p := range []string{"a/x", "b/x", "c/x"} {
		if _, err := kv.Put(ctx, p, map[string]any{"v": p}); err != nil {
			t.Fatalf("put %s: %v", p, err)
		}
	}
	tok, err := root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"reader"}})
	if err != nil {
		t.Fatalf("create reader token: %v", err)
	}
	rc := withToken(t, root, tok.Auth.ClientToken)
	if s, err := rc.KVv2("secret").Get(ctx, "a/x"); err != nil || s.Data["v"] != "a/x" {
		t.Fatalf("reader reads a/x: %+v, %v", s, err)
	}
	if s, err := rc.KVv2("secret").Get(ctx, "b/x"); err != nil || s.Data["v"] != "b/x" {
		t.Fatalf("reader reads b/x: %+v, %v", s, err)
	}
	_, err = rc.Logical().Read("secret/data/c/x")
	refused(t, "reader reads outside its paths", err, 403, "permission denied")
	_, err = rc.KVv2("secret").Put(ctx, "a/x", map[string]any{"v": "overwritten"})
	refused(t, "reader writes", err, 403, "permission denied")
	_, err = rc.Logical().Write("secret/data/a/new", map[string]any{"data": map[string]any{"v": "new"}})
	refused(t, "reader creates", err, 403, "permission denied")
	if s, err := kv.Get(ctx, "a/x"); err != nil || s.Data["v"] != "a/x" || s.VersionMetadata.Version != 1 {
		t.Fatalf("a/x after the refused write: %+v, %v; want unchanged", s, err)
	}
	if _, err := kv.Get(ctx, "a/new"); !errors.Is(err, api.ErrSecretNotFound) {
		t.Fatalf("a/new after the refused create: %v; want not found", err)
	}

	// deny in one policy overrides read in another on the same path.
	both, err := root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"reader", "denier"}})
	if err != nil {
		t.Fatalf("create reader+denier token: %v", err)
	}
	bc := withToken(t, root, both.Auth.ClientToken)
	if _, err := bc.Logical().Read("secret/data/a/x"); err != nil {
		t.Fatalf("reader+denier reads a/x: %v", err)
	}
	_, err = bc.Logical().Read("secret/data/b/x")
	refused(t, "reader+denier reads the denied b/x", err, 403, "permission denied")

	// sudo: enabling an audit device (sys/audit/*) needs it.
	if err := sys.PutPolicy("auditor", `path "sys/audit/*" { capabilities = ["create", "read", "update", "delete", "list"] }`); err != nil {
		t.Fatalf("put auditor: %v", err)
	}
	if err := sys.PutPolicy("auditor-sudo", `path "sys/audit/*" { capabilities = ["create", "read", "update", "delete", "list", "sudo"] }
path "sys/audit" { capabilities = ["read", "sudo"] }`); err != nil {
		t.Fatalf("put auditor-sudo: %v", err)
	}
	logPath := filepath.Join(t.TempDir(), "audit.log")
	opts := &api.EnableAuditOptions{Type: "file", Options: map[string]string{"file_path": logPath}}
	nos, err := root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"auditor"}})
	if err != nil {
		t.Fatalf("create auditor token: %v", err)
	}
	err = withToken(t, root, nos.Auth.ClientToken).Sys().EnableAuditWithOptions("file", opts)
	refused(t, "enable audit without sudo", err, 403, "permission denied")
	if l, err := sys.ListAudit(); err != nil || len(l) != 0 {
		t.Fatalf("ListAudit after the refused enable: %v, %v; want none", l, err)
	}
	su, err := root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"auditor-sudo"}})
	if err != nil {
		t.Fatalf("create auditor-sudo token: %v", err)
	}
	suc := withToken(t, root, su.Auth.ClientToken)
	if err := suc.Sys().EnableAuditWithOptions("file", opts); err != nil {
		t.Fatalf("enable audit with sudo: %v", err)
	}
	if l, err := suc.Sys().ListAudit(); err != nil || l["file/"] == nil {
		t.Fatalf("ListAudit with sudo: %v, %v", l, err)
	}
	if err := suc.Sys().DisableAudit("file"); err != nil {
		t.Fatalf("disable audit with sudo: %v", err)
	}

	// A policy that does not parse: 400 naming the line; nothing stored.
	badCap := "path \"secret/data/ok/*\" {\n  capabilities = [\"read\"]\n}\npath \"secret/data/bad/*\" {\n  capabilities = [\"read\", \"fly\"]\n}\n"
	err = sys.PutPolicy("bad", badCap)
	refused(t, "a policy with an unknown capability", err, 400, "line 5")
	badSyntax := "path \"secret/*\" {\n  capabilities = [\"read\"\n}\n"
	err = sys.PutPolicy("bad", badSyntax)
	refused(t, "a policy that is not HCL", err, 400, "line")
	if got, err := sys.GetPolicy("bad"); err != nil || got != "" {
		t.Fatalf("GetPolicy bad after the refused writes: %q, %v; want nothing stored", got, err)
	}

	// Built-in policies.
	refused(t, "delete the default policy", sys.DeletePolicy("default"), 400, "default")
	refused(t, "write the root policy", sys.PutPolicy("root", `path "*" { capabilities = ["read"] }`), 400, "root")
	refused(t, "delete the root policy", sys.DeletePolicy("root"), 400, "root")
	if got, err := sys.GetPolicy("default"); err != nil || !strings.Contains(got, "auth/token/lookup-self") {
		t.Fatalf("default policy after the refused delete: %q, %v", got, err)
	}

	// Deleting a policy takes its grants away from existing tokens.
	if err := sys.DeletePolicy("reader"); err != nil {
		t.Fatalf("DeletePolicy reader: %v", err)
	}
	if names, err := sys.ListPolicies(); err != nil || slices.Contains(names, "reader") {
		t.Fatalf("ListPolicies after delete: %q, %v", names, err)
	}
	_, err = rc.Logical().Read("secret/data/a/x")
	refused(t, "a token whose policy was deleted", err, 403, "permission denied")
}

// ---------------------------------------------------------------- userpass

func TestLogicalUserpass(t *testing.T) {
	t.Parallel()
	_, root := devServer(t)
	ctx := context.Background()
	sys := root.Sys()
	if err := sys.PutPolicy("reader", `path "secret/data/a/*" { capabilities = ["read"] }`); err != nil {
		t.Fatalf("put policy: %v", err)
	}
	if _, err := root.KVv2("secret").Put(ctx, "a/x", map[string]any{"v": "1"}); err != nil {
		t.Fatalf("put a/x: %v", err)
	}
	if err := sys.EnableAuthWithOptions("userpass", &api.EnableAuthOptions{Type: "userpass"}); err != nil {
		t.Fatalf("enable userpass: %v", err)
	}
	auths, err := sys.ListAuth()
	if err != nil || auths["token/"] == nil || auths["token/"].Type != "token" || auths["userpass/"] == nil || auths["userpass/"].Type != "userpass" {
		t.Fatalf("ListAuth: %v, %v; want token/ and userpass/", auths, err)
	}
	refused(t, "enable userpass twice", sys.EnableAuthWithOptions("userpass", &api.EnableAuthOptions{Type: "userpass"}), 400, "already in use")
	if _, err := root.Logical().Write("auth/userpass/users/bob", map[string]any{"password": "hunter2", "token_policies": "reader"}); err != nil {
		t.Fatalf("create user bob: %v", err)
	}
	u, err := root.Logical().Read("auth/userpass/users/bob")
	if err != nil || u == nil || !slices.Equal(strs(u.Data["token_policies"]), []string{"reader"}) || u.Data["password"] != nil {
		t.Fatalf("read user bob: %+v, %v; want token_policies [reader] and no password", u, err)
	}

	anon := withToken(t, root, "")
	login, err := anon.Logical().Write("auth/userpass/login/bob", map[string]any{"password": "hunter2"})
	if err != nil || login == nil || login.Auth == nil || login.Auth.ClientToken == "" {
		t.Fatalf("login bob: %+v, %v", login, err)
	}
	if !slices.Equal(login.Auth.Policies, []string{"default", "reader"}) || login.Auth.Metadata["username"] != "bob" {
		t.Fatalf("login auth: %+v; want policies [default reader], metadata username=bob", login.Auth)
	}
	bob := withToken(t, root, login.Auth.ClientToken)
	if s, err := bob.KVv2("secret").Get(ctx, "a/x"); err != nil || s.Data["v"] != "1" {
		t.Fatalf("bob reads a/x: %+v, %v", s, err)
	}
	_, err = bob.KVv2("secret").Put(ctx, "a/x", map[string]any{"v": "2"})
	refused(t, "bob writes", err, 403, "permission denied")
	self, err := bob.Auth().Token().LookupSelf()
	if err != nil || self.Data["path"] != "auth/userpass/login/bob" || self.Data["display_name"] != "userpass-bob" {
		t.Fatalf("bob's lookup-self: %+v, %v; want path auth/userpass/login/bob and display name userpass-bob", self, err)
	}

	_, err = anon.Logical().Write("auth/userpass/login/bob", map[string]any{"password": "wrong"})
	refused(t, "login with a wrong password", err, 400, "invalid username or password")
	_, err = anon.Logical().Write("auth/userpass/login/nobody", map[string]any{"password": "hunter2"})
	refused(t, "login of an unknown user", err, 400, "invalid username or password")
	_, err = anon.Logical().Read("auth/userpass/users/bob")
	refused(t, "read a user without a token", err, 403, "")

	if err := sys.DisableAuth("userpass"); err != nil {
		t.Fatalf("disable userpass: %v", err)
	}
	if auths, err := sys.ListAuth(); err != nil || auths["userpass/"] != nil || auths["token/"] == nil {
		t.Fatalf("ListAuth after disable: %v, %v", auths, err)
	}
	_, err = anon.Logical().Write("auth/userpass/login/bob", map[string]any{"password": "hunter2"})
	refused(t, "login after disable", err, 404, "")

	// Vault revokes every token an auth method issued when it is disabled.
	t.Run("tokens of a disabled auth method are revoked", func(t *testing.T) {
		_, err := bob.Auth().Token().LookupSelf()
		refused(t, "bob's token after userpass was disabled", err, 403, "")
	})
}

// ---------------------------------------------------------------- wrapping

func TestLogicalWrapping(t *testing.T) {
	t.Parallel()
	_, root := devServer(t)
	ctx := context.Background()
	if _, err := root.KVv2("secret").Put(ctx, "w", map[string]any{"k": "wrapped-value"}); err != nil {
		t.Fatalf("put: %v", err)
	}

	// With the wrapping lookup function (what the vault CLI's -wrap-ttl does).
	wc := withToken(t, root, "root")
	wc.SetWrappingLookupFunc(func(operation, path string) string { return "5m" })
	sec, err := wc.Logical().Read("secret/data/w")
	if err != nil || sec == nil || sec.WrapInfo == nil {
		t.Fatalf("wrapped read: %+v, %v; want wrap_info", sec, err)
	}
	wi := sec.WrapInfo
	if sec.Data != nil || wi.Token == "" || wi.Accessor == "" || wi.TTL != 300 || wi.CreationPath != "secret/data/w" || wi.CreationTime.IsZero() {
		t.Fatalf("wrapped read: data %v, wrap_info %+v; want no data, a token, ttl 300, creation_path secret/data/w", sec.Data, wi)
	}

	// sys/wrapping/lookup needs no token of its own.
	lk, err := withToken(t, root, "").Logical().Write("sys/wrapping/lookup", map[string]any{"token": wi.Token})
	if err != nil || lk == nil || lk.Data["creation_path"] != "secret/data/w" || num(t, "creation_ttl", lk.Data["creation_ttl"]) != 300 {
		t.Fatalf("sys/wrapping/lookup: %+v, %v; want creation_path secret/data/w", lk, err)
	}

	// Unwrap once; a second unwrap fails.
	un, err := root.Logical().Unwrap(wi.Token)
	if err != nil || un == nil {
		t.Fatalf("unwrap: %v, %v", un, err)
	}
	if v, _ := mapAt(un.Data, "data", "k"); v != "wrapped-value" {
		t.Fatalf("unwrapped data %v; want data.k = wrapped-value", un.Data)
	}
	if _, err := root.Logical().Unwrap(wi.Token); err == nil {
		t.Fatal("a second unwrap of the same token succeeded")
	} else if c := statusOf(err); c != 400 && c != 403 {
		t.Fatalf("second unwrap: %v; want 400 (or 403)", err)
	}
	if _, err := withToken(t, root, "").Logical().Write("sys/wrapping/lookup", map[string]any{"token": wi.Token}); err == nil {
		t.Fatal("sys/wrapping/lookup of an unwrapped token succeeded")
	}

	// With the X-Vault-Wrap-TTL header, and unwrapping with the wrapping
	// token as the client token.
	hc := withToken(t, root, "root")
	hc.SetHeaders(http.Header{"X-Vault-Wrap-TTL": []string{"60"}})
	sec, err = hc.Logical().Read("secret/data/w")
	if err != nil || sec == nil || sec.WrapInfo == nil || sec.WrapInfo.TTL != 60 || sec.Data != nil {
		t.Fatalf("read with X-Vault-Wrap-TTL: %+v, %v; want wrap_info with ttl 60 and no data", sec, err)
	}
	self := withToken(t, root, sec.WrapInfo.Token)
	un, err = self.Logical().Unwrap("")
	if err != nil || un == nil {
		t.Fatalf("unwrap with the wrapping token as client token: %v, %v", un, err)
	}
	if v, _ := mapAt(un.Data, "data", "k"); v != "wrapped-value" {
		t.Fatalf("unwrapped data %v", un.Data)
	}
	if _, err := self.Logical().Unwrap(""); err == nil {
		t.Fatal("a second self-unwrap succeeded")
	}
	// The wrapping token grants nothing but unwrapping.
	sec, err = hc.Logical().Read("secret/data/w")
	if err != nil || sec.WrapInfo == nil {
		t.Fatalf("wrapped read: %+v, %v", sec, err)
	}
	_, err = withToken(t, root, sec.WrapInfo.Token).Logical().Read("secret/data/w")
	refused(t, "a wrapping token reads a secret", err, 403, "permission denied")

	// A wrapped token create: the unwrapped auth holds a working token.
	tc := withToken(t, root, "root")
	tc.SetWrappingLookupFunc(func(operation, path string) string { return "2m" })
	ws, err := tc.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"default"}})
	if err != nil || ws.WrapInfo == nil || ws.Auth != nil || ws.WrapInfo.WrappedAccessor == "" || ws.WrapInfo.CreationPath != "auth/token/create" {
		t.Fatalf("wrapped token create: %+v, %v; want wrap_info with wrapped_accessor and no auth", ws, err)
	}
	ut, err := root.Logical().Unwrap(ws.WrapInfo.Token)
	if err != nil || ut == nil || ut.Auth == nil || ut.Auth.Accessor != ws.WrapInfo.WrappedAccessor {
		t.Fatalf("unwrap of a token create: %+v, %v; want the auth with the wrapped accessor", ut, err)
	}
	if _, err := withToken(t, root, ut.Auth.ClientToken).Auth().Token().LookupSelf(); err != nil {
		t.Fatalf("the unwrapped token: %v", err)
	}
	// sys/wrapping/wrap wraps arbitrary data.
	ww, err := tc.Logical().Write("sys/wrapping/wrap", map[string]any{"hello": "world"})
	if err != nil || ww == nil || ww.WrapInfo == nil {
		t.Fatalf("sys/wrapping/wrap: %+v, %v", ww, err)
	}
	if un, err := root.Logical().Unwrap(ww.WrapInfo.Token); err != nil || un == nil || un.Data["hello"] != "world" {
		t.Fatalf("unwrap of sys/wrapping/wrap: %+v, %v", un, err)
	}
}

// ---------------------------------------------------------------- audit

// auditLine is the part of an audit log line the tests look at.
type auditLine struct {
	Type    string `json:"type"`
	Request struct {
		ID        string `json:"id"`
		Operation string `json:"operation"`
		Path      string `json:"path"`
	} `json:"request"`
	Error string `json:"error"`
}

func readAuditLog(t *testing.T, path string) ([]auditLine, string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read audit log: %v", err)
	}
	var lines []auditLine
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var l auditLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("audit line is not JSON: %v: %q", err, sc.Text())
		}
		lines = append(lines, l)
	}
	return lines, string(b)
}

func TestLogicalAudit(t *testing.T) {
	t.Parallel()
	_, root := devServer(t)
	ctx := context.Background()
	sys := root.Sys()
	logPath := filepath.Join(t.TempDir(), "audit.log")

	if err := sys.EnableAuditWithOptions("file", &api.EnableAuditOptions{
		Type: "file", Description: "acceptance", Options: map[string]string{"file_path": logPath},
	}); err != nil {
		t.Fatalf("enable file audit: %v", err)
	}
	refused(t, "enable the same audit path twice", sys.EnableAuditWithOptions("file", &api.EnableAuditOptions{
		Type: "file", Options: map[string]string{"file_path": logPath},
	}), 400, "")
	devs, err := sys.ListAudit()
	if err != nil || devs["file/"] == nil || devs["file/"].Type != "file" || devs["file/"].Options["file_path"] != logPath || devs["file/"].Description != "acceptance" {
		t.Fatalf("ListAudit: %v, %v; want file/ with file_path %s", devs, err, logPath)
	}

	plaintext := fmt.Sprintf("plaintext-S3cr3t-%x", randomBytes(t, 8))
	if _, err := root.KVv2("secret").Put(ctx, "audited", map[string]any{"password": plaintext}); err != nil {
		t.Fatalf("put audited: %v", err)
	}
	if s, err := root.KVv2("secret").Get(ctx, "audited"); err != nil || s.Data["password"] != plaintext {
		t.Fatalf("get audited: %+v, %v", s, err)
	}
	if _, err := withToken(t, root, "not-a-token").Logical().Read("secret/data/audited"); statusOf(err) != 403 {
		t.Fatalf("read with a bogus token: %v; want 403", err)
	}
	if _, err := root.Auth().Token().LookupSelf(); err != nil {
		t.Fatalf("lookup-self: %v", err)
	}
	hash, err := sys.AuditHash("file", plaintext)
	if err != nil || !strings.HasPrefix(hash, "hmac-sha256:") {
		t.Fatalf("sys/audit-hash: %q, %v; want hmac-sha256:...", hash, err)
	}

	lines, text := readAuditLog(t, logPath)
	if strings.Contains(text, plaintext) {
		t.Fatalf("the audit log holds the secret in clear:\n%s", text)
	}
	if strings.Contains(text, `"root"`) && strings.Contains(text, `"client_token":"root"`) {
		t.Fatalf("the audit log holds the root token in clear")
	}
	if !strings.Contains(text, hash) {
		t.Fatalf("the audit log lacks the secret's hash %s", hash)
	}
	reqs, resps := map[string]auditLine{}, map[string]auditLine{}
	for _, l := range lines {
		if l.Request.ID == "" {
			t.Fatalf("audit line without request.id: %+v", l)
		}
		switch l.Type {
		case "request":
			reqs[l.Request.ID] = l
		case "response":
			resps[l.Request.ID] = l
		default:
			t.Fatalf("audit line of type %q", l.Type)
		}
	}
	for id, l := range reqs {
		// Vault's enable-time test message is a lone request line on
		// sys/audit/test.
		if _, ok := resps[id]; !ok && l.Request.Path != "sys/audit/test" {
			t.Fatalf("request %s (%s %s) has no response line", id, l.Request.Operation, l.Request.Path)
		}
	}
	for id, l := range resps {
		// The enable's own request was logged before the device existed; its
		// response is the device's first line, as in Vault.
		if _, ok := reqs[id]; !ok && l.Request.Path != "sys/audit/file" {
			t.Fatalf("response %s (%s %s) has no request line", id, l.Request.Operation, l.Request.Path)
		}
	}
	find := func(op, path string) auditLine {
		t.Helper()
		for id, l := range reqs {
			if l.Request.Path == path && l.Request.Operation == op {
				if _, ok := resps[id]; ok {
					return resps[id]
				}
			}
		}
		t.Fatalf("no request and response lines for %s %s in:\n%s", op, path, text)
		return auditLine{}
	}
	find("create", "secret/data/audited")
	find("read", "secret/data/audited")
	find("read", "auth/token/lookup-self")
	// Two reads of secret/data/audited: one served, one denied with its error.
	served, denied := 0, 0
	for id, l := range resps {
		if rq := reqs[id].Request; rq.Path != "secret/data/audited" || rq.Operation != "read" {
			continue
		}
		switch {
		case l.Error == "":
			served++
		case strings.Contains(l.Error, "permission denied"):
			denied++
		}
	}
	if served != 1 || denied != 1 {
		t.Fatalf("reads of secret/data/audited in the audit log: %d served, %d denied; want 1 and 1:\n%s", served, denied, text)
	}

	if err := sys.DisableAudit("file"); err != nil {
		t.Fatalf("disable audit: %v", err)
	}
	if devs, err := sys.ListAudit(); err != nil || len(devs) != 0 {
		t.Fatalf("ListAudit after disable: %v, %v", devs, err)
	}
	fi, err := os.Stat(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := root.KVv2("secret").Get(ctx, "audited"); err != nil {
		t.Fatalf("get after disable: %v", err)
	}
	if fi2, err := os.Stat(logPath); err != nil || fi2.Size() != fi.Size() {
		t.Fatalf("the audit log grew after the device was disabled: %d -> %d (%v)", fi.Size(), fi2.Size(), err)
	}
	_, err = sys.AuditHash("file", plaintext)
	refused(t, "audit-hash of a disabled device", err, 400, "")
}

// TestLogicalAuditEnableTestsDevice: Vault writes a test message when an
// audit device is enabled and refuses the enable (400 "audit backend failed
// test message") if it cannot be written; the device is then not enabled and
// requests go on being served.
func TestLogicalAuditEnableTestsDevice(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skipf("no /dev/full here: %v", err)
	}
	_, root := devServer(t)
	err := root.Sys().EnableAuditWithOptions("full", &api.EnableAuditOptions{Type: "file", Options: map[string]string{"file_path": "/dev/full"}})
	refused(t, "enable an audit device on /dev/full", err, 400, "")
	if devs, err := root.Sys().ListAudit(); err != nil || len(devs) != 0 {
		t.Fatalf("ListAudit after the refused enable: %v, %v; want no device and the request served", devs, err)
	}
}

// TestLogicalAuditFullDiskRefuses: with audit devices enabled and none able to
// log, requests are refused and change nothing.
//
// The device's file_path is a symlink in the test's directory. It points at
// a regular file while the device is enabled (Vault refuses to enable a
// device it cannot write, see TestLogicalAuditEnableTestsDevice), then, with
// the server stopped, at /dev/full: every write to it fails with ENOSPC, a
// real full disk. The server restarts with the device persisted and must
// refuse requests. To prove the refused write left nothing behind, the server
// is stopped again, the symlink pointed at a new regular file (the disk was
// freed) and the server restarted: the device logs again, requests are
// served, and the value written during the outage is absent.
func TestLogicalAuditFullDiskRefuses(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skipf("no /dev/full here: %v", err)
	}
	n, p, rootTok := staticServer(t)
	ctx := context.Background()
	root := client(t, n.addr, rootTok)
	logDir := t.TempDir()
	link := filepath.Join(logDir, "audit.log")
	repoint := func(target string) {
		t.Helper()
		_ = os.Remove(link)
		if err := os.Symlink(target, link); err != nil {
			t.Fatalf("symlink %s -> %s: %v", link, target, err)
		}
	}
	repoint(filepath.Join(logDir, "before.log"))
	if _, err := root.KVv2("secret").Put(ctx, "before", map[string]any{"v": "1"}); err != nil {
		t.Fatalf("put before: %v", err)
	}
	if err := root.Sys().EnableAuditWithOptions("file", &api.EnableAuditOptions{Type: "file", Options: map[string]string{"file_path": link}}); err != nil {
		t.Fatalf("enable audit: %v", err)
	}
	if _, err := root.KVv2("secret").Get(ctx, "before"); err != nil {
		t.Fatalf("get with the audit device working: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(logDir, "before.log")); err != nil || fi.Size() == 0 {
		t.Fatalf("the audit device wrote nothing while working: %v", err)
	}

	// The disk fills up.
	if code := p.stop(); code != 0 {
		t.Fatalf("exit %d on SIGTERM", code)
	}
	repoint("/dev/full")
	p = n.start()
	waitHealthCode(t, n.addr, 200)
	// Vault answers 500 "internal error" when no device could log a request.
	_, err := root.KVv2("secret").Put(ctx, "during", map[string]any{"v": "lost"})
	refused(t, "kv put while no audit device can log", err, 500, "internal error")
	_, err = root.Logical().Write("secret/data/before", map[string]any{"data": map[string]any{"v": "changed"}})
	refused(t, "overwrite while no audit device can log", err, 500, "internal error")
	_, err = root.KVv2("secret").Get(ctx, "before")
	refused(t, "kv get while no audit device can log", err, 500, "internal error")
	_, err = root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"default"}})
	refused(t, "token create while no audit device can log", err, 500, "internal error")
	refused(t, "disabling the device while it cannot log", root.Sys().DisableAudit("file"), 500, "internal error")

	// The disk is freed: the device logs again after a restart.
	if code := p.stop(); code != 0 {
		t.Fatalf("exit %d on SIGTERM", code)
	}
	after := filepath.Join(logDir, "after.log")
	repoint(after)
	n.start()
	waitHealthCode(t, n.addr, 200)
	if s, err := root.KVv2("secret").Get(ctx, "during"); !errors.Is(err, api.ErrSecretNotFound) {
		t.Fatalf("the value put during the outage: %+v, %v; want absent", s, err)
	}
	if s, err := root.KVv2("secret").Get(ctx, "before"); err != nil || s.Data["v"] != "1" || s.VersionMetadata.Version != 1 {
		t.Fatalf("secret/before after the outage: %+v, %v; want v=1 at version 1", s, err)
	}
	if _, err := root.Auth().Token().LookupSelf(); err != nil {
		t.Fatalf("lookup-self after the outage: %v", err)
	}
	lines, _ := readAuditLog(t, after)
	if len(lines) == 0 {
		t.Fatal("the audit device wrote nothing after the disk was freed")
	}
	for _, l := range lines {
		if l.Request.Path == "secret/data/during" && l.Type == "request" && l.Request.Operation != "read" {
			t.Fatalf("a write of secret/data/during appears after the outage: %+v", l)
		}
	}
}

// ---------------------------------------------------------------- bad input

func TestLogicalBadInput(t *testing.T) {
	t.Parallel()
	_, root := devServer(t)
	ctx := context.Background()
	kv := root.KVv2("secret")

	// Unknown mount path.
	rawJSON(t, root, http.MethodGet, "nowhere/at/all", nil).expectError(t, 404, "nowhere/at/all")
	rawJSON(t, root, http.MethodPut, "nowhere/at/all", `{"a":"b"}`).expectError(t, 404, "nowhere/at/all")

	// A field of the wrong type: 400 naming it; nothing written.
	_, err := root.Logical().Write("secret/metadata/bi", map[string]any{"max_versions": "abc"})
	refused(t, "metadata max_versions=abc", err, 400, "max_versions")
	if _, err := kv.GetMetadata(ctx, "bi"); !errors.Is(err, api.ErrSecretNotFound) {
		t.Fatalf("metadata after the refused write: %v; want not found", err)
	}
	_, err = root.Logical().Write("sys/mounts/badmount", map[string]any{"type": "kv", "local": "notabool"})
	refused(t, "mount with local=notabool", err, 400, "local")
	if m, err := root.Sys().ListMounts(); err != nil || m["badmount/"] != nil {
		t.Fatalf("ListMounts after the refused mount: %v, %v", m["badmount/"], err)
	}
	_, err = root.Logical().Write("auth/token/create", map[string]any{"num_uses": "many", "policies": []string{"default"}})
	refused(t, "token create num_uses=many", err, 400, "num_uses")
	_, err = root.Logical().Write("auth/token/create", map[string]any{"ttl": "forever"})
	refused(t, "token create ttl=forever", err, 400, "ttl")
	_, err = root.Logical().Write("secret/data/bi", map[string]any{"data": "not-an-object"})
	refused(t, "kv v2 data that is not an object", err, 400, "data")
	_, err = root.Logical().Write("secret/data/bi", map[string]any{"data": map[string]any{"k": "v"}, "options": map[string]any{"cas": "x"}})
	refused(t, "kv v2 cas=x", err, 400, "cas")
	if _, err := kv.Get(ctx, "bi"); !errors.Is(err, api.ErrSecretNotFound) {
		t.Fatalf("secret/bi after the refused writes: %v; want not found", err)
	}

	// A policy that does not parse names the line; nothing stored.
	err = root.Sys().PutPolicy("broken", "path \"a/*\" {\n  capabilities = [\"read\"]\n}\n\npath \"b/*\" {\n  capabilities = [\"read\"]\n  bogus_key = true\n}\n")
	refused(t, "a policy with an unknown key", err, 400, "line 7")
	if p, err := root.Sys().GetPolicy("broken"); err != nil || p != "" {
		t.Fatalf("policy broken after the refused write: %q, %v", p, err)
	}

	// Malformed JSON on a logical path: 400, nothing written.
	rawJSON(t, root, http.MethodPut, "secret/data/mal", `{"data": {"k": `).expectError(t, 400, "json")
	rawJSON(t, root, http.MethodPut, "secret/data/mal", `{"data": {"k": "v"}} trailing`).expectError(t, 400, "json")
	rawJSON(t, root, http.MethodPut, "secret/data/mal", `["not", "an", "object"]`).expectError(t, 400, "")
	if _, err := kv.Get(ctx, "mal"); !errors.Is(err, api.ErrSecretNotFound) {
		t.Fatalf("secret/mal after malformed bodies: %v; want not found", err)
	}

	// A token with no policies at all (Vault allows it: policies [default]
	// with no_default_policy=true leaves none) is denied everything.
	np, err := root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"default"}, NoDefaultPolicy: true})
	if err != nil {
		t.Fatalf("create a token without policies: %v", err)
	}
	if len(np.Auth.Policies) != 0 {
		t.Fatalf("policies of the token: %q; want none", np.Auth.Policies)
	}
	npc := withToken(t, root, np.Auth.ClientToken)
	_, err = npc.Logical().Read("secret/data/bi")
	refused(t, "a token without policies reads", err, 403, "permission denied")
	_, err = npc.KVv2("secret").Put(ctx, "np", map[string]any{"k": "v"})
	refused(t, "a token without policies writes", err, 403, "permission denied")
	_, err = npc.Auth().Token().LookupSelf()
	refused(t, "a token without policies looks itself up", err, 403, "permission denied")
	if _, err := kv.Get(ctx, "np"); !errors.Is(err, api.ErrSecretNotFound) {
		t.Fatalf("secret/np after the refused write: %v; want not found", err)
	}

	// PATCH without the merge-patch content type: 415.
	if r := rawJSON(t, root, http.MethodPatch, "secret/data/mal", `{"data":{"k":"v"}}`); r.code != 415 {
		t.Fatalf("PATCH with application/json: %d, want 415 (%q)", r.code, r.body)
	}
	// LIST on data/: 405.
	if _, err := root.Logical().List("secret/data/"); statusOf(err) != 405 {
		t.Fatalf("LIST secret/data/: %v; want 405", err)
	}
}

// ---------------------------------------------------------------- persistence

// TestLogicalPersistence: what the logical layer stores survives a restart of
// a bolt-backed server (static seal, so it unseals itself): mounts with their
// tuning, kv data of both versions, policies, tokens, auth methods with their
// users, audit devices, and a pending wrapped response.
func TestLogicalPersistence(t *testing.T) {
	t.Parallel()
	n, p, rootTok := staticServer(t)
	ctx := context.Background()
	root := client(t, n.addr, rootTok)
	sys := root.Sys()

	if err := sys.Mount("kv1", &api.MountInput{Type: "kv", Local: true, Description: "v1 local"}); err != nil {
		t.Fatalf("mount kv1: %v", err)
	}
	if err := sys.TuneMountAllowNil("kv1", api.TuneMountConfigInput{DefaultLeaseTTL: ptr("1h")}); err != nil {
		t.Fatalf("tune kv1: %v", err)
	}
	if err := root.KVv1("kv1").Put(ctx, "a", map[string]any{"v": "one"}); err != nil {
		t.Fatalf("kv1 put: %v", err)
	}
	for i := 1; i <= 2; i++ {
		if _, err := root.KVv2("secret").Put(ctx, "b", map[string]any{"v": strconv.Itoa(i)}); err != nil {
			t.Fatalf("kv2 put: %v", err)
		}
	}
	if err := root.KVv2("secret").PutMetadata(ctx, "b", api.KVMetadataPutInput{MaxVersions: 5, CustomMetadata: map[string]any{"o": "p"}}); err != nil {
		t.Fatalf("put metadata: %v", err)
	}
	pol := `path "secret/data/b" { capabilities = ["read"] }`
	if err := sys.PutPolicy("readb", pol); err != nil {
		t.Fatalf("put policy: %v", err)
	}
	tok, err := root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"readb"}, TTL: "1h"})
	if err != nil {
		t.Fatalf("token create: %v", err)
	}
	if err := sys.EnableAuthWithOptions("userpass", &api.EnableAuthOptions{Type: "userpass"}); err != nil {
		t.Fatalf("enable userpass: %v", err)
	}
	if _, err := root.Logical().Write("auth/userpass/users/carol", map[string]any{"password": "pw-carol", "token_policies": []string{"readb"}}); err != nil {
		t.Fatalf("create user: %v", err)
	}
	logPath := filepath.Join(t.TempDir(), "audit.log")
	if err := sys.EnableAuditWithOptions("file", &api.EnableAuditOptions{Type: "file", Options: map[string]string{"file_path": logPath}}); err != nil {
		t.Fatalf("enable audit: %v", err)
	}
	wc := withToken(t, root, rootTok)
	wc.SetWrappingLookupFunc(func(string, string) string { return "10m" })
	wrapped, err := wc.Logical().Read("secret/data/b")
	if err != nil || wrapped == nil || wrapped.WrapInfo == nil {
		t.Fatalf("wrapped read: %+v, %v", wrapped, err)
	}

	p = n.restart(p)
	waitHealthCode(t, n.addr, 200)

	mounts, err := sys.ListMounts()
	if err != nil || mounts["kv1/"] == nil || !mounts["kv1/"].Local || mounts["kv1/"].Config.DefaultLeaseTTL != 3600 ||
		mounts["secret/"] == nil || mounts["secret/"].Options["version"] != "2" {
		t.Fatalf("mounts after restart: %v, %v", mounts, err)
	}
	if s, err := root.KVv1("kv1").Get(ctx, "a"); err != nil || s.Data["v"] != "one" {
		t.Fatalf("kv1/a after restart: %+v, %v", s, err)
	}
	if s, err := root.KVv2("secret").Get(ctx, "b"); err != nil || s.Data["v"] != "2" || s.VersionMetadata.Version != 2 || s.CustomMetadata["o"] != "p" {
		t.Fatalf("secret/b after restart: %+v, %v", s, err)
	}
	if md, err := root.KVv2("secret").GetMetadata(ctx, "b"); err != nil || md.MaxVersions != 5 {
		t.Fatalf("secret/b metadata after restart: %+v, %v", md, err)
	}
	if got, err := sys.GetPolicy("readb"); err != nil || got != pol {
		t.Fatalf("policy after restart: %q, %v", got, err)
	}
	tc := withToken(t, root, tok.Auth.ClientToken)
	if _, err := tc.KVv2("secret").Get(ctx, "b"); err != nil {
		t.Fatalf("the token after restart: %v", err)
	}
	if l, err := tc.Auth().Token().LookupSelf(); err != nil || num(t, "ttl", l.Data["ttl"]) > 3600 || num(t, "ttl", l.Data["ttl"]) < 3000 {
		t.Fatalf("token lookup-self after restart: %+v, %v; want ttl under an hour", l, err)
	}
	_, err = tc.Logical().Read("secret/data/other")
	refused(t, "the token outside its policy after restart", err, 403, "permission denied")
	login, err := withToken(t, root, "").Logical().Write("auth/userpass/login/carol", map[string]any{"password": "pw-carol"})
	if err != nil || login == nil || login.Auth == nil || !slices.Contains(login.Auth.Policies, "readb") {
		t.Fatalf("login after restart: %+v, %v", login, err)
	}
	if devs, err := sys.ListAudit(); err != nil || devs["file/"] == nil {
		t.Fatalf("audit devices after restart: %v, %v", devs, err)
	}
	before, err := os.Stat(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := root.Auth().Token().LookupSelf(); err != nil {
		t.Fatal(err)
	}
	if after, err := os.Stat(logPath); err != nil || after.Size() <= before.Size() {
		t.Fatalf("the audit device does not log after restart: %d -> %d bytes", before.Size(), after.Size())
	}
	un, err := root.Logical().Unwrap(wrapped.WrapInfo.Token)
	if err != nil || un == nil {
		t.Fatalf("unwrap after restart: %+v, %v", un, err)
	}
	if v, _ := mapAt(un.Data, "data", "v"); v != "2" {
		t.Fatalf("unwrapped after restart: %v", un.Data)
	}
	if code := p.stop(); code != 0 {
		t.Fatalf("exit %d on SIGTERM", code)
	}
}
