package security

// Finding 6 of issue 11, its first part: the activation's first sync ran
// under the HTTP request's context, so a client that gave up (vault/api's
// 60 s timeout, a closed connection) cancelled it. The activation now runs
// detached from the call: a client that hangs up at once still gets a
// complete activation.

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
)

func TestActivationSurvivesTheClientHangingUp(t *testing.T) {
	pri := startDevServer(t, serverOpts{Name: "dc1"})
	sec := startDevServer(t, serverOpts{Name: "dc2"})
	P := pri.rootClient()
	for i := range 50 {
		mustKVPut(t, P, fmt.Sprintf("k%02d", i), fmt.Sprintf("v%02d", i))
	}
	enablePrimary(t, pri)
	tok := secondaryToken(t, pri, "dc2")

	// The whole request, then the connection closes before any answer.
	conn, err := net.DialTimeout("tcp", sec.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf(`{"token":%q}`, tok)
	req := fmt.Sprintf("POST /v1/%s HTTP/1.1\r\nHost: %s\r\nX-Vault-Token: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		pathActivate, sec.addr, sec.rootID, len(body), body)
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}

	testutil.Eventually(t, replTimeout, "the secondary streaming after its client hung up", func() error {
		return stateIs(sec.addr, "stream-wals")
	})
	S := sec.client(pri.rootID) // the primary's dev root token came with the bundle
	for i := range 50 {
		waitKV(t, S, fmt.Sprintf("k%02d", i), fmt.Sprintf("v%02d", i))
	}
}
