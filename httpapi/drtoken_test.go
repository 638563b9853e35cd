package httpapi_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/cofferhq/coffer/core"
	"github.com/cofferhq/coffer/core/coretest"
	"github.com/cofferhq/coffer/httpapi"
)

const (
	drAttempt = "/v1/sys/replication/dr/secondary/generate-operation-token/attempt"
	drUpdate  = "/v1/sys/replication/dr/secondary/generate-operation-token/update"
	drDelete  = "/v1/sys/replication/dr/secondary/operation-token/delete"
	drPromote = "sys/replication/dr/secondary/promote"
)

// drPaths are the DR operation token endpoints that take a body.
var drPaths = []string{drAttempt, drUpdate, drDelete}

// newDRSecondary serves an unsealed shamir core (3 shares, threshold 2)
// whose replication layer reports DR mode "secondary". Every other client
// request is refused, as a DR secondary refuses them: the DR operation
// token endpoints must not depend on the logical handler.
func newDRSecondary(t *testing.T) (*httptest.Server, *core.Core, *coretest.Replication, []string) {
	t.Helper()
	c, _, keys := coretest.UnsealedShamir(t)
	r := &coretest.Replication{}
	r.SetDRMode(core.ModeSecondary)
	c.SetReplication(r)
	refuseAll := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		httpapi.WriteError(w, req, http.StatusBadRequest, "refused by the test's DR secondary")
	})
	srv := httptest.NewServer(httpapi.New(c, httpapi.Options{Logical: refuseAll}, zerolog.Nop()))
	t.Cleanup(srv.Close)
	hexKeys := make([]string, len(keys))
	for i, k := range keys {
		hexKeys[i] = hex.EncodeToString(k)
	}
	return srv, c, r, hexKeys
}

// TestDROperationTokenWithVaultClient drives the DR operation token
// endpoints with vault/api's own methods and raw requests, without a client
// token, on a DR secondary that refuses every other request.
func TestDROperationTokenWithVaultClient(t *testing.T) {
	ctx := context.Background()
	srv, c, _, keys := newDRSecondary(t)
	v := apiClient(t, srv, "")

	if _, err := v.Logical().Read("secret/app"); err == nil || !strings.Contains(err.Error(), "refused by the test's DR secondary") {
		t.Fatalf("a client request on the DR secondary: %v; want the refusal", err)
	}
	st, err := v.Sys().GenerateDROperationTokenStatus()
	if err != nil || st.Started || st.Required != 2 || st.OTPLength != 28 {
		t.Fatalf("GenerateDROperationTokenStatus: %+v %v", st, err)
	}
	r := do(t, "GET", srv.URL+drAttempt, nil, nil)
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

	if _, err := v.Sys().GenerateDROperationTokenInit("", "mQENBF..."); err == nil || !strings.Contains(err.Error(), "PGP") {
		t.Fatalf("init with a PGP key: %v; want a 400", err)
	}
	init, err := v.Sys().GenerateDROperationTokenInit("", "")
	if err != nil || !init.Started || init.Nonce == "" || len(init.OTP) != 28 {
		t.Fatalf("GenerateDROperationTokenInit: %+v %v", init, err)
	}
	do(t, "PUT", srv.URL+drUpdate, nil, strings.NewReader(`{"nonce":"`+init.Nonce+`"}`)).want(t, 400, "'key'")
	up, err := v.Sys().GenerateDROperationTokenUpdate(keys[0], init.Nonce)
	if err != nil || up.Progress != 1 || up.Complete || up.EncodedToken != "" {
		t.Fatalf("update 1: %+v %v", up, err)
	}
	up, err = v.Sys().GenerateDROperationTokenUpdate(keys[2], init.Nonce)
	if err != nil || !up.Complete || up.EncodedToken == "" || up.EncodedRootToken != up.EncodedToken {
		t.Fatalf("update 2: %+v %v", up, err)
	}
	tok := decodeVault(t, up.EncodedToken, init.OTP)
	if err := c.CheckDROperationToken(ctx, tok, drPromote); err != nil {
		t.Fatalf("the generated token: %v", err)
	}

	// Delete: vault write sys/replication/dr/secondary/operation-token/delete dr_operation_token=...
	del := strings.TrimPrefix(drDelete, "/v1/")
	do(t, "PUT", srv.URL+drDelete, nil, strings.NewReader(`{}`)).want(t, 400, "'dr_operation_token'")
	if _, err := v.Logical().Write(del, map[string]any{"dr_operation_token": "dro.not-a-live-token-xxxxxxx"}); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("deleting an unknown token: %v; want a 403", err)
	}
	body, err := json.Marshal(map[string]any{"dr_operation_token": tok})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := v.Logical().WriteRawWithContext(ctx, del, body)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %v %v; want 204", resp, err)
	}
	_ = resp.Body.Close()
	if err := c.CheckDROperationToken(ctx, tok, drPromote); !errors.Is(err, core.ErrPermissionDenied) {
		t.Fatalf("the deleted token: %v; want permission denied", err)
	}
}

// A wrong set of shares is a 400 that resets the progress and hands out no
// token; a cancel ends the attempt.
func TestDROperationTokenWrongSharesAndCancel(t *testing.T) {
	srv, _, _, keys := newDRSecondary(t)
	v := apiClient(t, srv, "")
	init, err := v.Sys().GenerateDROperationTokenInit("", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Sys().GenerateDROperationTokenUpdate(keys[0], init.Nonce); err != nil {
		t.Fatal(err)
	}
	digit := byte('0') // one hex digit of the second share, changed
	if keys[1][10] == '0' {
		digit = '1'
	}
	wrong := keys[1][:10] + string(digit) + keys[1][11:]
	r := do(t, "PUT", srv.URL+drUpdate, nil, strings.NewReader(`{"key":"`+wrong+`","nonce":"`+init.Nonce+`"}`))
	r.want(t, 400, "reset")
	if strings.Contains(r.body, "encoded_token") {
		t.Fatalf("a wrong set handed something out: %s", r.body)
	}
	st, err := v.Sys().GenerateDROperationTokenStatus()
	if err != nil || !st.Started || st.Progress != 0 || st.Nonce != init.Nonce {
		t.Fatalf("status after a wrong set: %+v %v", st, err)
	}
	do(t, "DELETE", srv.URL+drAttempt, nil, nil).want(t, http.StatusNoContent, "")
	if err := v.Sys().GenerateDROperationTokenCancel(); err != nil {
		t.Fatalf("cancel without an attempt: %v", err)
	}
	if st, err := v.Sys().GenerateDROperationTokenStatus(); err != nil || st.Started {
		t.Fatalf("status after cancel: %+v %v", st, err)
	}
}

// Every DR operation token endpoint is refused with a 400 that says why on
// a cluster that is not a DR secondary.
func TestDROperationTokenRefusedOffDRSecondary(t *testing.T) {
	srv, _, repl, keys := newDRSecondary(t)
	for _, mode := range []string{core.ModePrimary, core.ModeDisabled} {
		repl.SetDRMode(mode)
		for _, rq := range []struct{ method, path, body string }{
			{"GET", drAttempt, ""},
			{"PUT", drAttempt, `{}`},
			{"DELETE", drAttempt, ""},
			{"PUT", drUpdate, `{"key":"` + keys[0] + `","nonce":"n"}`},
			{"PUT", drDelete, `{"dr_operation_token":"dro.x"}`},
		} {
			do(t, rq.method, srv.URL+rq.path, nil, strings.NewReader(rq.body)).want(t, 400, "this cluster is not a DR secondary")
		}
	}
	// generate-root is unaffected.
	do(t, "GET", srv.URL+"/v1/sys/generate-root/attempt", nil, nil).want(t, 200, "")
}

// The vault CLI's `vault write .../operation-token/delete dr_operation_token=...`
// goes through client.Logical().Write, which takes the 204.
func TestDeleteDROperationTokenWithLogicalWrite(t *testing.T) {
	srv, c, _, keys := newDRSecondary(t)
	shares := make([][]byte, 2)
	for i, k := range keys[:2] {
		b, err := hex.DecodeString(k)
		if err != nil {
			t.Fatal(err)
		}
		shares[i] = b
	}
	tok := coretest.DROperationToken(t, c, shares)
	v := apiClient(t, srv, "")
	if sec, err := v.Logical().Write(strings.TrimPrefix(drDelete, "/v1/"), map[string]any{"dr_operation_token": tok}); err != nil || sec != nil {
		t.Fatalf("delete with Logical().Write: %+v %v", sec, err)
	}
	if err := c.CheckDROperationToken(context.Background(), tok, drPromote); !errors.Is(err, core.ErrPermissionDenied) {
		t.Fatalf("the deleted token: %v", err)
	}
}
