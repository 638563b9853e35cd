package tests

// End-to-end tests of the server process: seals (Shamir and static) and root
// key rotation, raw HTTP requests it must refuse, dev mode, and a clean
// shutdown on SIGTERM.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/cofferhq/coffer/storage/bolt"
	"github.com/hashicorp/vault/api"
	bbolt "go.etcd.io/bbolt"
)

func mustSealStatus(t *testing.T, c *api.Client) *api.SealStatusResponse {
	t.Helper()
	s, err := c.Sys().SealStatus()
	if err != nil {
		t.Fatalf("sys/seal-status: %v", err)
	}
	return s
}

// initShamir initializes with n shares and threshold k and checks the answer.
func initShamir(t *testing.T, c *api.Client, n, k int) *api.InitResponse {
	t.Helper()
	res, err := c.Sys().Init(&api.InitRequest{SecretShares: n, SecretThreshold: k})
	if err != nil {
		t.Fatalf("sys/init: %v", err)
	}
	if len(res.Keys) != n || len(res.KeysB64) != n {
		t.Fatalf("sys/init returned %d hex and %d base64 keys, want %d", len(res.Keys), len(res.KeysB64), n)
	}
	for i := range res.Keys {
		h, err1 := hex.DecodeString(res.Keys[i])
		b, err2 := base64.StdEncoding.DecodeString(res.KeysB64[i])
		if err1 != nil || err2 != nil || !bytes.Equal(h, b) {
			t.Fatalf("key %d: hex %q and base64 %q are not the same share", i, res.Keys[i], res.KeysB64[i])
		}
	}
	if res.RootToken == "" {
		t.Fatal("sys/init returned no root token")
	}
	return res
}

// unsealAll submits keys one by one, checking the progress on the way.
func unsealAll(t *testing.T, c *api.Client, keys []string) {
	t.Helper()
	for i, k := range keys {
		s, err := c.Sys().Unseal(k)
		if err != nil {
			t.Fatalf("unseal share %d: %v", i+1, err)
		}
		if i < len(keys)-1 {
			if !s.Sealed || s.Progress != i+1 {
				t.Fatalf("after share %d: sealed=%v progress=%d, want sealed with progress %d", i+1, s.Sealed, s.Progress, i+1)
			}
			continue
		}
		if s.Sealed || s.Progress != 0 {
			t.Fatalf("after the last share: sealed=%v progress=%d, want unsealed with progress 0", s.Sealed, s.Progress)
		}
	}
}

func TestShamirSealLifecycle(t *testing.T) {
	t.Parallel()
	n := newNode(t, serverConfig{})
	p := n.start()
	c := client(t, n.addr, "")
	base := "http://" + n.addr

	if init, err := c.Sys().InitStatus(); err != nil || init {
		t.Fatalf("InitStatus on a new server = %v, %v; want false", init, err)
	}
	if r := doRaw(t, http.MethodGet, base+"/v1/sys/health", "", nil); r.code != 501 {
		t.Fatalf("health before init: %d, want 501", r.code)
	}
	if r := doRaw(t, http.MethodGet, base+"/v1/sys/health?uninitcode=299", "", nil); r.code != 299 {
		t.Fatalf("health?uninitcode=299 before init: %d, want 299", r.code)
	}

	res := initShamir(t, c, 5, 3)
	s := mustSealStatus(t, c)
	if !s.Initialized || !s.Sealed || s.T != 3 || s.N != 5 || s.Type != "shamir" || s.Progress != 0 {
		t.Fatalf("after init: %+v; want initialized, sealed, shamir, 3 of 5", s)
	}
	if _, err := c.Sys().Init(&api.InitRequest{SecretShares: 1, SecretThreshold: 1}); err == nil {
		t.Fatal("a second sys/init succeeded")
	} else {
		responseError(t, err, 400, "already initialized")
	}
	health := doRaw(t, http.MethodGet, base+"/v1/sys/health", "", nil)
	if health.code != 503 {
		t.Fatalf("health while sealed: %d, want 503", health.code)
	}
	if r := doRaw(t, http.MethodHead, base+"/v1/sys/health", "", nil); r.code != 503 || len(r.body) != 0 {
		t.Fatalf("HEAD health while sealed: %d with %d body bytes, want 503 and none", r.code, len(r.body))
	}
	if r := doRaw(t, http.MethodGet, base+"/v1/sys/health?sealedcode=299", "", nil); r.code != 299 {
		t.Fatalf("health?sealedcode=299: %d, want 299", r.code)
	}
	if h, err := c.Sys().Health(); err != nil || !h.Initialized || !h.Sealed {
		t.Fatalf("vault/api Health while sealed: %+v, %v", h, err)
	}

	// Restart: still sealed; three shares unseal it, hex and base64 mixed.
	p = n.restart(p)
	if s := mustSealStatus(t, c); !s.Sealed || !s.Initialized {
		t.Fatalf("after restart: %+v; want initialized and sealed", s)
	}
	unsealAll(t, c, []string{res.Keys[0], res.KeysB64[3], res.Keys[4]})
	waitHealthCode(t, n.addr, 200)
	if h, err := c.Sys().Health(); err != nil || h.Sealed || h.ClusterName != "dc1" || h.ClusterID == "" {
		t.Fatalf("vault/api Health when unsealed: %+v, %v; want unsealed, cluster dc1 with an id", h, err)
	}
	if l, err := c.Sys().Leader(); err != nil || !l.IsSelf {
		t.Fatalf("vault/api Leader when unsealed: %+v, %v", l, err)
	}

	// Restart again: wrong shares are refused and it stays sealed.
	p = n.restart(p)
	bogus := make([]string, 3)
	for i := range bogus {
		bogus[i] = base64.StdEncoding.EncodeToString(randomBytes(t, 33))
	}
	for i, k := range bogus[:2] {
		if s, err := c.Sys().Unseal(k); err != nil || s.Progress != i+1 {
			t.Fatalf("bogus share %d: %+v, %v; want accepted as progress %d", i+1, s, err, i+1)
		}
	}
	_, err := c.Sys().Unseal(bogus[2])
	responseError(t, err, 400, "invalid key")
	if s := mustSealStatus(t, c); !s.Sealed || s.Progress != 0 {
		t.Fatalf("after a wrong share set: sealed=%v progress=%d; want sealed, progress reset to 0", s.Sealed, s.Progress)
	}

	// Shares of another cluster are just as wrong.
	other := newNode(t, serverConfig{ClusterName: "dc2"})
	op := other.start()
	otherRes := initShamir(t, client(t, other.addr, ""), 5, 3)
	if code := op.stop(); code != 0 {
		t.Fatalf("other server exited %d on SIGTERM", code)
	}
	for _, k := range otherRes.Keys[:2] {
		if _, err := c.Sys().Unseal(k); err != nil {
			t.Fatalf("foreign share before threshold: %v", err)
		}
	}
	_, err = c.Sys().Unseal(otherRes.Keys[2])
	responseError(t, err, 400, "invalid key")
	if s := mustSealStatus(t, c); !s.Sealed {
		t.Fatal("foreign shares unsealed the server")
	}

	// reset clears the progress.
	if s, err := c.Sys().Unseal(res.Keys[1]); err != nil || s.Progress != 1 {
		t.Fatalf("one good share: %+v, %v", s, err)
	}
	if s, err := c.Sys().ResetUnsealProcess(); err != nil || s.Progress != 0 || !s.Sealed {
		t.Fatalf("reset: %+v, %v; want sealed with progress 0", s, err)
	}
	unsealAll(t, c, res.Keys[1:4])

	// sys/seal needs a root token.
	_, err = c.Logical().Write("sys/seal", nil)
	responseError(t, err, 403, "permission denied")
	err = client(t, n.addr, "not-a-token").Sys().Seal()
	responseError(t, err, 403, "permission denied")
	if s := mustSealStatus(t, c); s.Sealed {
		t.Fatal("a refused sys/seal sealed the server")
	}
	root := client(t, n.addr, res.RootToken)
	if err := root.Sys().Seal(); err != nil {
		t.Fatalf("sys/seal with the root token: %v", err)
	}
	if s := mustSealStatus(t, c); !s.Sealed {
		t.Fatal("still unsealed after sys/seal")
	}
	_, err = root.Sys().KeyStatus()
	responseError(t, err, 503, "sealed")
	if code := p.stop(); code != 0 {
		t.Fatalf("exit code %d on SIGTERM, want 0", code)
	}
}

func TestStaticSealUnsealsItself(t *testing.T) {
	t.Parallel()
	n := newNode(t, serverConfig{StaticKey: randomBytes(t, 32)})
	p := n.start()
	c := client(t, n.addr, "")

	res, err := c.Sys().Init(&api.InitRequest{RecoveryShares: 5, RecoveryThreshold: 3})
	if err != nil {
		t.Fatalf("sys/init with the static seal: %v", err)
	}
	if len(res.Keys) != 0 || len(res.RecoveryKeys) != 5 || len(res.RecoveryKeysB64) != 5 || res.RootToken == "" {
		t.Fatalf("sys/init: %d unseal keys, %d/%d recovery keys, root token %q; want 0, 5/5 and a token",
			len(res.Keys), len(res.RecoveryKeys), len(res.RecoveryKeysB64), res.RootToken)
	}
	s := mustSealStatus(t, c)
	if s.Sealed || !s.RecoverySeal || s.Type != "static" || s.T != 3 || s.N != 5 {
		t.Fatalf("after init: %+v; want unsealed static seal with 3 of 5 recovery shares", s)
	}

	p = n.restart(p)
	waitHealthCode(t, n.addr, 200)
	ks, err := client(t, n.addr, res.RootToken).Sys().KeyStatus()
	if err != nil || ks.Term != 1 {
		t.Fatalf("key-status with the root token after restart: %+v, %v; want term 1", ks, err)
	}
	if code := p.stop(); code != 0 {
		t.Fatalf("exit code %d on SIGTERM, want 0", code)
	}
}

func TestRotateSurvivesRestart(t *testing.T) {
	t.Parallel()
	n := newNode(t, serverConfig{})
	p := n.start()
	c := client(t, n.addr, "")
	res := initShamir(t, c, 1, 1)
	unsealAll(t, c, res.Keys)
	root := client(t, n.addr, res.RootToken)

	before, err := root.Sys().KeyStatus()
	if err != nil || before.Term != 1 || before.InstallTime.IsZero() {
		t.Fatalf("key-status after init: %+v, %v; want term 1 with an install time", before, err)
	}
	_, err = c.Sys().KeyStatus()
	responseError(t, err, 403, "permission denied")
	err = c.Sys().Rotate()
	responseError(t, err, 403, "permission denied")

	if r := doRaw(t, http.MethodPut, "http://"+n.addr+"/v1/sys/rotate", res.RootToken, nil); r.code != 204 {
		t.Fatalf("PUT sys/rotate: %d, want 204 like Vault (body %q)", r.code, r.body)
	}
	after, err := root.Sys().KeyStatus()
	if err != nil || after.Term != 2 || after.InstallTime.Before(before.InstallTime) {
		t.Fatalf("key-status after rotate: %+v, %v; want term 2 installed after term 1", after, err)
	}
	// A sys read answers in the logical envelope: vault read works too.
	sec, err := root.Logical().Read("sys/key-status")
	if err != nil || sec == nil || sec.RequestID == "" || fmt.Sprint(sec.Data["term"]) != "2" {
		t.Fatalf("logical read of sys/key-status: %+v, %v; want an envelope with term 2", sec, err)
	}

	p = n.restart(p)
	unsealAll(t, c, res.KeysB64)
	got, err := root.Sys().KeyStatus()
	if err != nil || got.Term != 2 || !got.InstallTime.Equal(after.InstallTime) {
		t.Fatalf("key-status after restart: %+v, %v; want term 2 installed at %s", got, err, after.InstallTime)
	}
	if code := p.stop(); code != 0 {
		t.Fatalf("exit code %d on SIGTERM, want 0", code)
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	n := newNode(t, serverConfig{MaxRequestSize: 1024})
	n.start()
	c := client(t, n.addr, "")
	res := initShamir(t, c, 1, 1)
	unsealAll(t, c, res.Keys)
	base := "http://" + n.addr

	doRaw(t, http.MethodPut, base+"/v1/sys/unseal", "", strings.NewReader(`{"key":`)).expectError(t, 400, "not valid JSON")
	doRaw(t, http.MethodPut, base+"/v1/sys/unseal", "", strings.NewReader(`{"key":"aa"} trailing`)).expectError(t, 400, "not valid JSON")
	doRaw(t, http.MethodPut, base+"/v1/sys/unseal", "", strings.NewReader(`{}`)).expectError(t, 400, "'key' must be specified")
	_, err := c.Sys().Unseal("this is neither hex nor base64!")
	responseError(t, err, 400, "hex or base64")

	doRaw(t, http.MethodGet, base+"/v1/no/such/path", "", nil).expectError(t, 404, "no/such/path")
	doRaw(t, http.MethodGet, base+"/not-the-api", "", nil).expectError(t, 404, "/v1/")

	r := doRaw(t, http.MethodDelete, base+"/v1/sys/seal-status", "", nil)
	r.expectError(t, 405, "GET")
	if r.header.Get("Allow") != "GET" {
		t.Fatalf("405 Allow header %q, want GET", r.header.Get("Allow"))
	}
	doRaw(t, http.MethodGet, base+"/v1/sys/seal", "", nil).expectError(t, 405, "PUT")

	doRaw(t, http.MethodGet, base+"/v1/sys/health?sealedcode=abc", "", nil).expectError(t, 400, "sealedcode")

	// Over max_request_size: with a Content-Length, and streamed without one.
	big := `{"key":"` + strings.Repeat("a", 2048) + `"}`
	doRaw(t, http.MethodPut, base+"/v1/sys/unseal", "", strings.NewReader(big)).expectError(t, 413, "max_request_size")
	doRaw(t, http.MethodPut, base+"/v1/sys/unseal", "", io.MultiReader(strings.NewReader(big))).expectError(t, 413, "max_request_size")
	// Just under the limit is fine.
	small := `{"key":"` + res.Keys[0] + `"}`
	if r := doRaw(t, http.MethodPut, base+"/v1/sys/unseal", "", strings.NewReader(small)); r.code != 200 {
		t.Fatalf("a small unseal body: %d %q", r.code, r.body)
	}

	// The token may also come as Authorization: Bearer.
	req, err := http.NewRequest(http.MethodGet, base+"/v1/sys/key-status", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+res.RootToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("key-status with a bearer token: %d, want 200", resp.StatusCode)
	}
}

func TestDevMode(t *testing.T) {
	t.Parallel()
	addr := testutil.FreeAddr(t)
	p := startProc(t, addr, "server", "-dev", "-dev-root-token-id=root",
		"-dev-listen-address="+addr, "-dev-nats-listen="+testutil.FreeAddr(t))
	waitHealthCode(t, addr, 200)
	c := client(t, addr, "root")
	if s := mustSealStatus(t, c); !s.Initialized || s.Sealed {
		t.Fatalf("dev server: %+v; want initialized and unsealed", s)
	}
	ks, err := c.Sys().KeyStatus()
	if err != nil || ks.Term != 1 {
		t.Fatalf("key-status with the dev root token: %+v, %v", ks, err)
	}
	_, err = client(t, addr, "not-root").Sys().KeyStatus()
	responseError(t, err, 403, "permission denied")
	if code := p.stop(); code != 0 {
		t.Fatalf("dev server exit code %d on SIGTERM, want 0", code)
	}
}

func TestSIGTERMClosesStorage(t *testing.T) {
	t.Parallel()
	n := newNode(t, serverConfig{StaticKey: randomBytes(t, 32)})
	p := n.start()
	res, err := client(t, n.addr, "").Sys().Init(&api.InitRequest{RecoveryShares: 1, RecoveryThreshold: 1})
	if err != nil {
		t.Fatalf("init: %v", err)
	}
	if code := p.stop(); code != 0 {
		t.Fatalf("exit code %d on SIGTERM, want 0; output:\n%s", code, p.out.String())
	}

	// The file opens at once (no stale lock), is consistent, and holds data.
	db, err := bbolt.Open(n.dbPath, 0o600, &bbolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		t.Fatalf("reopen the bolt file after SIGTERM: %v", err)
	}
	err = db.View(func(tx *bbolt.Tx) error {
		var first error
		for cerr := range tx.Check() { // drain: Check's goroutine sends every error
			if first == nil {
				first = cerr
			}
		}
		return first
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("bolt consistency check after SIGTERM: %v", err)
	}
	b, err := bolt.Open(bolt.Options{Path: n.dbPath, Timeout: time.Second})
	if err != nil {
		t.Fatalf("reopen with storage/bolt: %v", err)
	}
	keys, err := b.List(context.Background(), "")
	if cerr := b.Close(); err == nil {
		err = cerr
	}
	if err != nil || len(keys) == 0 {
		t.Fatalf("list the reopened storage: %v, %v; want the initialized cluster's keys", keys, err)
	}

	// And the server comes back from it.
	p = n.start()
	waitHealthCode(t, n.addr, 200)
	if _, err := client(t, n.addr, res.RootToken).Sys().KeyStatus(); err != nil {
		t.Fatalf("key-status after restart on the reopened file: %v", err)
	}
	if code := p.stop(); code != 0 {
		t.Fatalf("exit code %d on the second SIGTERM, want 0", code)
	}
}
