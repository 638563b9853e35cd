package tests

// End-to-end tests of root token generation (sys/generate-root) on a shamir
// server: the whole flow with vault/api, and with the coffer CLI.

import (
	"encoding/base64"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"
)

// shamirServer starts a config-file server with the shamir seal, 3 key
// shares and a threshold of 2, initializes and unseals it; it returns the
// node, its process and sys/init's answer.
func shamirServer(t *testing.T) (*node, *proc, *api.InitResponse) {
	t.Helper()
	n := newNode(t, serverConfig{})
	p := n.start()
	res, err := client(t, n.addr, "").Sys().Init(&api.InitRequest{SecretShares: 3, SecretThreshold: 2})
	if err != nil {
		t.Fatalf("sys/init: %v", err)
	}
	unsealWith(t, n.addr, res.Keys[:2])
	return n, p, res
}

func unsealWith(t *testing.T, addr string, keys []string) {
	t.Helper()
	for _, k := range keys {
		if _, err := client(t, addr, "").Sys().Unseal(k); err != nil {
			t.Fatalf("sys/unseal: %v", err)
		}
	}
	waitHealthCode(t, addr, 200)
}

// decodeGenerated undoes Vault's encoding of a generated token (1.12+), as
// `vault operator generate-root -decode` does: unpadded base64, XOR with
// the OTP. It is written apart from Coffer's code on purpose.
func decodeGenerated(t *testing.T, encoded, otp string) string {
	t.Helper()
	raw, err := base64.RawStdEncoding.DecodeString(encoded)
	if err != nil || len(raw) != len(otp) {
		t.Fatalf("encoded token %q (OTP of %d bytes): %v", encoded, len(otp), err)
	}
	for i := range raw {
		raw[i] ^= otp[i]
	}
	return string(raw)
}

// useAsRoot checks that token is a root token by what only root may do:
// enable a kv mount, write a secret there and read it back.
func useAsRoot(t *testing.T, addr, token, mount string) {
	t.Helper()
	c := client(t, addr, token)
	self, err := c.Auth().Token().LookupSelf()
	if err != nil {
		t.Fatalf("lookup-self with the generated token: %v", err)
	}
	if pols, _ := self.TokenPolicies(); !slices.Contains(pols, "root") {
		t.Fatalf("the generated token has policies %v, want root", pols)
	}
	if err := c.Sys().Mount(mount, &api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatalf("mount kv at %s/ with the generated token: %v", mount, err)
	}
	kvPut(t, c, mount, "app", map[string]any{"v": "from-the-new-root"})
	if err := kvHas(c, mount, "app", "from-the-new-root"); err != nil {
		t.Fatal(err)
	}
}

func TestGenerateRoot(t *testing.T) {
	t.Parallel()
	n, p, res := shamirServer(t)
	sys := client(t, n.addr, "").Sys() // no token: the shares authorise

	st, err := sys.GenerateRootStatus()
	if err != nil || st.Started || st.Required != 2 || st.OTPLength != 28 {
		t.Fatalf("GenerateRootStatus before an attempt: %+v %v", st, err)
	}
	init, err := sys.GenerateRootInit("", "")
	if err != nil || !init.Started || init.Nonce == "" || len(init.OTP) != init.OTPLength || init.Required != 2 {
		t.Fatalf("GenerateRootInit: %+v %v", init, err)
	}
	up, err := sys.GenerateRootUpdate(res.Keys[2], init.Nonce)
	if err != nil || up.Progress != 1 || up.Complete || up.EncodedToken != "" {
		t.Fatalf("GenerateRootUpdate 1/2: %+v %v", up, err)
	}
	if st, err := sys.GenerateRootStatus(); err != nil || !st.Started || st.Nonce != init.Nonce || st.Progress != 1 || st.OTP != "" {
		t.Fatalf("GenerateRootStatus at 1/2: %+v %v; want the attempt, without its OTP", st, err)
	}
	up, err = sys.GenerateRootUpdate(res.KeysB64[0], init.Nonce)
	if err != nil || !up.Complete || up.EncodedToken == "" || up.EncodedRootToken != up.EncodedToken {
		t.Fatalf("GenerateRootUpdate 2/2: %+v %v", up, err)
	}
	token := decodeGenerated(t, up.EncodedToken, init.OTP)
	if token == res.RootToken {
		t.Fatal("the generated token is the initial root token")
	}
	useAsRoot(t, n.addr, token, "secret")

	// The attempt is over; a new one lives in memory only: a restart ends it.
	if st, err := sys.GenerateRootStatus(); err != nil || st.Started {
		t.Fatalf("status after completion: %+v %v", st, err)
	}
	if _, err := sys.GenerateRootInit("", ""); err != nil {
		t.Fatal(err)
	}
	n.restart(p)
	unsealWith(t, n.addr, res.Keys[1:])
	if st, err := client(t, n.addr, "").Sys().GenerateRootStatus(); err != nil || st.Started {
		t.Fatalf("status after a restart: %+v %v; want no attempt", st, err)
	}
	// The generated token is an ordinary stored root token: it survives.
	if _, err := client(t, n.addr, token).Auth().Token().LookupSelf(); err != nil {
		t.Fatalf("the generated token after a restart: %v", err)
	}
}

func TestCLIGenerateRoot(t *testing.T) {
	t.Parallel()
	n, _, res := shamirServer(t)
	var init struct {
		Nonce     string `json:"nonce"`
		OTP       string `json:"otp"`
		OTPLength int    `json:"otp_length"`
	}
	cliDecode(t, cliOK(t, n.addr, "", "", "operator", "generate-root", "-init", "-format=json"), &init)
	if init.Nonce == "" || len(init.OTP) != init.OTPLength {
		t.Fatalf("generate-root -init: %+v", init)
	}
	out := cliOK(t, n.addr, "", "", "operator", "generate-root", "-status")
	if cliTableValue(t, out, "Nonce") != init.Nonce || cliTableValue(t, out, "Progress") != "0/2" || cliTableValue(t, out, "Started") != "true" {
		t.Fatalf("generate-root -status:\n%s", out)
	}
	// A share without the nonce is not sent.
	errOut := cliFail(t, n.addr, "", "", 1, "operator", "generate-root", res.KeysB64[0])
	cliContains(t, "a share without -nonce", errOut, "-nonce")

	out = cliOK(t, n.addr, "", "", "operator", "generate-root", "-nonce="+init.Nonce, res.KeysB64[0])
	if cliTableValue(t, out, "Progress") != "1/2" || cliTableValue(t, out, "Complete") != "false" {
		t.Fatalf("generate-root KEY 1/2:\n%s", out)
	}
	var done struct {
		Complete     bool   `json:"complete"`
		EncodedToken string `json:"encoded_token"`
	}
	cliDecode(t, cliOK(t, n.addr, "", res.Keys[1]+"\n", "operator", "generate-root", "-nonce="+init.Nonce, "-format=json", "-"), &done)
	if !done.Complete || done.EncodedToken == "" {
		t.Fatalf("generate-root - 2/2: %+v", done)
	}
	token := strings.TrimSpace(cliOK(t, n.addr, "", "", "operator", "generate-root", "-decode="+done.EncodedToken, "-otp="+init.OTP))
	if token != decodeGenerated(t, done.EncodedToken, init.OTP) {
		t.Fatalf("generate-root -decode printed %q", token)
	}
	useAsRoot(t, n.addr, token, "kv")

	// Cancel, as the CLI does it.
	cliOK(t, n.addr, "", "", "operator", "generate-root", "-init")
	cliContains(t, "generate-root -cancel", cliOK(t, n.addr, "", "", "operator", "generate-root", "-cancel"), "canceled")
	if out := cliOK(t, n.addr, "", "", "operator", "generate-root", "-status"); cliTableValue(t, out, "Started") != "false" {
		t.Fatalf("status after -cancel:\n%s", out)
	}
}
