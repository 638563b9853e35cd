package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/core/rootgen"
)

func TestGenerateRootUsageErrors(t *testing.T) {
	t.Setenv("VAULT_ADDR", "http://127.0.0.1:1") // nothing listens: a request would fail with 2
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"-init", "-status"}, "Only one of"},
		{[]string{"-cancel", "-decode=abc", "-otp=x"}, "Only one of"},
		{[]string{"-init", "KEY"}, "A key share goes alone"},
		{[]string{"KEY1", "KEY2"}, "Too many arguments"},
		{[]string{"-otp=abc"}, "-otp goes with -init"},
		{[]string{"-decode=abc"}, "Missing -otp"},
		{[]string{"-decode=!!!!", "-otp=abc"}, "not base64"},
		{[]string{"-decode=KTQwanV3dXt9f317dXcuMjI2NjIyPj4yMjYMDA", "-otp=short"}, "the OTP of the attempt"},
	} {
		code, _, stderr := runCmd("", append([]string{"operator", "generate-root"}, tc.args...)...)
		if code != exitLocal || !strings.Contains(stderr, tc.msg) {
			t.Errorf("%q: exit %d, stderr %q; want exit 1 mentioning %q", tc.args, code, stderr, tc.msg)
		}
	}
}

// -decode needs no server: it undoes the XOR with the OTP.
func TestGenerateRootDecode(t *testing.T) {
	t.Setenv("VAULT_ADDR", "http://127.0.0.1:1")
	const token, otp = "hvs.0123456789abcdefghijklmn", "ABCDEFGHIJKLMNOPQRSTUVWXYZab"
	enc, err := rootgen.Encode(token, otp)
	if err != nil {
		t.Fatal(err)
	}
	if code, out, stderr := runCmd("", "operator", "generate-root", "-decode="+enc, "-otp="+otp); code != 0 || out != token+"\n" {
		t.Fatalf("-decode: exit %d, %q %q", code, out, stderr)
	}
	if code, out, _ := runCmd(enc+"\n", "operator", "generate-root", "-decode=-", "-otp="+otp, "-format=json"); code != 0 || strings.TrimSpace(out) != `{
  "token": "`+token+`"
}` {
		t.Fatalf("-decode=- -format=json: exit %d, %q", code, out)
	}
}

const (
	genStatusIdle    = `{"started":false,"nonce":"","progress":0,"required":2,"complete":false,"encoded_token":"","encoded_root_token":"","pgp_fingerprint":"","otp":"","otp_length":28}`
	genStatusStarted = `{"started":true,"nonce":"n-1","progress":0,"required":2,"complete":false,"encoded_token":"","encoded_root_token":"","pgp_fingerprint":"","otp":"","otp_length":28}`
	genStatusDone    = `{"started":true,"nonce":"n-1","progress":2,"required":2,"complete":true,"encoded_token":"ZW5j","encoded_root_token":"ZW5j","pgp_fingerprint":"","otp":"","otp_length":28}`
)

// lastBody is the JSON body of the last request to method path.
func (f *fakeVault) lastBody(method, path string) (map[string]any, bool) {
	var body map[string]any
	found := false
	for _, r := range f.requests() {
		if r.method == method && r.path == path {
			body, found = r.body, true
		}
	}
	return body, found
}

func TestGenerateRootRequests(t *testing.T) {
	fv := newFakeVault(t)
	const attempt, update = "/v1/sys/generate-root/attempt", "/v1/sys/generate-root/update"
	fv.on("GET", attempt, 200, genStatusIdle)
	fv.on("PUT", attempt, 200, strings.Replace(genStatusStarted, `"otp":""`, `"otp":"`+strings.Repeat("o", 28)+`"`, 1))
	fv.on("DELETE", attempt, 204, "")
	fv.on("PUT", update, 200, genStatusDone)

	// No attempt: a share is refused before it is sent.
	if code, _, stderr := runCmd("", "operator", "generate-root", "-nonce=n-1", "KEY"); code != exitLocal || !strings.Contains(stderr, "-init") {
		t.Fatalf("a share without an attempt: exit %d %q", code, stderr)
	}
	code, out, stderr := runCmd("", "operator", "generate-root", "-init")
	if code != 0 || !strings.Contains(out, strings.Repeat("o", 28)) || !strings.Contains(stderr, "keep it safe") {
		t.Fatalf("-init: exit %d\n%s\n%s", code, out, stderr)
	}
	if b, _ := fv.lastBody("PUT", attempt); b["otp"] != "" || b["pgp_key"] != "" {
		t.Fatalf("-init sent %v; want an empty otp, so the server draws one", b)
	}
	otp := strings.Repeat("m", 28)
	if code, _, _ := runCmd("", "operator", "generate-root", "-init", "-otp="+otp); code != 0 {
		t.Fatalf("-init -otp: exit %d", code)
	}
	if b, _ := fv.lastBody("PUT", attempt); b["otp"] != otp {
		t.Fatalf("-init -otp sent %v", b)
	}

	fv.on("GET", attempt, 200, genStatusStarted)
	// A share given as an argument or on stdin ("-") needs -nonce: nothing is sent without it.
	for _, args := range [][]string{{"KEY"}, {"-"}} {
		code, _, stderr := runCmd("KEY\n", append([]string{"operator", "generate-root"}, args...)...)
		if code != exitLocal || !strings.Contains(stderr, "Missing nonce") {
			t.Fatalf("%v without -nonce: exit %d %q", args, code, stderr)
		}
	}
	if _, sent := fv.lastBody("PUT", update); sent {
		t.Fatal("a share was sent without a nonce")
	}
	code, out, stderr = runCmd("", "operator", "generate-root", "-nonce=n-1", "abcd")
	if code != 0 || !strings.Contains(out, "ZW5j") || !strings.Contains(stderr, "-decode") {
		t.Fatalf("KEY -nonce: exit %d\n%s\n%s", code, out, stderr)
	}
	if b, _ := fv.lastBody("PUT", update); b["key"] != "abcd" || b["nonce"] != "n-1" {
		t.Fatalf("update sent %v", b)
	}
	if code, _, _ := runCmd(" ef01 \n", "operator", "generate-root", "-nonce=n-2", "-"); code != 0 {
		t.Fatalf("- -nonce: exit %d", code)
	}
	if b, _ := fv.lastBody("PUT", update); b["key"] != "ef01" || b["nonce"] != "n-2" {
		t.Fatalf("update from stdin sent %v", b)
	}
	// At the prompt the nonce shown is the one used.
	code, _, stderr = runCmd("9999\n", "operator", "generate-root", "-format=json")
	if code != 0 || !strings.Contains(stderr, "Operation nonce: n-1") {
		t.Fatalf("prompt: exit %d %q", code, stderr)
	}
	if b, _ := fv.lastBody("PUT", update); b["key"] != "9999" || b["nonce"] != "n-1" {
		t.Fatalf("update at the prompt sent %v", b)
	}

	code, out, _ = runCmd("", "operator", "generate-root", "-status", "-format=json")
	var st map[string]any
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil || st["nonce"] != "n-1" || st["otp_length"] != float64(28) {
		t.Fatalf("-status -format=json: exit %d %v\n%s", code, err, out)
	}
	if code, out, _ := runCmd("", "operator", "generate-root", "-cancel"); code != 0 || !strings.Contains(out, "canceled") {
		t.Fatalf("-cancel: exit %d %q", code, out)
	}
	if _, sent := fv.lastBody("DELETE", attempt); !sent {
		t.Fatal("-cancel sent no DELETE")
	}
	code, out, _ = runCmd("", "operator", "generate-root", "-generate-otp")
	if otp := strings.TrimSpace(out); code != 0 || len(otp) != 28 || strings.Trim(otp, rootgen.OTPAlphabet) != "" {
		t.Fatalf("-generate-otp: exit %d %q", code, out)
	}
}

// -dr-token runs every step against a DR secondary's
// generate-operation-token endpoints, never against sys/generate-root.
func TestGenerateRootDRTokenRequests(t *testing.T) {
	fv := newFakeVault(t)
	const attempt, update = "/v1/sys/replication/dr/secondary/generate-operation-token/attempt", "/v1/sys/replication/dr/secondary/generate-operation-token/update"
	fv.on("GET", attempt, 200, genStatusIdle)
	fv.on("PUT", attempt, 200, strings.Replace(genStatusStarted, `"otp":""`, `"otp":"`+strings.Repeat("o", 28)+`"`, 1))
	fv.on("DELETE", attempt, 204, "")
	fv.on("PUT", update, 200, genStatusDone)

	code, _, stderr := runCmd("", "operator", "generate-root", "-dr-token", "-nonce=n-1", "KEY")
	if code != exitLocal || !strings.Contains(stderr, "No DR operation token generation is in progress") || !strings.Contains(stderr, "generate-root -dr-token -init") {
		t.Fatalf("a share without an attempt: exit %d %q", code, stderr)
	}
	code, out, stderr := runCmd("", "operator", "generate-root", "-dr-token", "-init")
	if code != 0 || !strings.Contains(out, strings.Repeat("o", 28)) || !strings.Contains(stderr, "keep it safe") {
		t.Fatalf("-dr-token -init: exit %d\n%s\n%s", code, out, stderr)
	}
	if b, sent := fv.lastBody("PUT", attempt); !sent || b["otp"] != "" {
		t.Fatalf("-dr-token -init sent %v (%v)", b, sent)
	}
	fv.on("GET", attempt, 200, genStatusStarted)
	code, out, stderr = runCmd("", "operator", "generate-root", "-dr-token", "-nonce=n-1", "abcd")
	if code != 0 || !strings.Contains(out, "ZW5j") || !strings.Contains(stderr, "generate-root -dr-token -decode") {
		t.Fatalf("-dr-token KEY: exit %d\n%s\n%s", code, out, stderr)
	}
	if b, _ := fv.lastBody("PUT", update); b["key"] != "abcd" || b["nonce"] != "n-1" {
		t.Fatalf("update sent %v", b)
	}
	if code, out, _ := runCmd("", "operator", "generate-root", "-dr-token", "-status", "-format=json"); code != 0 || !strings.Contains(out, `"nonce": "n-1"`) {
		t.Fatalf("-dr-token -status: exit %d %q", code, out)
	}
	if code, out, _ := runCmd("", "operator", "generate-root", "-dr-token", "-cancel"); code != 0 || !strings.Contains(out, "DR operation token generation canceled") {
		t.Fatalf("-dr-token -cancel: exit %d %q", code, out)
	}
	if _, sent := fv.lastBody("DELETE", attempt); !sent {
		t.Fatal("-dr-token -cancel sent no DELETE")
	}
	if code, out, _ := runCmd("", "operator", "generate-root", "-dr-token", "-generate-otp"); code != 0 || len(strings.TrimSpace(out)) != 28 {
		t.Fatalf("-dr-token -generate-otp: exit %d %q", code, out)
	}
	for _, r := range fv.requests() {
		if strings.HasPrefix(r.path, "/v1/sys/generate-root") {
			t.Fatalf("-dr-token sent %s %s", r.method, r.path)
		}
	}
}

// -decode works the same with -dr-token: no server is asked.
func TestGenerateRootDRTokenDecode(t *testing.T) {
	t.Setenv("VAULT_ADDR", "http://127.0.0.1:1")
	const token, otp = "dro.0123456789abcdefghijklmn", "ABCDEFGHIJKLMNOPQRSTUVWXYZab"
	enc, err := rootgen.Encode(token, otp)
	if err != nil {
		t.Fatal(err)
	}
	if code, out, stderr := runCmd("", "operator", "generate-root", "-dr-token", "-decode="+enc, "-otp="+otp); code != 0 || out != token+"\n" {
		t.Fatalf("-dr-token -decode: exit %d, %q %q", code, out, stderr)
	}
	if code, _, stderr := runCmd("", "operator", "generate-root", "-dr-token", "-decode="+enc); code != exitLocal || !strings.Contains(stderr, "generate-root -dr-token -init") {
		t.Fatalf("-dr-token -decode without -otp: exit %d %q", code, stderr)
	}
}
