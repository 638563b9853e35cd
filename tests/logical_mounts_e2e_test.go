package tests

// The acceptance suite of the Vault-compatible logical layer, secret-engine
// mounts: driven through github.com/hashicorp/vault/api against real coffer
// processes. Expectations are Vault's (checked against Vault 1.21's source)
// unless a comment says Coffer decided otherwise.

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/hashicorp/vault/api"
)

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
