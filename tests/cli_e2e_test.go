package tests

// End-to-end tests of the vault-compatible CLI commands: the built coffer
// binary against a real dev server (kv-v2 at secret/, root token "root").

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCLIKVv2Lifecycle(t *testing.T) {
	addr := cliDevServer(t)

	out := cliOK(t, addr, "root", "", "kv", "put", "secret/app", "password=s3cr3t", "user=bob")
	cliContains(t, "kv put", out, "Secret Path", "secret/data/app", "Metadata", "created_time")
	if v := cliTableValue(t, out, "version"); v != "1" {
		t.Fatalf("first put made version %s", v)
	}

	out = cliOK(t, addr, "root", "", "kv", "get", "secret/app")
	cliContains(t, "kv get", out, "= Secret Path =\nsecret/data/app\n", "======= Metadata =======", "====== Data ======")
	if got := cliTableValue(t, out, "password"); got != "s3cr3t" {
		t.Fatalf("password %q", got)
	}
	if got := cliOK(t, addr, "root", "", "kv", "get", "-field=user", "secret/app"); got != "bob" {
		t.Fatalf("-field=user printed %q", got)
	}

	// A second version, from a file and from stdin; the first stays readable.
	file := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(file, []byte("from-file"), 0o600); err != nil {
		t.Fatal(err)
	}
	out = cliOK(t, addr, "root", "stdin-value", "kv", "put", "-cas=1", "secret/app", "password=@"+file, "note=-")
	if v := cliTableValue(t, out, "version"); v != "2" {
		t.Fatalf("second put made version %s", v)
	}
	if got := cliOK(t, addr, "root", "", "kv", "get", "-field=note", "secret/app"); got != "stdin-value" {
		t.Fatalf("note %q", got)
	}
	if got := cliOK(t, addr, "root", "", "kv", "get", "-version=1", "-field=password", "secret/app"); got != "s3cr3t" {
		t.Fatalf("version 1 password %q", got)
	}
	// A stale cas is refused by the server: exit 2 and its message.
	errOut := cliFail(t, addr, "root", "", 2, "kv", "put", "-cas=1", "secret/app", "x=y")
	cliContains(t, "stale cas", errOut, "Error writing data to secret/data/app", "Code: 400")

	// -format=json is the raw response.
	var js struct {
		Data struct {
			Data     map[string]any `json:"data"`
			Metadata map[string]any `json:"metadata"`
		} `json:"data"`
	}
	cliDecode(t, cliOK(t, addr, "root", "", "kv", "get", "-format=json", "secret/app"), &js)
	if js.Data.Data["password"] != "from-file" || js.Data.Metadata["version"] != float64(2) {
		t.Fatalf("json: %+v", js)
	}

	// patch keeps the other keys.
	cliOK(t, addr, "root", "", "kv", "patch", "secret/app", "user=alice")
	if got := cliOK(t, addr, "root", "", "kv", "get", "-field=password", "secret/app"); got != "from-file" {
		t.Fatalf("patch lost password: %q", got)
	}
	if got := cliOK(t, addr, "root", "", "kv", "get", "-field=user", "secret/app"); got != "alice" {
		t.Fatalf("patched user %q", got)
	}

	// list with and without -mount.
	cliOK(t, addr, "root", "", "kv", "put", "secret/team/db", "k=v")
	out = cliOK(t, addr, "root", "", "kv", "list", "secret/")
	if out != "Keys\n----\napp\nteam/\n" {
		t.Fatalf("kv list:\n%q", out)
	}
	if out := cliOK(t, addr, "root", "", "kv", "list", "-mount=secret", "team"); out != "Keys\n----\ndb\n" {
		t.Fatalf("kv list -mount:\n%q", out)
	}

	// delete, undelete, destroy, metadata.
	out = cliOK(t, addr, "root", "", "kv", "delete", "-versions=1", "secret/app")
	cliContains(t, "kv delete -versions", out, "Success! Data deleted (if it existed) at: secret/delete/app")
	cliOK(t, addr, "root", "", "kv", "undelete", "-versions=1", "secret/app")
	if got := cliOK(t, addr, "root", "", "kv", "get", "-version=1", "-field=password", "secret/app"); got != "s3cr3t" {
		t.Fatalf("undeleted version 1: %q", got)
	}
	out = cliOK(t, addr, "root", "", "kv", "destroy", "-versions=1", "secret/app")
	cliContains(t, "kv destroy", out, "Success! Data written to: secret/destroy/app")
	out = cliOK(t, addr, "root", "", "kv", "metadata", "get", "secret/app")
	cliContains(t, "kv metadata get", out, "Metadata Path", "secret/metadata/app", "current_version", "Version 1", "Version 3")
	v1 := out[strings.Index(out, "Version 1"):strings.Index(out, "Version 2")]
	if cliTableValue(t, v1, "destroyed") != "true" {
		t.Fatalf("version 1 not destroyed:\n%s", v1)
	}
	cliOK(t, addr, "root", "", "kv", "metadata", "put", "-max-versions=5", "-custom-metadata=owner=ops", "secret/app")
	out = cliOK(t, addr, "root", "", "kv", "metadata", "get", "-format=json", "secret/app")
	var meta struct {
		Data struct {
			MaxVersions    float64           `json:"max_versions"`
			CustomMetadata map[string]string `json:"custom_metadata"`
		} `json:"data"`
	}
	cliDecode(t, out, &meta)
	if meta.Data.MaxVersions != 5 || meta.Data.CustomMetadata["owner"] != "ops" {
		t.Fatalf("metadata after put: %+v", meta)
	}
	out = cliOK(t, addr, "root", "", "kv", "metadata", "delete", "secret/app")
	cliContains(t, "kv metadata delete", out, "Success! Data deleted (if it existed) at: secret/metadata/app")
	errOut = cliFail(t, addr, "root", "", 2, "kv", "get", "secret/app")
	cliContains(t, "kv get after metadata delete", errOut, "No value found at secret/data/app")
}

func TestCLIReadWriteListDelete(t *testing.T) {
	addr := cliDevServer(t)

	out := cliOK(t, addr, "root", `{"data":{"a":"1"}}`, "write", "secret/data/raw", "-")
	if cliTableValue(t, out, "version") != "1" {
		t.Fatalf("write:\n%s", out)
	}
	var sec struct {
		Data struct {
			Data map[string]string `json:"data"`
		} `json:"data"`
	}
	cliDecode(t, cliOK(t, addr, "root", "", "read", "-format=json", "secret/data/raw"), &sec)
	if sec.Data.Data["a"] != "1" {
		t.Fatalf("read: %+v", sec)
	}
	out = cliOK(t, addr, "root", "", "list", "secret/metadata")
	if out != "Keys\n----\nraw\n" {
		t.Fatalf("list:\n%q", out)
	}
	var keys []string
	cliDecode(t, cliOK(t, addr, "root", "", "list", "-format=json", "secret/metadata"), &keys)
	if len(keys) != 1 || keys[0] != "raw" {
		t.Fatalf("list json %v", keys)
	}
	out = cliOK(t, addr, "root", "", "delete", "secret/metadata/raw")
	cliContains(t, "delete", out, "Success! Data deleted (if it existed) at: secret/metadata/raw")
	errOut := cliFail(t, addr, "root", "", 2, "read", "secret/data/raw")
	cliContains(t, "read after delete", errOut, "No value found at secret/data/raw")

	// write -f: no data (a child token with the defaults).
	out = cliOK(t, addr, "root", "", "write", "-f", "auth/token/create")
	cliContains(t, "write -f auth/token/create", out, "token_accessor", "token_policies")
	// Usage errors exit 1 before any request.
	cliContains(t, "write without data", cliFail(t, addr, "root", "", 1, "write", "secret/data/x"), "Must supply data or use -force")
	cliContains(t, "flag after path", cliFail(t, addr, "root", "", 1, "kv", "get", "secret/app", "-version=1"), "Too many arguments")
	// No token: the server refuses, exit 2 with the server's errors.
	errOut = cliFail(t, addr, "", "", 2, "read", "secret/data/raw")
	cliContains(t, "read without a token", errOut, "Error reading secret/data/raw: Error making API request.", "Code: 403", "* permission denied")
}

func TestCLISecretsEngines(t *testing.T) {
	addr := cliDevServer(t)

	out := cliOK(t, addr, "root", "", "secrets", "enable", "-path=kv1", "-description=version one", "kv")
	if out != "Success! Enabled the kv secrets engine at: kv1/\n" {
		t.Fatalf("secrets enable:\n%q", out)
	}
	cliOK(t, addr, "root", "", "secrets", "enable", "-path=lkv", "-local", "-version=2", "kv")

	out = cliOK(t, addr, "root", "", "secrets", "list")
	cliContains(t, "secrets list", out, "Path", "Type", "Accessor", "Description", "kv1/", "version one", "secret/", "lkv/")
	out = cliOK(t, addr, "root", "", "secrets", "list", "-detailed")
	var lkvLine string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "lkv/") {
			lkvLine = l
		}
	}
	if !strings.Contains(lkvLine, " local ") || !strings.Contains(lkvLine, "version:2") {
		t.Fatalf("secrets list -detailed: lkv/ row %q in:\n%s", lkvLine, out)
	}
	var mounts map[string]struct {
		Type    string            `json:"type"`
		Local   bool              `json:"local"`
		Options map[string]string `json:"options"`
	}
	cliDecode(t, cliOK(t, addr, "root", "", "secrets", "list", "-format=json"), &mounts)
	if mounts["kv1/"].Type != "kv" || !mounts["lkv/"].Local || mounts["lkv/"].Options["version"] != "2" {
		t.Fatalf("secrets list json: %+v", mounts)
	}

	// kv on a v1 mount: plain paths, no Secret Path header.
	out = cliOK(t, addr, "root", "", "kv", "put", "kv1/app", "a=b")
	if out != "Success! Data written to: kv1/app\n" {
		t.Fatalf("kv put v1:\n%q", out)
	}
	out = cliOK(t, addr, "root", "", "kv", "get", "kv1/app")
	if strings.Contains(out, "Secret Path") || cliTableValue(t, out, "a") != "b" {
		t.Fatalf("kv get v1:\n%s", out)
	}
	cliContains(t, "kv destroy on v1", cliFail(t, addr, "root", "", 1, "kv", "destroy", "-versions=1", "kv1/app"), "not supported on KV Version 1")

	out = cliOK(t, addr, "root", "", "secrets", "tune", "-default-lease-ttl=1h", "-max-lease-ttl=2h", "kv1")
	if out != "Success! Tuned the secrets engine at: kv1/\n" {
		t.Fatalf("secrets tune:\n%q", out)
	}
	var tune struct {
		Data struct {
			Default float64 `json:"default_lease_ttl"`
			Max     float64 `json:"max_lease_ttl"`
		} `json:"data"`
	}
	cliDecode(t, cliOK(t, addr, "root", "", "read", "-format=json", "sys/mounts/kv1/tune"), &tune)
	if tune.Data.Default != 3600 || tune.Data.Max != 7200 {
		t.Fatalf("tuned TTLs %+v", tune.Data)
	}

	out = cliOK(t, addr, "root", "", "secrets", "disable", "kv1")
	if out != "Success! Disabled the secrets engine (if it existed) at: kv1/\n" {
		t.Fatalf("secrets disable:\n%q", out)
	}
	if out := cliOK(t, addr, "root", "", "secrets", "list"); strings.Contains(out, "kv1/") {
		t.Fatalf("kv1/ still listed:\n%s", out)
	}
}

const devPolicy = `path "secret/data/dev/*" {
  capabilities = ["create", "update", "read"]
}
`

func TestCLIPolicyAndTokens(t *testing.T) {
	addr := cliDevServer(t)

	out := cliOK(t, addr, "root", devPolicy, "policy", "write", "dev", "-")
	if out != "Success! Uploaded policy: dev\n" {
		t.Fatalf("policy write:\n%q", out)
	}
	file := filepath.Join(t.TempDir(), "ops.hcl")
	if err := os.WriteFile(file, []byte(`path "sys/mounts" { capabilities = ["read"] }`), 0o600); err != nil {
		t.Fatal(err)
	}
	cliOK(t, addr, "root", "", "policy", "write", "ops", file)
	out = cliOK(t, addr, "root", "", "policy", "list")
	cliContains(t, "policy list", out, "default\n", "dev\n", "ops\n", "root\n")
	if got := cliOK(t, addr, "root", "", "policy", "read", "dev"); got != strings.TrimSpace(devPolicy)+"\n" {
		t.Fatalf("policy read:\n%q", got)
	}

	// A child token with the dev policy.
	var created struct {
		Auth struct {
			ClientToken string   `json:"client_token"`
			Accessor    string   `json:"accessor"`
			Policies    []string `json:"policies"`
		} `json:"auth"`
	}
	cliDecode(t, cliOK(t, addr, "root", "", "token", "create", "-policy=dev", "-ttl=1h", "-display-name=ci", "-format=json"), &created)
	tok := created.Auth.ClientToken
	if tok == "" || strings.Join(created.Auth.Policies, ",") != "default,dev" {
		t.Fatalf("token create: %+v", created)
	}
	out = cliOK(t, addr, "root", "", "token", "create", "-policy=ops", "-use-limit=5")
	cliContains(t, "token create table", out, "token ", "token_accessor", "token_duration", "token_renewable", `["default" "ops"]`)

	// The policy decides: allowed under dev/, refused elsewhere.
	cliOK(t, addr, tok, "", "kv", "put", "secret/dev/app", "a=b")
	if got := cliOK(t, addr, tok, "", "kv", "get", "-field=a", "secret/dev/app"); got != "b" {
		t.Fatalf("read back %q", got)
	}
	errOut := cliFail(t, addr, tok, "", 2, "write", "secret/data/prod/app", "data=x")
	cliContains(t, "write outside the policy", errOut, "Error writing data to secret/data/prod/app", "Code: 403", "* permission denied")

	out = cliOK(t, addr, tok, "", "token", "lookup")
	cliContains(t, "token lookup", out, "display_name", "token-ci", "policies", "[default dev]")
	if ttl := cliTableValue(t, out, "ttl"); !strings.HasSuffix(ttl, "m") && !strings.HasSuffix(ttl, "s") && ttl != "1h" {
		t.Fatalf("ttl printed as %q, want a duration", ttl)
	}
	out = cliOK(t, addr, "root", "", "token", "lookup", "-accessor", created.Auth.Accessor)
	cliContains(t, "lookup by accessor", out, "display_name", "token-ci")
	out = cliOK(t, addr, tok, "", "token", "renew", "-increment=30m")
	cliContains(t, "token renew", out, "token_duration", "30m")

	out = cliOK(t, addr, tok, "", "token", "revoke", "-self")
	if out != "Success! Revoked token (if it existed)\n" {
		t.Fatalf("token revoke:\n%q", out)
	}
	cliContains(t, "lookup of a revoked token", cliFail(t, addr, tok, "", 2, "token", "lookup"), "Error looking up token", "Code: 403")

	// Revoke by accessor.
	var other struct {
		Auth struct {
			ClientToken string `json:"client_token"`
			Accessor    string `json:"accessor"`
		} `json:"auth"`
	}
	cliDecode(t, cliOK(t, addr, "root", "", "token", "create", "-format=json"), &other)
	cliOK(t, addr, "root", "", "token", "revoke", "-accessor", other.Auth.Accessor)
	cliFail(t, addr, other.Auth.ClientToken, "", 2, "token", "lookup")

	// A token against a token role: the role's policies and path.
	cliOK(t, addr, "root", "", "write", "auth/token/roles/ci", "allowed_policies=dev", "path_suffix=build")
	out = cliOK(t, addr, "root", "", "token", "create", "-role=ci", "-field=token")
	cliContains(t, "token create -role", cliOK(t, addr, "root", "", "token", "lookup", strings.TrimSpace(out)),
		"auth/token/create/ci/build", "[default dev]")
	cliContains(t, "token create -role with a policy outside it",
		cliFail(t, addr, "root", "", 2, "token", "create", "-role=ci", "-policy=ops"), "Code: 400", "allowed policies")

	out = cliOK(t, addr, "root", "", "policy", "delete", "ops")
	if out != "Success! Deleted policy: ops\n" {
		t.Fatalf("policy delete:\n%q", out)
	}
	cliContains(t, "read of a deleted policy", cliFail(t, addr, "root", "", 2, "policy", "read", "ops"), "ops")
}

func TestCLILoginAndTokenFile(t *testing.T) {
	addr := cliDevServer(t)
	tokenFile := filepath.Join(os.Getenv("HOME"), ".vault-token")

	cliOK(t, addr, "root", devPolicy, "policy", "write", "dev", "-")
	out := cliOK(t, addr, "root", "", "auth", "enable", "userpass")
	if out != "Success! Enabled userpass auth method at: userpass/\n" {
		t.Fatalf("auth enable:\n%q", out)
	}
	cliOK(t, addr, "root", "", "auth", "enable", "-path=people", "-description=humans", "userpass")
	out = cliOK(t, addr, "root", "", "auth", "list")
	cliContains(t, "auth list", out, "token/", "userpass/", "people/", "humans")
	cliOK(t, addr, "root", "", "write", "auth/userpass/users/bob", "password=pw", "token_policies=dev")

	// The password comes from stdin when not given; no VAULT_TOKEN.
	code, out, errOut := runCLI(t, addr, "", "pw\n", "login", "-method=userpass", "username=bob")
	if code != 0 {
		t.Fatalf("login: exit %d\n%s\n%s", code, out, errOut)
	}
	cliContains(t, "login output", out, "Success! You are now authenticated.", "token_policies", "dev")
	stored, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatalf("login stored no token: %v", err)
	}
	if cliTableValue(t, out, "token") != string(stored) {
		t.Fatalf("stored token %q is not the printed one:\n%s", stored, out)
	}
	fi, err := os.Stat(tokenFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v (%v), want 0600", fi.Mode(), err)
	}
	// Every command now uses the stored token...
	out = cliOK(t, addr, "", "", "token", "lookup")
	cliContains(t, "lookup with the stored token", out, "[default dev]")
	cliOK(t, addr, "", "", "kv", "put", "secret/dev/x", "a=b")
	// ...unless VAULT_TOKEN is set.
	out = cliOK(t, addr, "root", "", "token", "lookup")
	cliContains(t, "lookup with VAULT_TOKEN", out, "[root]")

	// A wrong password: exit 2, the file keeps the old token.
	cliFail(t, addr, "", "", 2, "login", "-method=userpass", "username=bob", "password=wrong")
	if b, _ := os.ReadFile(tokenFile); string(b) != string(stored) {
		t.Fatal("failed login replaced the stored token")
	}

	// Token login checks the token and stores it; -no-store does not.
	out = cliOK(t, addr, "", "", "login", "root")
	cliContains(t, "token login", out, "Success! You are now authenticated.")
	if b, _ := os.ReadFile(tokenFile); string(b) != "root" {
		t.Fatalf("after login root the file holds %q", b)
	}
	if got := cliOK(t, addr, "", "", "login", "-method=userpass", "-path=userpass", "-no-store", "-field=token", "username=bob", "password=pw"); got == "" || got == "root" {
		t.Fatalf("login -no-store -field=token printed %q", got)
	}
	if b, _ := os.ReadFile(tokenFile); string(b) != "root" {
		t.Fatal("login -no-store replaced the stored token")
	}
	cliContains(t, "login with a bad token", cliFail(t, addr, "", "", 2, "login", "not-a-token"), "Error authenticating")

	out = cliOK(t, addr, "root", "", "auth", "disable", "people")
	if out != "Success! Disabled the auth method (if it existed) at: people/\n" {
		t.Fatalf("auth disable:\n%q", out)
	}
}

func TestCLIAuditDevices(t *testing.T) {
	addr := cliDevServer(t)

	code, out, _ := runCLI(t, addr, "root", "", "audit", "list")
	if code != 2 || !strings.Contains(out, "No audit devices are enabled.") {
		t.Fatalf("audit list with none: exit %d, %q", code, out)
	}
	logPath := filepath.Join(t.TempDir(), "audit.log")
	out = cliOK(t, addr, "root", "", "audit", "enable", "-description=trail", "file", "file_path="+logPath)
	if out != "Success! Enabled the file audit device at: file/\n" {
		t.Fatalf("audit enable:\n%q", out)
	}
	out = cliOK(t, addr, "root", "", "audit", "list")
	cliContains(t, "audit list", out, "Path", "Type", "Description", "file/", "trail")
	out = cliOK(t, addr, "root", "", "audit", "list", "-detailed")
	cliContains(t, "audit list -detailed", out, "Replication", "replicated", "file_path="+logPath)

	cliOK(t, addr, "root", "", "kv", "put", "secret/audited", "a=b")
	if b, err := os.ReadFile(logPath); err != nil || len(b) == 0 {
		t.Fatalf("audit log after a request: %d bytes, %v", len(b), err)
	}
	out = cliOK(t, addr, "root", "", "audit", "disable", "file")
	if out != "Success! Disabled audit device (if it was enabled) at: file/\n" {
		t.Fatalf("audit disable:\n%q", out)
	}
}

func TestCLIResponseWrapping(t *testing.T) {
	addr := cliDevServer(t)
	cliOK(t, addr, "root", "", "kv", "put", "secret/app", "password=s3cr3t")

	out := cliOK(t, addr, "root", "", "kv", "get", "-wrap-ttl=5m", "secret/app")
	cliContains(t, "wrapped kv get", out, "wrapping_token:", "wrapping_accessor:", "wrapping_token_creation_path:")
	if strings.Contains(out, "s3cr3t") {
		t.Fatalf("the wrapped response shows the secret:\n%s", out)
	}
	if ttl := cliTableValue(t, out, "wrapping_token_ttl:"); ttl != "5m" {
		t.Fatalf("wrapping_token_ttl %q", ttl)
	}
	wrapToken := cliTableValue(t, out, "wrapping_token:")

	var unwrapped struct {
		Data struct {
			Data map[string]string `json:"data"`
		} `json:"data"`
	}
	cliDecode(t, cliOK(t, addr, "root", "", "write", "-format=json", "sys/wrapping/unwrap", "token="+wrapToken), &unwrapped)
	if unwrapped.Data.Data["password"] != "s3cr3t" {
		t.Fatalf("unwrapped %+v", unwrapped)
	}
	// Single use.
	cliFail(t, addr, "root", "", 2, "write", "sys/wrapping/unwrap", "token="+wrapToken)

	// -field picks the wrap token of a wrapped token create.
	tok := cliOK(t, addr, "root", "", "token", "create", "-wrap-ttl=60", "-field=wrapping_token")
	if tok == "" || strings.Contains(tok, "\n") {
		t.Fatalf("token create -wrap-ttl -field=wrapping_token printed %q", tok)
	}
}
