package tests

// sys/remount and sys/remount/status through vault/api (Sys().Remount,
// StartRemount, RemountStatus), as Vault answers them.

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/hashicorp/vault/api"
)

func TestRemountMovesAMountWithItsData(t *testing.T) {
	t.Parallel()
	_, root := devServer(t)
	sys := root.Sys()
	if err := sys.Mount("app", &api.MountInput{Type: "kv-v2"}); err != nil {
		t.Fatal(err)
	}
	kvPut(t, root, "app", "db", map[string]any{"password": "s3cret"})
	before, err := sys.ListMounts()
	if err != nil {
		t.Fatal(err)
	}
	if err := sys.Remount("app", "moved/app"); err != nil {
		t.Fatalf("Remount: %v", err)
	}
	s, err := root.KVv2("moved/app").Get(t.Context(), "db")
	if err != nil || s.Data["password"] != "s3cret" {
		t.Fatalf("the secret at its new path: %v %v", s, err)
	}
	if _, err := root.KVv2("app").Get(t.Context(), "db"); err == nil {
		t.Fatal("the old path still serves the secret")
	}
	after, err := sys.ListMounts()
	if err != nil {
		t.Fatal(err)
	}
	if after["app/"] != nil || after["moved/app/"] == nil || after["moved/app/"].UUID != before["app/"].UUID {
		t.Fatalf("mounts after the move: app/ %v, moved/app/ %+v (want the same uuid %s)", after["app/"], after["moved/app/"], before["app/"].UUID)
	}

	// The asynchronous form vault/api also offers, and its status.
	out, err := sys.StartRemount("moved/app", "app2")
	if err != nil || out.MigrationID == "" {
		t.Fatalf("StartRemount: %+v %v", out, err)
	}
	st, err := sys.RemountStatus(out.MigrationID)
	if err != nil || st.MigrationInfo == nil || st.MigrationInfo.MigrationStatus != "success" ||
		st.MigrationInfo.SourceMount != "moved/app/" || st.MigrationInfo.TargetMount != "app2/" {
		t.Fatalf("RemountStatus: %+v %v", st, err)
	}
	_, err = sys.RemountStatus("9b1f7c4e-0000-4000-8000-000000000000")
	refused(t, "status of an unknown migration", err, http.StatusNotFound, "no mount migration")

	for _, tc := range []struct{ from, to, msg string }{
		{"app2", "", "both"},
		{"nothere", "x", "no secrets engine is mounted"},
		{"app2", "secret", "already in use"},
		{"app2", "sys/x", "reserved"},
		{"app2", "auth/x", "stays a secrets engine"},
		{"sys", "system2", "built in"},
		{"auth/token", "auth/tok2", "built in"},
	} {
		_, err := sys.StartRemount(tc.from, tc.to)
		refused(t, tc.from+" -> "+tc.to, err, http.StatusBadRequest, tc.msg)
	}
}

// Moving an auth method revokes the tokens its logins issued (as Vault);
// its configuration (users) moves with it.
func TestRemountMovesAnAuthMethod(t *testing.T) {
	t.Parallel()
	_, root := devServer(t)
	if err := root.Sys().EnableAuthWithOptions("up", &api.EnableAuthOptions{Type: "userpass"}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("auth/up/users/alice", map[string]any{"password": "pw"}); err != nil {
		t.Fatal(err)
	}
	login := func(mount string) (*api.Client, error) {
		c := withToken(t, root, "")
		s, err := c.Logical().Write("auth/"+mount+"/login/alice", map[string]any{"password": "pw"})
		if err != nil {
			return nil, err
		}
		c.SetToken(s.Auth.ClientToken)
		return c, nil
	}
	alice, err := login("up")
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().Remount("auth/up", "auth/people"); err != nil {
		t.Fatalf("Remount of an auth method: %v", err)
	}
	_, err = alice.Auth().Token().LookupSelf()
	refused(t, "a token of the moved method", err, http.StatusForbidden, "")
	if _, err := login("people"); err != nil {
		t.Fatalf("login at the new path: %v", err)
	}
}

// sys/remount needs sudo, as in Vault.
func TestRemountNeedsSudo(t *testing.T) {
	t.Parallel()
	_, root := devServer(t)
	if err := root.Sys().Mount("app", &api.MountInput{Type: "kv"}); err != nil {
		t.Fatal(err)
	}
	for name, caps := range map[string]string{"update": `["update"]`, "sudo": `["update", "sudo"]`} {
		if err := root.Sys().PutPolicy("mover-"+name, `path "sys/remount" { capabilities = `+caps+` }
path "sys/remount/status/*" { capabilities = ["read", "sudo"] }`); err != nil {
			t.Fatal(err)
		}
	}
	tok := func(policy string) *api.Client {
		s, err := root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{policy}})
		if err != nil {
			t.Fatal(err)
		}
		return withToken(t, root, s.Auth.ClientToken)
	}
	_, err := tok("mover-update").Sys().StartRemount("app", "app2")
	refused(t, "remount with update alone", err, http.StatusForbidden, "")
	if err := tok("mover-sudo").Sys().Remount("app", "app2"); err != nil {
		t.Fatalf("remount with update and sudo: %v", err)
	}
}

// On a performance secondary a replicated mount cannot move (it is the
// primary's); a local one can.
func TestRemountOnASecondary(t *testing.T) {
	t.Parallel()
	rp := fwdPairT(t)
	if err := rp.p.root.Sys().Mount("shared", &api.MountInput{Type: "kv"}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, waitTimeout, "shared/ mounted on the secondary", func() error {
		m, err := rp.s.root.Sys().ListMounts()
		if err != nil || m["shared/"] == nil {
			return fmt.Errorf("mounts %v, err %v", m, err)
		}
		return nil
	})
	_, err := rp.s.root.Sys().StartRemount("shared", "shared2")
	refused(t, "moving a replicated mount on the secondary", err, http.StatusBadRequest, "send the write to")
	if err := rp.s.root.Sys().Mount("mine", &api.MountInput{Type: "kv", Local: true}); err != nil {
		t.Fatal(err)
	}
	if err := rp.s.root.Sys().Remount("mine", "mine2"); err != nil {
		t.Fatalf("moving a local mount on the secondary: %v", err)
	}
	m, err := rp.s.root.Sys().ListMounts()
	if err != nil || m["mine2/"] == nil || !m["mine2/"].Local {
		t.Fatalf("the secondary's mounts: %v %v", m, err)
	}
}

// `coffer secrets move` and `coffer auth move`, in the vault CLI's syntax.
func TestCLIMove(t *testing.T) {
	addr := cliDevServer(t)
	cliOK(t, addr, "root", "", "secrets", "enable", "-path=app", "-version=2", "kv")
	cliOK(t, addr, "root", "", "kv", "put", "app/db", "password=s3cret")
	out := cliOK(t, addr, "root", "", "secrets", "move", "app", "apps/one")
	cliContains(t, "secrets move", out, "Started moving secrets engine app/ to apps/one/, with migration ID ",
		"Success! Finished moving secrets engine app/ to apps/one/")
	if got := cliOK(t, addr, "root", "", "kv", "get", "-field=password", "apps/one/db"); got != "s3cret" {
		t.Fatalf("the secret after the move: %q", got)
	}
	cliContains(t, "secrets move onto a used path", cliFail(t, addr, "root", "", 2, "secrets", "move", "apps/one", "secret"), "already in use")
	cliContains(t, "secrets move with one argument", cliFail(t, addr, "root", "", 1, "secrets", "move", "apps/one"), "Not enough arguments")
	cliOK(t, addr, "root", "", "auth", "enable", "-path=up", "userpass")
	out = cliOK(t, addr, "root", "", "auth", "move", "up", "people")
	cliContains(t, "auth move", out, "Success! Finished moving auth method up/ to people/")
	out = cliOK(t, addr, "root", "", "auth", "list")
	cliContains(t, "auth list after the move", out, "people/")
}
