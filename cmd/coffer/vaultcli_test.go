package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseArgsData(t *testing.T) {
	dir := t.TempDir()
	valueFile := filepath.Join(dir, "value.txt")
	if err := os.WriteFile(valueFile, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	jsonFile := filepath.Join(dir, "data.json")
	if err := os.WriteFile(jsonFile, []byte(`{"a":"1","n":7}`), 0o600); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name  string
		stdin string
		args  []string
		want  map[string]any
	}{
		{"plain", "", []string{"a=b", "c=d=e"}, map[string]any{"a": "b", "c": "d=e"}},
		{"empty value", "", []string{"a="}, map[string]any{"a": ""}},
		{"repeated key makes a list", "", []string{"k=1", "k=2", "k=3"}, map[string]any{"k": []any{"1", "2", "3"}}},
		{"value from file", "", []string{"cert=@" + valueFile}, map[string]any{"cert": "from-file\n"}},
		{"escaped at", "", []string{`handle=\@me`}, map[string]any{"handle": "@me"}},
		{"value from stdin", "s3cr3t\n", []string{"password=-", "user=bob"}, map[string]any{"password": "s3cr3t\n", "user": "bob"}},
		{"JSON object from stdin", `{"x":"y","n":1}`, []string{"-", "z=w"}, map[string]any{"x": "y", "n": json.Number("1"), "z": "w"}},
		{"JSON object from file", "", []string{"@" + jsonFile}, map[string]any{"a": "1", "n": json.Number("7")}},
		{"empty arg ignored", "", []string{"", "a=b"}, map[string]any{"a": "b"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseArgsData(strings.NewReader(tc.stdin), tc.args)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %#v, want %#v", got, tc.want)
			}
		})
	}

	for _, bad := range [][]string{
		{"novalue"},
		{"a=-", "b=-"}, // stdin twice
		{"-", "a=-"},   // stdin twice
		{"a=@" + filepath.Join(dir, "missing")},
	} {
		if _, err := parseArgsData(strings.NewReader(`{"x":"y"}`), bad); err == nil {
			t.Errorf("parseArgsData(%q): no error", bad)
		}
	}
}

func TestParseArgsStringsAndLists(t *testing.T) {
	s, err := parseArgsStrings(nil, []string{"file_path=/tmp/a", "k=1", "k=2"})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"file_path": "/tmp/a", "k": "1,2"}; !reflect.DeepEqual(s, want) {
		t.Fatalf("strings: got %v, want %v", s, want)
	}
	l, err := parseArgsLists(nil, []string{"version=2", "k=1", "k=2"})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string][]string{"version": {"2"}, "k": {"1", "2"}}; !reflect.DeepEqual(l, want) {
		t.Fatalf("lists: got %v, want %v", l, want)
	}
	if l, _ := parseArgsLists(nil, nil); l != nil {
		t.Fatalf("no args should give nil params, got %v", l)
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"30": 30 * time.Second, "90s": 90 * time.Second, "5m": 5 * time.Minute,
		"1h30m": 90 * time.Minute, "2d": 48 * time.Hour, "-1": -time.Second, "": 0,
	} {
		got, err := parseDuration(in)
		if err != nil || got != want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := parseDuration("soon"); err == nil {
		t.Error("parseDuration(soon): no error")
	}
}

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", time.Hour: "1h", 768 * time.Hour: "768h", 90 * time.Minute: "1h30m",
		time.Hour + 30*time.Second: "1h30s", 5 * time.Minute: "5m", 45 * time.Second: "45s",
	} {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%v) = %q, want %q", d, got, want)
		}
	}
	if got := humanSeconds(json.Number("3600")); got != "1h" {
		t.Errorf("humanSeconds(3600) = %v", got)
	}
	if got := humanSeconds("x"); got != "x" {
		t.Errorf("humanSeconds(x) = %v", got)
	}
}

func TestKVAPIPath(t *testing.T) {
	for _, tc := range []struct{ p, mount, prefix, want string }{
		{"secret/app", "secret/", "data", "secret/data/app"},
		{"secret/a/b/c", "secret/", "metadata", "secret/metadata/a/b/c"},
		{"secret", "secret/", "metadata", "secret/metadata"},
		{"secret/", "secret/", "metadata", "secret/metadata"},
		{"team/kv/x", "team/kv/", "destroy", "team/kv/destroy/x"},
	} {
		if got := kvAPIPath(tc.p, tc.mount, tc.prefix); got != tc.want {
			t.Errorf("kvAPIPath(%q, %q, %q) = %q, want %q", tc.p, tc.mount, tc.prefix, got, tc.want)
		}
	}
}

func TestEqualsHeaderAndColumns(t *testing.T) {
	if got := equalsHeader("Secret Path", len("secret/data/creds")); got != "== Secret Path ==" {
		t.Errorf("secret path header %q", got)
	}
	meta := map[string]any{"created_time": 1, "custom_metadata": nil, "deletion_time": "", "destroyed": false, "version": 1}
	if got := mapHeader("Metadata", meta); got != "======= Metadata =======" {
		t.Errorf("metadata header %q", got)
	}
	if got := mapHeader("Data", map[string]any{"password": "x"}); got != "====== Data ======" {
		t.Errorf("data header %q", got)
	}
	got := table([]string{"Key", "Value"}, [][]string{{"a", "1"}, {"longer_key", ""}})
	want := "Key           Value\n---           -----\na             1\nlonger_key    n/a\n"
	if got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
}

func TestSliceAndMapFlags(t *testing.T) {
	s := &sliceFlag{split: true}
	for _, v := range []string{"1,2", "3", " 4 , "} {
		if err := s.Set(v); err != nil {
			t.Fatal(err)
		}
	}
	if want := []string{"1", "2", "3", "4"}; !reflect.DeepEqual(s.values, want) {
		t.Fatalf("versions %v, want %v", s.values, want)
	}
	m := mapFlag{}
	if err := m.Set("owner=team=a"); err != nil {
		t.Fatal(err)
	}
	if m["owner"] != "team=a" {
		t.Fatalf("map flag %v", m)
	}
	if err := m.Set("novalue"); err == nil {
		t.Fatal("map flag accepted novalue")
	}
}

// runCmd runs the CLI in-process.
func runCmd(stdin string, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	c := &cli{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb}
	code := c.run(args)
	return code, out.String(), errb.String()
}

// TestUsageErrors: flags come before positional arguments, as with the
// vault CLI; argument mistakes exit 1 without any request.
func TestUsageErrors(t *testing.T) {
	t.Setenv("VAULT_ADDR", "http://127.0.0.1:1") // nothing listens: a request would fail with 2
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"kv", "get", "secret/app", "-version=2"}, "Too many arguments"},
		{[]string{"kv", "get"}, "Not enough arguments"},
		{[]string{"kv", "put", "secret/app"}, "Must supply data"},
		{[]string{"write", "secret/app"}, "Must supply data or use -force"},
		{[]string{"write", "secret/app", "novalue"}, "Failed to parse K=V data"},
		{[]string{"kv", "destroy", "secret/app"}, "No versions provided"},
		{[]string{"kv", "get", "-nosuchflag", "secret/app"}, "flag provided but not defined"},
		{[]string{"read", "-format=xml", "secret/app"}, "Invalid output format"},
		{[]string{"policy", "write", "onlyname"}, "Not enough arguments"},
		{[]string{"token", "revoke"}, "Not enough arguments"},
		{[]string{"token", "revoke", "-self", "-accessor"}, "Cannot use -self with -accessor"},
		{[]string{"token", "revoke", "-mode=bogus", "x"}, "Invalid mode"},
		{[]string{"login", "-method=ldap", "u=x"}, "Unknown auth method"},
		{[]string{"secrets", "enable"}, "Not enough arguments"},
		{[]string{"audit", "enable"}, "audit type missing"},
		{[]string{"kv", "frobnicate"}, "Unknown kv subcommand"},
		{[]string{"kv", "metadata", "get"}, "Not enough arguments"},
	} {
		code, _, stderr := runCmd("", tc.args...)
		if code != exitLocal || !strings.Contains(stderr, tc.msg) {
			t.Errorf("%q: exit %d, stderr %q; want exit 1 mentioning %q", tc.args, code, stderr, tc.msg)
		}
	}
}

// fakeVault is an HTTP server standing in for the API: it records the
// requests and answers from a table keyed by "METHOD /v1/path".
type fakeVault struct {
	t    *testing.T
	srv  *httptest.Server
	mu   sync.Mutex
	reqs []fakeReq
	resp map[string]fakeResp
}

type fakeReq struct {
	method, path, token, wrapTTL, query string
	body                                map[string]any
}

type fakeResp struct {
	code int
	body string
}

func newFakeVault(t *testing.T) *fakeVault {
	f := &fakeVault{t: t, resp: map[string]fakeResp{}}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		req := fakeReq{method: r.Method, path: r.URL.Path, token: r.Header.Get("X-Vault-Token"),
			wrapTTL: r.Header.Get("X-Vault-Wrap-TTL"), query: r.URL.RawQuery}
		if len(b) > 0 {
			if err := json.Unmarshal(b, &req.body); err != nil {
				t.Errorf("%s %s: body is not a JSON object: %q", r.Method, r.URL.Path, b)
			}
		}
		f.mu.Lock()
		f.reqs = append(f.reqs, req)
		resp, ok := f.resp[r.Method+" "+r.URL.Path]
		f.mu.Unlock()
		if !ok {
			resp = fakeResp{404, `{"errors":[]}`}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(resp.code)
		_, _ = io.WriteString(w, resp.body)
	}))
	t.Cleanup(f.srv.Close)
	t.Setenv("VAULT_ADDR", f.srv.URL)
	t.Setenv("VAULT_MAX_RETRIES", "0")
	t.Setenv("VAULT_TOKEN", "root")
	t.Setenv("VAULT_WRAP_TTL", "")
	t.Setenv("VAULT_FORMAT", "")
	t.Setenv("HOME", t.TempDir())
	return f
}

func (f *fakeVault) on(method, path string, code int, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.resp[method+" "+path] = fakeResp{code, body}
}

func (f *fakeVault) requests() []fakeReq {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeReq(nil), f.reqs...)
}

const kvV2Mount = `{"data":{"path":"secret/","type":"kv","options":{"version":"2"}}}`

func TestKVPutGetV2Requests(t *testing.T) {
	fv := newFakeVault(t)
	fv.on("GET", "/v1/sys/internal/ui/mounts/secret/app", 200, kvV2Mount)
	fv.on("PUT", "/v1/secret/data/app", 200, `{"data":{"created_time":"2026-01-01T00:00:00Z","custom_metadata":null,"deletion_time":"","destroyed":false,"version":3}}`)
	fv.on("GET", "/v1/secret/data/app", 200, `{"data":{"data":{"password":"s3cr3t","user":"bob"},"metadata":{"created_time":"2026-01-01T00:00:00Z","custom_metadata":null,"deletion_time":"","destroyed":false,"version":3}}}`)

	code, out, stderr := runCmd("", "kv", "put", "-cas=2", "secret/app", "password=s3cr3t", "user=bob")
	if code != 0 {
		t.Fatalf("kv put: exit %d: %s", code, stderr)
	}
	wantOut := "= Secret Path =\nsecret/data/app\n\n" +
		"======= Metadata =======\n" +
		"Key                Value\n" +
		"---                -----\n" +
		"created_time       2026-01-01T00:00:00Z\n" +
		"custom_metadata    <nil>\n" +
		"deletion_time      n/a\n" +
		"destroyed          false\n" +
		"version            3\n"
	if out != wantOut {
		t.Fatalf("kv put output:\n%s\nwant:\n%s", out, wantOut)
	}
	reqs := fv.requests()
	if len(reqs) != 2 || reqs[0].path != "/v1/sys/internal/ui/mounts/secret/app" || reqs[1].method != "PUT" || reqs[1].path != "/v1/secret/data/app" {
		t.Fatalf("requests %+v", reqs)
	}
	wantBody := map[string]any{"data": map[string]any{"password": "s3cr3t", "user": "bob"}, "options": map[string]any{"cas": float64(2)}}
	if !reflect.DeepEqual(reqs[1].body, wantBody) {
		t.Fatalf("kv put body %v, want %v", reqs[1].body, wantBody)
	}
	if reqs[1].token != "root" {
		t.Fatalf("token header %q", reqs[1].token)
	}

	code, out, stderr = runCmd("", "kv", "get", "-version=3", "secret/app")
	if code != 0 {
		t.Fatalf("kv get: exit %d: %s", code, stderr)
	}
	for _, want := range []string{"= Secret Path =\nsecret/data/app\n", "======= Metadata =======", "====== Data ======\nKey         Value\n---         -----\npassword    s3cr3t\nuser        bob\n"} {
		if !strings.Contains(out, want) {
			t.Fatalf("kv get output lacks %q:\n%s", want, out)
		}
	}
	if q := fv.requests()[3].query; q != "version=3" {
		t.Fatalf("kv get query %q, want version=3", q)
	}

	code, out, _ = runCmd("", "kv", "get", "-field=password", "secret/app")
	if code != 0 || out != "s3cr3t" {
		t.Fatalf("kv get -field: exit %d, %q (want the raw value, no newline when piped)", code, out)
	}

	code, out, _ = runCmd("", "kv", "get", "-format=json", "secret/app")
	var js struct {
		Data struct {
			Data map[string]string `json:"data"`
		} `json:"data"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &js) != nil || js.Data.Data["user"] != "bob" {
		t.Fatalf("kv get -format=json: exit %d, %s", code, out)
	}
}

func TestKVV1AndMountFlag(t *testing.T) {
	fv := newFakeVault(t)
	fv.on("GET", "/v1/sys/internal/ui/mounts/kv1", 200, `{"data":{"path":"kv1/","type":"kv","options":null}}`)
	fv.on("PUT", "/v1/kv1/app", 204, ``)
	fv.on("GET", "/v1/sys/internal/ui/mounts/secret", 200, kvV2Mount)
	fv.on("GET", "/v1/secret/metadata/team", 200, `{"data":{"keys":["b","a/"]}}`)
	fv.on("PUT", "/v1/secret/destroy/team/x", 204, ``)

	code, out, stderr := runCmd("", "kv", "put", "-mount=kv1", "app", "k=v")
	if code != 0 || out != "Success! Data written to: kv1/app\n" {
		t.Fatalf("kv put v1: exit %d, %q, %q", code, out, stderr)
	}
	if b := fv.requests()[1].body; !reflect.DeepEqual(b, map[string]any{"k": "v"}) {
		t.Fatalf("v1 body %v", b)
	}
	code, out, _ = runCmd("", "kv", "list", "-mount=secret", "team")
	if code != 0 || out != "Keys\n----\na/\nb\n" {
		t.Fatalf("kv list: exit %d, %q", code, out)
	}
	code, out, _ = runCmd("", "kv", "list", "-mount=secret", "-format=json", "team")
	if code != 0 || strings.Join(strings.Fields(out), "") != `["b","a/"]` {
		t.Fatalf("kv list json: exit %d, %q", code, out)
	}
	code, _, stderr = runCmd("", "kv", "destroy", "-mount=secret", "-versions=1,2", "-versions=5", "team/x")
	if code != 0 {
		t.Fatalf("kv destroy: %d %s", code, stderr)
	}
	reqs := fv.requests()
	last := reqs[len(reqs)-1]
	if last.path != "/v1/secret/destroy/team/x" || !reflect.DeepEqual(last.body, map[string]any{"versions": []any{"1", "2", "5"}}) {
		t.Fatalf("destroy request %+v", last)
	}
}

func TestAPIErrorsExit2(t *testing.T) {
	fv := newFakeVault(t)
	fv.on("PUT", "/v1/secret/data/x", 403, `{"errors":["permission denied"]}`)
	code, _, stderr := runCmd("", "write", "secret/data/x", "a=b")
	if code != exitRemote {
		t.Fatalf("exit %d, want 2", code)
	}
	for _, want := range []string{"Error writing data to secret/data/x: Error making API request.", "Code: 403. Errors:", "* permission denied"} {
		if !strings.Contains(stderr, want) {
			t.Fatalf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	code, _, stderr = runCmd("", "read", "secret/data/none")
	if code != exitRemote || !strings.Contains(stderr, "No value found at secret/data/none") {
		t.Fatalf("read of a missing path: exit %d, %q", code, stderr)
	}
}

func TestWrapTTLAndWrapInfo(t *testing.T) {
	fv := newFakeVault(t)
	fv.on("GET", "/v1/sys/internal/ui/mounts/secret/app", 200, kvV2Mount)
	fv.on("GET", "/v1/secret/data/app", 200, `{"wrap_info":{"token":"hvs.wrap","accessor":"acc","ttl":300,"creation_time":"2026-01-01T00:00:00Z","creation_path":"secret/data/app"}}`)
	code, out, stderr := runCmd("", "kv", "get", "-wrap-ttl=5m", "secret/app")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	reqs := fv.requests()
	if reqs[0].wrapTTL != "" || reqs[1].wrapTTL != "5m0s" {
		t.Fatalf("wrap headers: preflight %q, read %q", reqs[0].wrapTTL, reqs[1].wrapTTL)
	}
	for _, want := range []string{"wrapping_token:                  hvs.wrap", "wrapping_token_ttl:              5m", "wrapping_token_creation_path:    secret/data/app"} {
		if !strings.Contains(out, want) {
			t.Fatalf("output lacks %q:\n%s", want, out)
		}
	}
	fv.on("PUT", "/v1/secret/data/x", 200, `{"wrap_info":{"token":"hvs.w2","accessor":"acc","ttl":60,"creation_time":"2026-01-01T00:00:00Z","creation_path":"secret/data/x"}}`)
	code, out, _ = runCmd("", "write", "-wrap-ttl=60", "-field=wrapping_token", "secret/data/x", "a=b")
	if code != 0 || out != "hvs.w2" {
		t.Fatalf("write -field=wrapping_token: exit %d, %q", code, out)
	}
	if got := fv.requests()[2].wrapTTL; got != "1m0s" {
		t.Fatalf("wrap header %q, want 1m0s", got)
	}
}

func TestLoginStoresTokenFile(t *testing.T) {
	fv := newFakeVault(t)
	t.Setenv("VAULT_TOKEN", "")
	fv.on("PUT", "/v1/auth/userpass/login/bob", 200, `{"auth":{"client_token":"hvs.bob","accessor":"a1","policies":["default","dev"],"token_policies":["default","dev"],"lease_duration":2764800,"renewable":true}}`)
	fv.on("GET", "/v1/auth/token/lookup-self", 200, `{"data":{"id":"hvs.bob","accessor":"a1","policies":["default","dev"],"ttl":3600,"renewable":true}}`)

	code, out, stderr := runCmd("pw\n", "login", "-method=userpass", "username=bob")
	if code != 0 {
		t.Fatalf("login: exit %d: %s", code, stderr)
	}
	req := fv.requests()[0]
	if req.token != "" || !reflect.DeepEqual(req.body, map[string]any{"password": "pw"}) {
		t.Fatalf("login request %+v (want no token, the password from stdin)", req)
	}
	if !strings.HasPrefix(out, "Success! You are now authenticated.") || !strings.Contains(out, "token_duration       768h") ||
		!strings.Contains(out, `policies             ["default" "dev"]`) {
		t.Fatalf("login output:\n%s", out)
	}
	b, err := os.ReadFile(filepath.Join(os.Getenv("HOME"), ".vault-token"))
	if err != nil || string(b) != "hvs.bob" {
		t.Fatalf("token file %q, %v", b, err)
	}
	fi, err := os.Stat(filepath.Join(os.Getenv("HOME"), ".vault-token"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v, %v", fi.Mode(), err)
	}

	// Without VAULT_TOKEN the stored token is used...
	if code, _, stderr := runCmd("", "token", "lookup"); code != 0 {
		t.Fatalf("token lookup: %d %s", code, stderr)
	}
	reqs := fv.requests()
	if got := reqs[len(reqs)-1].token; got != "hvs.bob" {
		t.Fatalf("token lookup sent token %q, want the stored one", got)
	}
	// ...and VAULT_TOKEN wins over it.
	t.Setenv("VAULT_TOKEN", "root")
	runCmd("", "token", "lookup")
	reqs = fv.requests()
	if got := reqs[len(reqs)-1].token; got != "root" {
		t.Fatalf("with VAULT_TOKEN the request carried %q", got)
	}

	// Token login: the argument is checked with lookup-self, -no-store
	// leaves the file alone.
	code, out, _ = runCmd("", "login", "-no-store", "-field=token", "hvs.bob")
	if code != 0 || out != "hvs.bob" {
		t.Fatalf("token login: %d %q", code, out)
	}
}

func TestTokenCreateRequest(t *testing.T) {
	fv := newFakeVault(t)
	fv.on("POST", "/v1/auth/token/create", 200, `{"auth":{"client_token":"hvs.new","accessor":"acc","policies":["default","dev"],"token_policies":["default","dev"],"lease_duration":3600,"renewable":true}}`)
	code, out, stderr := runCmd("", "token", "create", "-orphan", "-policy=dev", "-policy=ops", "-ttl=1h", "-use-limit=3", "-display-name=ci")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	body := fv.requests()[0].body
	for k, want := range map[string]any{"no_parent": true, "policies": []any{"dev", "ops"}, "ttl": "1h0m0s", "num_uses": float64(3), "display_name": "ci", "renewable": true} {
		if !reflect.DeepEqual(body[k], want) {
			t.Errorf("body[%s] = %#v, want %#v", k, body[k], want)
		}
	}
	for _, want := range []string{"token                hvs.new", "token_accessor       acc", "token_duration       1h", "token_renewable      true"} {
		if !strings.Contains(out, want) {
			t.Fatalf("output lacks %q:\n%s", want, out)
		}
	}
}
