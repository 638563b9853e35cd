package security

// Finding 5 of issue 11: a key that is not valid UTF-8 was written, and from
// then on broke every merkle sync (keys travel between clusters as JSON
// strings and come back as U+FFFD); a NUL in a key gave a 500. Both are now
// a 400 that says why, before anything is written.

import (
	"net/http"
	"strings"
	"testing"
)

func TestHTTPAttackKeyNotUTF8(t *testing.T) {
	s := startDevServer(t, serverOpts{NoNATS: true})
	root := s.rootClient()
	tok := s.tokenWithPolicy("writer", `path "secret/*" { capabilities = ["create", "update", "read", "list"] }`)

	// Any user with kv write, through vault/api (which sends %FF%FE) and raw HTTP.
	_, err := s.client(tok).Logical().Write("secret/data/\xff\xfe", map[string]any{"data": map[string]any{"v": "x"}})
	if err == nil || !strings.Contains(err.Error(), "Code: 400") || !strings.Contains(err.Error(), "not valid UTF-8") {
		t.Errorf("PUT secret/data/%%FF%%FE (vault/api): %v; want a 400 saying the path is not valid UTF-8", err)
	}
	for _, p := range []string{"/v1/secret/data/%FF%FE", "/v1/secret/data/ok/%C3", "/v1/secret/data/%ED%A0%80"} {
		r := s.raw(http.MethodPut, p, tok, strings.NewReader(`{"data":{"v":"x"}}`))
		if r.code != http.StatusBadRequest || !strings.Contains(r.body, "not valid UTF-8") {
			t.Errorf("PUT %s: %d %s; want a 400 saying why", p, r.code, r.body)
		}
	}
	// Nothing was written.
	if sec, err := root.Logical().List("secret/metadata"); err != nil || sec != nil {
		t.Fatalf("LIST secret/metadata/ after the refused writes: %v %+v; want nothing: a key was written", err, sec)
	}
	// A UTF-8 key that is not ASCII is fine.
	if _, err := s.client(tok).Logical().Write("secret/data/clé-ü", map[string]any{"data": map[string]any{"v": "x"}}); err != nil {
		t.Fatalf("PUT a UTF-8 key: %v", err)
	}
}

func TestHTTPAttackKeyWithNUL(t *testing.T) {
	s := startDevServer(t, serverOpts{NoNATS: true})
	for _, p := range []string{"/v1/secret/data/a%00b", "/v1/secret/data/%00", "/v1/sys/policies/acl/p%00"} {
		r := s.raw(http.MethodPut, p, s.rootID, strings.NewReader(`{"data":{"v":"x"},"policy":"path \"x\" { capabilities = [\"read\"] }"}`))
		if r.code != http.StatusBadRequest || !strings.Contains(r.body, "NUL") {
			t.Errorf("PUT %s: %d %s; want a 400 naming the NUL", p, r.code, r.body)
		}
	}
	if sec, err := s.rootClient().Logical().List("secret/metadata"); err != nil || sec != nil {
		t.Fatalf("LIST secret/metadata/: %v %+v; want nothing", err, sec)
	}
}
