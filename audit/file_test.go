package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cofferhq/coffer/logical"
)

var testSalt = []byte("0123456789abcdef0123456789abcdef")

const (
	secretValue  = "s3cr3t-plaintext-value"
	callerToken  = "hvs.caller-token-id"
	callerAcc    = "caller-accessor-123"
	issuedToken  = "hvs.issued-by-login"
	issuedAcc    = "issued-accessor-456"
	wrapToken    = "hvs.wrapping-token"
	wrapAccessor = "wrapping-accessor-789"
)

func newFileDevice(t *testing.T, opts map[string]string) (Device, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.log")
	o := map[string]string{OptionFilePath: path}
	for k, v := range opts {
		o[k] = v
	}
	d, err := NewFile("file/", o, testSalt)
	if err != nil {
		t.Fatalf("NewFile: %v", err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d, path
}

// kvWrite is a typical KV v2 write as core hands it over.
func kvWrite() *LogInput {
	return &LogInput{
		Request: &logical.Request{
			ID:         "req-1",
			Operation:  logical.UpdateOperation,
			Path:       "data/app",
			MountPoint: "secret/",
			MountType:  "kv",
			Data: map[string]any{
				"data":    map[string]any{"password": secretValue, "port": float64(5432), "tls": true},
				"options": map[string]any{"cas": float64(0)},
			},
			ClientToken: callerToken,
			RemoteAddr:  "127.0.0.1",
		},
		Caller: &Caller{
			ClientToken:    callerToken,
			Accessor:       callerAcc,
			DisplayName:    "token-app",
			Policies:       []string{"app", "default"},
			TokenPolicies:  []string{"app", "default"},
			Metadata:       map[string]string{"team": "payments"},
			TokenType:      "service",
			TokenTTL:       time.Hour,
			TokenIssueTime: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		},
		WrapTTL: 30 * time.Second,
		Response: &logical.Response{
			Data:     map[string]any{"version": 3, "created_time": "2025-01-02T03:04:05Z", "echo": secretValue},
			Warnings: []string{"a warning"},
		},
	}
}

func readLines(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		t.Fatalf("file does not end with a newline: %q", b)
	}
	var out [][]byte
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		out = append(out, bytes.Clone(sc.Bytes()))
	}
	return out
}

func decode(t *testing.T, line []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatalf("line is not JSON: %v: %s", err, line)
	}
	return m
}

// at walks a decoded line: at(m, "request", "data", "data", "password").
func at(t *testing.T, m map[string]any, keys ...string) any {
	t.Helper()
	var v any = m
	for _, k := range keys {
		mm, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%v: %q is not inside an object", keys, k)
		}
		if v, ok = mm[k]; !ok {
			t.Fatalf("%v: no %q in %v", keys, k, mm)
		}
	}
	return v
}

func equal(t *testing.T, m map[string]any, want any, keys ...string) {
	t.Helper()
	got := at(t, m, keys...)
	gj, _ := json.Marshal(got)
	wj, _ := json.Marshal(want)
	if !bytes.Equal(gj, wj) {
		t.Errorf("%s = %s, want %s", strings.Join(keys, "."), gj, wj)
	}
}

func TestFileRequestAndResponseLines(t *testing.T) {
	d, path := newFileDevice(t, nil)
	ctx := context.Background()
	in := kvWrite()
	in.Time = time.Date(2025, 6, 7, 8, 9, 10, 11, time.UTC)
	before := snapshotJSON(t, in.Request.Data) + snapshotJSON(t, in.Response.Data)

	if err := d.LogRequest(ctx, in); err != nil {
		t.Fatal(err)
	}
	if got := readLines(t, path); len(got) != 1 {
		t.Fatalf("after LogRequest the file holds %d lines, want 1", len(got))
	}
	if err := d.LogResponse(ctx, in); err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, path)
	if len(lines) != 2 {
		t.Fatalf("file holds %d lines, want 2", len(lines))
	}
	h := func(s string) string { return HashString(testSalt, s) }

	req := decode(t, lines[0])
	equal(t, req, "2025-06-07T08:09:10.000000011Z", "time")
	equal(t, req, "request", "type")
	equal(t, req, h(callerToken), "auth", "client_token")
	equal(t, req, h(callerAcc), "auth", "accessor")
	equal(t, req, "token-app", "auth", "display_name")
	equal(t, req, []string{"app", "default"}, "auth", "policies")
	equal(t, req, []string{"app", "default"}, "auth", "token_policies")
	equal(t, req, map[string]string{"team": "payments"}, "auth", "metadata")
	equal(t, req, 3600, "auth", "token_ttl")
	equal(t, req, "2025-01-02T03:04:05Z", "auth", "token_issue_time")
	equal(t, req, "service", "auth", "token_type")
	equal(t, req, "req-1", "request", "id")
	equal(t, req, "update", "request", "operation")
	equal(t, req, "kv", "request", "mount_type")
	equal(t, req, "secret/", "request", "mount_point")
	equal(t, req, "secret/data/app", "request", "path")
	equal(t, req, h(callerToken), "request", "client_token")
	equal(t, req, h(callerAcc), "request", "client_token_accessor")
	equal(t, req, h(secretValue), "request", "data", "data", "password")
	equal(t, req, 5432, "request", "data", "data", "port")
	equal(t, req, true, "request", "data", "data", "tls")
	equal(t, req, 0, "request", "data", "options", "cas")
	equal(t, req, "127.0.0.1", "request", "remote_address")
	equal(t, req, 30, "request", "wrap_ttl")
	if _, ok := req["response"]; ok {
		t.Error("request line has a response object")
	}
	if _, ok := req["error"]; ok {
		t.Error("request line without error has an error field")
	}

	resp := decode(t, lines[1])
	equal(t, resp, "response", "type")
	equal(t, resp, "2025-06-07T08:09:10.000000011Z", "time")
	equal(t, resp, h(callerToken), "auth", "client_token")
	equal(t, resp, "req-1", "request", "id")
	equal(t, resp, h(secretValue), "request", "data", "data", "password")
	equal(t, resp, "kv", "response", "mount_type")
	equal(t, resp, "secret/", "response", "mount_point")
	equal(t, resp, 3, "response", "data", "version")
	equal(t, resp, h("2025-01-02T03:04:05Z"), "response", "data", "created_time")
	equal(t, resp, h(secretValue), "response", "data", "echo")
	equal(t, resp, []string{"a warning"}, "response", "warnings")

	raw, _ := os.ReadFile(path)
	for _, plain := range []string{secretValue, callerToken, callerAcc} {
		if bytes.Contains(raw, []byte(plain)) {
			t.Errorf("the audit file holds %q in clear:\n%s", plain, raw)
		}
	}
	if n := bytes.Count(raw, []byte(h(secretValue))); n != 3 {
		t.Errorf("the secret's HMAC appears %d times, want 3 (request twice, response once)", n)
	}
	if after := snapshotJSON(t, in.Request.Data) + snapshotJSON(t, in.Response.Data); after != before {
		t.Errorf("logging modified the request or response data:\nbefore %s\nafter  %s", before, after)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode = %v (err %v), want 0600", fi.Mode().Perm(), err)
	}
}

func TestFileLogRaw(t *testing.T) {
	d, path := newFileDevice(t, map[string]string{OptionLogRaw: "true"})
	in := kvWrite()
	if err := d.LogRequest(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	req := decode(t, readLines(t, path)[0])
	equal(t, req, secretValue, "request", "data", "data", "password")
	equal(t, req, callerToken, "auth", "client_token")
	equal(t, req, callerAcc, "request", "client_token_accessor")
	if raw, _ := os.ReadFile(path); bytes.Contains(raw, []byte(HashPrefix)) {
		t.Errorf("log_raw file holds hashed values: %s", raw)
	}
}

func TestFileHMACAccessorFalse(t *testing.T) {
	d, path := newFileDevice(t, map[string]string{OptionHMACAccessor: "false"})
	in := kvWrite()
	in.WrapInfo = &WrapInfo{Token: wrapToken, Accessor: wrapAccessor}
	if err := d.LogResponse(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	m := decode(t, readLines(t, path)[0])
	equal(t, m, callerAcc, "auth", "accessor")
	equal(t, m, callerAcc, "request", "client_token_accessor")
	equal(t, m, wrapAccessor, "response", "wrap_info", "accessor")
	equal(t, m, HashString(testSalt, callerToken), "auth", "client_token")
	equal(t, m, HashString(testSalt, wrapToken), "response", "wrap_info", "token")
	equal(t, m, HashString(testSalt, secretValue), "request", "data", "data", "password")
}

func TestFileLoginAndWrappedResponse(t *testing.T) {
	d, path := newFileDevice(t, nil)
	created := time.Date(2025, 3, 4, 5, 6, 7, 8, time.UTC)
	in := &LogInput{
		Request: &logical.Request{ID: "login-1", Operation: logical.UpdateOperation, MountPoint: "auth/userpass/",
			MountType: "userpass", Path: "login/alice", Data: map[string]any{"password": secretValue}},
		Response: &logical.Response{Auth: &logical.Auth{
			ClientToken: issuedToken, Accessor: issuedAcc, Policies: []string{"default"},
			TokenPolicies: []string{"default"}, Metadata: map[string]string{"username": "alice"},
			LeaseDuration: 1800, TokenType: "service", DisplayName: "userpass-alice",
		}},
		WrapInfo: &WrapInfo{Token: wrapToken, Accessor: wrapAccessor, TTL: 5 * time.Minute,
			CreationTime: created, CreationPath: "auth/userpass/login/alice", WrappedAccessor: issuedAcc},
	}
	if err := d.LogResponse(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	m := decode(t, readLines(t, path)[0])
	h := func(s string) string { return HashString(testSalt, s) }
	if _, ok := m["auth"]; ok {
		t.Error("an unauthenticated request has a caller auth object")
	}
	equal(t, m, "auth/userpass/login/alice", "request", "path")
	equal(t, m, h(issuedToken), "response", "auth", "client_token")
	equal(t, m, h(issuedAcc), "response", "auth", "accessor")
	equal(t, m, 1800, "response", "auth", "token_ttl")
	equal(t, m, "userpass-alice", "response", "auth", "display_name")
	equal(t, m, map[string]string{"username": "alice"}, "response", "auth", "metadata")
	equal(t, m, h(wrapToken), "response", "wrap_info", "token")
	equal(t, m, h(wrapAccessor), "response", "wrap_info", "accessor")
	equal(t, m, h(issuedAcc), "response", "wrap_info", "wrapped_accessor")
	equal(t, m, 300, "response", "wrap_info", "ttl")
	equal(t, m, "2025-03-04T05:06:07.000000008Z", "response", "wrap_info", "creation_time")
	equal(t, m, "auth/userpass/login/alice", "response", "wrap_info", "creation_path")
	raw, _ := os.ReadFile(path)
	for _, plain := range []string{secretValue, issuedToken, issuedAcc, wrapToken, wrapAccessor} {
		if bytes.Contains(raw, []byte(plain)) {
			t.Errorf("the audit file holds %q in clear", plain)
		}
	}
}

func TestFileErrorAndPrefix(t *testing.T) {
	d, path := newFileDevice(t, map[string]string{OptionPrefix: "coffer-audit: "})
	in := kvWrite()
	in.Response = nil
	in.Err = fmt.Errorf("%w: 1 error occurred", logical.ErrPermissionDenied)
	if err := d.LogRequest(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	line := readLines(t, path)[0]
	rest, ok := bytes.CutPrefix(line, []byte("coffer-audit: "))
	if !ok {
		t.Fatalf("line does not start with the prefix: %s", line)
	}
	equal(t, decode(t, rest), "permission denied: 1 error occurred", "error")
}

func TestFileAuditedHeaders(t *testing.T) {
	d, path := newFileDevice(t, nil)
	in := kvWrite()
	in.Request.Headers = http.Header{"X-Request-Source": {"ci"}, "X-Api-Key": {"key-in-clear"}, "User-Agent": {"curl"}}
	in.AuditedHeaders = map[string]bool{"x-request-source": false, "x-api-key": true}
	if err := d.LogRequest(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	m := decode(t, readLines(t, path)[0])
	equal(t, m, map[string][]string{
		"x-request-source": {"ci"},
		"x-api-key":        {HashString(testSalt, "key-in-clear")},
	}, "request", "headers")
}

func TestFileElideListResponses(t *testing.T) {
	d, path := newFileDevice(t, map[string]string{OptionElideListResponses: "true"})
	in := &LogInput{
		Request:  &logical.Request{ID: "l", Operation: logical.ListOperation, MountPoint: "secret/", Path: "metadata/"},
		Response: &logical.Response{Data: map[string]any{"keys": []string{"a", "b", "c"}}},
	}
	if err := d.LogResponse(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	equal(t, decode(t, readLines(t, path)[0]), 3, "response", "data", "keys")
	if got := in.Response.Data["keys"].([]string); len(got) != 3 {
		t.Fatal("eliding modified the response")
	}
}

func TestNewFileRejectsBadOptions(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "a.log")
	cases := []struct {
		name string
		opts map[string]string
		want string
	}{
		{"jsonx", map[string]string{OptionFilePath: good, OptionFormat: "jsonx"}, `format "jsonx" (XML) is not supported`},
		{"unknown format", map[string]string{OptionFilePath: good, OptionFormat: "yaml"}, "use format=json"},
		{"unknown option", map[string]string{OptionFilePath: good, "log_row": "true"}, `unknown option "log_row"`},
		{"no file_path", map[string]string{}, "file_path is required"},
		{"executable mode", map[string]string{OptionFilePath: good, OptionMode: "0755"}, "is executable"},
		{"bad mode", map[string]string{OptionFilePath: good, OptionMode: "rw"}, "invalid mode"},
		{"setuid mode", map[string]string{OptionFilePath: good, OptionMode: "4600"}, "invalid mode"},
		{"bad bool", map[string]string{OptionFilePath: good, OptionLogRaw: "maybe"}, "log_raw"},
		{"missing dir", map[string]string{OptionFilePath: filepath.Join(dir, "nope", "a.log")}, "create its directory"},
		{"directory", map[string]string{OptionFilePath: dir}, "choose"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := NewFile("file/", c.opts, testSalt)
			if err == nil {
				_ = d.Close()
				t.Fatalf("NewFile accepted %v", c.opts)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not say %q", err, c.want)
			}
			if !errors.Is(err, logical.ErrInvalidRequest) {
				t.Errorf("error %q is not an invalid request (400)", err)
			}
		})
	}
	if _, err := NewFile("file/", map[string]string{OptionFilePath: good}, nil); err == nil {
		t.Error("NewFile accepted an empty salt")
	}
}

func TestFileMode(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "existing.log")
	if err := os.WriteFile(existing, []byte("old line\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(existing, 0o644); err != nil { // whatever the umask
		t.Fatal(err)
	}
	mode := func() os.FileMode {
		fi, err := os.Stat(existing)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode().Perm()
	}
	d, err := NewFile("file/", map[string]string{OptionFilePath: existing, OptionMode: "0000"}, testSalt)
	if err != nil {
		t.Fatal(err)
	}
	_ = d.Close()
	if m := mode(); m != 0o644 {
		t.Fatalf("mode=0000 changed the file's mode to %v", m)
	}
	d, err = NewFile("file/", map[string]string{OptionFilePath: existing, OptionMode: "0640"}, testSalt)
	if err != nil {
		t.Fatal(err)
	}
	if m := mode(); m != 0o640 {
		t.Fatalf("mode=0640 gave %v", m)
	}
	if err := d.LogRequest(context.Background(), kvWrite()); err != nil {
		t.Fatal(err)
	}
	_ = d.Close()
	lines := readLines(t, existing)
	if len(lines) != 2 || string(lines[0]) != "old line" {
		t.Fatalf("the device did not append to the existing file: %q", lines)
	}
}

// /dev/full fails every write with ENOSPC: a real full disk.
func TestFileFullDisk(t *testing.T) {
	before, err := os.Stat("/dev/full")
	if err != nil {
		t.Skip("no /dev/full on this system")
	}
	d, err := NewFile("full/", map[string]string{OptionFilePath: "/dev/full"}, testSalt)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	err = d.LogRequest(context.Background(), kvWrite())
	if err == nil {
		t.Fatal("logging to /dev/full succeeded")
	}
	if !strings.Contains(err.Error(), "no space left on device") || !strings.Contains(err.Error(), "free space") {
		t.Errorf("error does not explain the full disk: %v", err)
	}
	if after, _ := os.Stat("/dev/full"); after.Mode() != before.Mode() {
		t.Errorf("the device changed /dev/full's mode from %v to %v", before.Mode(), after.Mode())
	}
}

func TestFileReloadAfterRotation(t *testing.T) {
	d, path := newFileDevice(t, nil)
	ctx := context.Background()
	first := kvWrite()
	first.Request.ID = "before-rotation"
	if err := d.LogRequest(ctx, first); err != nil {
		t.Fatal(err)
	}
	rotated := path + ".1"
	if err := os.Rename(path, rotated); err != nil {
		t.Fatal(err)
	}
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	second := kvWrite()
	second.Request.ID = "after-rotation"
	if err := d.LogRequest(ctx, second); err != nil {
		t.Fatal(err)
	}
	old, fresh := readLines(t, rotated), readLines(t, path)
	if len(old) != 1 || len(fresh) != 1 {
		t.Fatalf("rotated file has %d lines, new file %d; want 1 and 1", len(old), len(fresh))
	}
	equal(t, decode(t, old[0]), "before-rotation", "request", "id")
	equal(t, decode(t, fresh[0]), "after-rotation", "request", "id")
}

// A path that became a directory fails Reload and every write, and the device
// recovers by itself once the path is a file again.
func TestFileReloadFailureAndRecovery(t *testing.T) {
	d, path := newFileDevice(t, nil)
	ctx := context.Background()
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := d.Reload(); err == nil {
		t.Fatal("Reload succeeded on a directory")
	}
	if err := d.LogRequest(ctx, kvWrite()); err == nil {
		t.Fatal("LogRequest succeeded without a file")
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := d.LogRequest(ctx, kvWrite()); err != nil {
		t.Fatalf("the device did not reopen its file: %v", err)
	}
	if n := len(readLines(t, path)); n != 1 {
		t.Fatalf("new file has %d lines, want 1", n)
	}
}

func TestFileConcurrentWholeLines(t *testing.T) {
	d, path := newFileDevice(t, nil)
	const writers, perWriter = 8, 100
	big := strings.Repeat("x", 16<<10) // lines far above PIPE_BUF and a page
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				in := kvWrite()
				in.Request.ID = fmt.Sprintf("w%d-%d", w, i)
				in.Request.Data = map[string]any{"blob": big, "n": float64(i)}
				if err := d.LogRequest(context.Background(), in); err != nil {
					errs <- err
					return
				}
				if err := d.LogResponse(context.Background(), in); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	lines := readLines(t, path)
	if len(lines) != 2*writers*perWriter {
		t.Fatalf("%d lines, want %d", len(lines), 2*writers*perWriter)
	}
	seen := map[string]int{}
	for _, l := range lines {
		m := decode(t, l)
		seen[at(t, m, "request", "id").(string)+"/"+at(t, m, "type").(string)]++
	}
	for w := range writers {
		for i := range perWriter {
			for _, typ := range []string{"request", "response"} {
				if k := fmt.Sprintf("w%d-%d/%s", w, i, typ); seen[k] != 1 {
					t.Fatalf("%s logged %d times", k, seen[k])
				}
			}
		}
	}
}

func TestFileClose(t *testing.T) {
	d, path := newFileDevice(t, nil)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := d.LogRequest(context.Background(), kvWrite()); !errors.Is(err, ErrDeviceClosed) {
		t.Fatalf("LogRequest after Close = %v, want ErrDeviceClosed", err)
	}
	if err := d.Reload(); !errors.Is(err, ErrDeviceClosed) {
		t.Fatalf("Reload after Close = %v, want ErrDeviceClosed", err)
	}
	if n := len(readLines(t, path)); n != 0 {
		t.Fatalf("closed device wrote %d lines", n)
	}
}

func TestFileDiscardAndStdout(t *testing.T) {
	d, err := NewFile("discard/", map[string]string{OptionFilePath: "Discard"}, testSalt)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.LogRequest(context.Background(), kvWrite()); err != nil {
		t.Fatal(err)
	}
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	_ = d.Close()
	if err := d.LogRequest(context.Background(), kvWrite()); !errors.Is(err, ErrDeviceClosed) {
		t.Fatalf("discard device after Close = %v, want ErrDeviceClosed", err)
	}

	// stdout: the device takes os.Stdout when it is created.
	out, err := os.Create(filepath.Join(t.TempDir(), "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	saved := os.Stdout
	os.Stdout = out
	d, err = NewFile("stdout/", map[string]string{OptionFilePath: "stdout"}, testSalt)
	os.Stdout = saved
	if err != nil {
		t.Fatal(err)
	}
	if err := d.LogRequest(context.Background(), kvWrite()); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := out.Write(nil); err != nil {
		t.Fatalf("closing the stdout device closed stdout: %v", err)
	}
	lines := readLines(t, out.Name())
	if len(lines) != 1 {
		t.Fatalf("stdout got %d lines, want 1", len(lines))
	}
	equal(t, decode(t, lines[0]), HashString(testSalt, secretValue), "request", "data", "data", "password")
}
