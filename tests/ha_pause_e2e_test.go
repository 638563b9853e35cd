package tests

// An active node frozen past its session (SIGSTOP) and resumed: the other
// node took over meanwhile, and the resumed node writes nothing: the storage
// refuses its writes (the lock's session is checked inside each Consul
// transaction), it becomes a standby, and a write sent to it is either
// refused or served by the new active node, never applied by it.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/cofferhq/coffer/storage/consul/consultest"
	"github.com/hashicorp/vault/api"
)

func TestHAPausedActiveNodeWritesNothing(t *testing.T) {
	agent := consultest.Start(t)
	c := newHACluster(t, agent, 2, "coffer-ha-pause/", serverConfig{})
	old := c.initHA(0)
	root := client(t, c.nodes[old].addr, c.root)
	if err := root.Sys().Mount("secret", &api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatal(err)
	}
	kvPut(t, root, "secret", "k", map[string]any{"v": "before"})

	signal(t, c.procs[old], syscall.SIGSTOP)
	paused := time.Now()
	other := c.waitActive(haTimeout, old)
	t.Logf("node %d took over %s after node %d was frozen", other, time.Since(paused).Round(10*time.Millisecond), old)
	next := client(t, c.nodes[other].addr, c.root)
	kvPut(t, next, "secret", "k", map[string]any{"v": "by-new-active"})

	// A write queued at the frozen node: the kernel holds the request in
	// its socket until it resumes.
	conn, err := net.Dial("tcp", c.nodes[old].addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req, err := http.NewRequest(http.MethodPut, "http://"+c.nodes[old].addr+"/v1/secret/data/k",
		strings.NewReader(`{"data":{"v":"by-old-active"}}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Vault-Token", c.root)
	if err := req.Write(conn); err != nil {
		t.Fatalf("send the write to the frozen node: %v", err)
	}
	signal(t, c.procs[old], syscall.SIGCONT)
	if err := conn.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		t.Fatalf("the resumed node did not answer the queued write: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	testutil.Eventually(t, haTimeout, "the resumed node is a standby", func() error {
		l, err := leaderOf(c.nodes[old].addr)
		if err != nil {
			return err
		}
		if l.IsSelf || l.LeaderAddress != "http://"+c.nodes[other].addr {
			return fmt.Errorf("node %d: %+v", old, l)
		}
		return nil
	})
	if len(c.actives()) != 1 {
		t.Fatalf("active nodes after the resume: %v", c.actives())
	}
	got, err := kvData(next, "secret", "k")
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case resp.StatusCode == http.StatusOK && got["v"] == "by-old-active":
		// Served after the resumed node knew it was a standby: forwarded
		// to the new active node, which applied it.
	case resp.StatusCode == http.StatusServiceUnavailable && got["v"] == "by-new-active":
		// Refused: the resumed node's write was refused by the storage.
	default:
		t.Fatalf("write to the resumed node: %s %s; value on the active node %q", resp.Status, body, got["v"])
	}
	out := c.procs[old].out.String()
	if !strings.Contains(out, "lost the HA lock") {
		t.Fatalf("the resumed node never logged that it lost the lock:\n%s", out)
	}
	t.Logf("write sent to the resumed node: %s %s", resp.Status, strings.TrimSpace(string(body)))
}
