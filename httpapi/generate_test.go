package httpapi_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"

	"github.com/cofferhq/coffer/httpapi"
)

// decodeVault decodes an encoded_token as `vault operator generate-root
// -decode` does (Vault 1.12+): unpadded base64, XOR with the OTP.
func decodeVault(t *testing.T, encoded, otp string) string {
	t.Helper()
	raw, err := base64.RawStdEncoding.DecodeString(encoded)
	if err != nil || len(raw) != len(otp) {
		t.Fatalf("encoded token %q with an OTP of %d bytes: %v", encoded, len(otp), err)
	}
	for i := range raw {
		raw[i] ^= otp[i]
	}
	return string(raw)
}

// TestGenerateRootWithVaultClient drives sys/generate-root with vault/api,
// which fails on any response shape it cannot decode.
func TestGenerateRootWithVaultClient(t *testing.T) {
	srv, c := newServer(t, httpapi.Options{})
	v := apiClient(t, srv, "")
	u := srv.URL + "/v1/"
	res, err := v.Sys().Init(&api.InitRequest{SecretShares: 3, SecretThreshold: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Sys().GenerateRootStatus(); err == nil || !strings.Contains(err.Error(), "sealed") {
		t.Fatalf("GenerateRootStatus while sealed: %v; want 503 sealed", err)
	}
	for _, k := range res.Keys[:2] {
		if _, err := v.Sys().Unseal(k); err != nil {
			t.Fatal(err)
		}
	}

	st, err := v.Sys().GenerateRootStatus()
	if err != nil || st.Started || st.Required != 2 || st.OTPLength != 28 || st.Nonce != "" {
		t.Fatalf("GenerateRootStatus: %+v %v", st, err)
	}
	r := do(t, "GET", u+"sys/generate-root/attempt", nil, nil)
	r.want(t, 200, "")
	var fields map[string]any
	if err := json.Unmarshal([]byte(r.body), &fields); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"started", "nonce", "progress", "required", "complete", "encoded_token", "encoded_root_token", "pgp_fingerprint", "otp", "otp_length"} {
		if _, ok := fields[f]; !ok {
			t.Errorf("the status lacks Vault's field %q: %s", f, r.body)
		}
	}

	if _, err := v.Sys().GenerateRootInit("", "mQENBF..."); err == nil || !strings.Contains(err.Error(), "PGP") {
		t.Fatalf("GenerateRootInit with a PGP key: %v; want a 400 saying PGP is not supported", err)
	}
	init, err := v.Sys().GenerateRootInit("", "")
	if err != nil || !init.Started || init.Nonce == "" || len(init.OTP) != 28 || init.OTPLength != 28 || init.Required != 2 {
		t.Fatalf("GenerateRootInit: %+v %v", init, err)
	}
	if st, _ := v.Sys().GenerateRootStatus(); st.OTP != "" || st.Nonce != init.Nonce || !st.Started {
		t.Fatalf("status after init: %+v; want the attempt without its OTP", st)
	}

	do(t, "PUT", u+"sys/generate-root/update", nil, strings.NewReader(`{"nonce":"`+init.Nonce+`"}`)).want(t, 400, "'key'")
	do(t, "PUT", u+"sys/generate-root/update", nil, strings.NewReader(`{"key":"`+res.Keys[0]+`"}`)).want(t, 400, "'nonce'")
	do(t, "PUT", u+"sys/generate-root/update", nil, strings.NewReader(`{"key":"%%%","nonce":"`+init.Nonce+`"}`)).want(t, 400, "hex or base64")
	do(t, "PATCH", u+"sys/generate-root/update", nil, nil).want(t, 405, "POST or PUT")

	up, err := v.Sys().GenerateRootUpdate(res.Keys[0], init.Nonce)
	if err != nil || up.Progress != 1 || up.Complete || up.EncodedToken != "" {
		t.Fatalf("GenerateRootUpdate 1: %+v %v", up, err)
	}
	up, err = v.Sys().GenerateRootUpdate(res.KeysB64[2], init.Nonce)
	if err != nil || !up.Complete || up.EncodedToken == "" || up.EncodedRootToken != up.EncodedToken || up.Progress != 2 {
		t.Fatalf("GenerateRootUpdate 2: %+v %v", up, err)
	}
	tok := decodeVault(t, up.EncodedToken, init.OTP)
	if !strings.HasPrefix(tok, "hvs.") {
		t.Fatalf("decoded token %q", tok)
	}
	// Sealing needs a root token: the new one is.
	if err := c.Seal(context.Background(), tok); err != nil {
		t.Fatalf("seal with the generated token: %v", err)
	}
}

func TestGenerateRootCancelWithVaultClient(t *testing.T) {
	srv, _ := newServer(t, httpapi.Options{})
	v := apiClient(t, srv, "")
	res, err := v.Sys().Init(&api.InitRequest{SecretShares: 3, SecretThreshold: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range res.Keys[:2] {
		if _, err := v.Sys().Unseal(k); err != nil {
			t.Fatal(err)
		}
	}
	init, err := v.Sys().GenerateRootInit("", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Sys().GenerateRootInit("", ""); err == nil || !strings.Contains(err.Error(), "already in progress") {
		t.Fatalf("a second GenerateRootInit: %v; want a 400", err)
	}
	if _, err := v.Sys().GenerateRootUpdate(res.Keys[0], init.Nonce); err != nil {
		t.Fatal(err)
	}
	r := do(t, "DELETE", srv.URL+"/v1/sys/generate-root/attempt", nil, nil)
	r.want(t, http.StatusNoContent, "")
	if err := v.Sys().GenerateRootCancel(); err != nil {
		t.Fatalf("GenerateRootCancel without an attempt: %v", err)
	}
	if st, err := v.Sys().GenerateRootStatus(); err != nil || st.Started || st.Progress != 0 {
		t.Fatalf("status after cancel: %+v %v", st, err)
	}
	if up, err := v.Sys().GenerateRootUpdate(res.Keys[1], init.Nonce); err == nil || !strings.Contains(err.Error(), "no root token generation is in progress") {
		t.Fatalf("update after cancel: %+v %v; want a 400", up, err)
	}
}
