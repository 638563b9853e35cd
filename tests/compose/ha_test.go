package compose

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
)

// The "active node down" fault (docs/operations.md): dc1 is two nodes,
// dc1a and dc1b, sharing a Consul path; the one holding the Consul lock is
// active, the other a standby that serves reads and forwards the rest. The
// active node's container is killed under a steady load of writes sent
// through the standby; the standby must take the lock over, acknowledge
// writes itself, lose none acknowledged before, and keep the secondaries
// converging; the killed node, started again, must come back as a standby.

const (
	// takeoverTimeout bounds the kill of the active node to the other one
	// active. The Consul agent's health check of the dead node's api_addr
	// fails within check_interval (1 s) and ends its session; the lock
	// delay (1 s) follows. A check that never failed would leave the
	// session_ttl (10 s) and its grace: still well within the bound.
	takeoverTimeout = 30 * time.Second
	// haLoadBefore and haLoadAfter are the writes acknowledged before the
	// kill and, sent after the takeover, before the writer stops.
	haLoadBefore = 50
	haLoadAfter  = 50
	haPrefix     = "ha/"
)

// dc1Nodes are the services of the primary cluster dc1's nodes.
var dc1Nodes = []string{"dc1a", "dc1b"}

// leaderInfo is sys/leader as a node of dc1 answers it.
type leaderInfo struct {
	HAEnabled     bool   `json:"ha_enabled"`
	IsSelf        bool   `json:"is_self"`
	LeaderAddress string `json:"leader_address"`
	PerfStandby   bool   `json:"performance_standby"`
}

// apiAddr is the api_addr of a node of dc1 (deploy/compose/dc1a.hcl).
func apiAddr(service string) string { return "http://" + service + ":8200" }

var haHTTP = &http.Client{Timeout: 2 * time.Second}

// leader reads sys/leader on a node (no token needed).
func (tp *topo) leader(service string) (leaderInfo, error) {
	var l leaderInfo
	resp, err := haHTTP.Get("http://" + tp.addr(service) + "/v1/sys/leader")
	if err != nil {
		return l, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return l, fmt.Errorf("sys/leader on %s: %s", service, resp.Status)
	}
	return l, json.NewDecoder(resp.Body).Decode(&l)
}

// healthCode is a node's sys/health status code (no query: 200 active, 473
// performance standby).
func (tp *topo) healthCode(service string) (int, error) {
	resp, err := haHTTP.Get("http://" + tp.addr(service) + "/v1/sys/health")
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// waitActive waits until exactly one of the given running nodes of dc1 says
// it is active and every other one names it as the leader; it returns it.
func (tp *topo) waitActive(timeout time.Duration, nodes ...string) string {
	tp.t.Helper()
	var active string
	waitUntil(tp.t, fmt.Sprintf("one active node among %v, named by the others", nodes), timeout, func() error {
		var actives []string
		ls := map[string]leaderInfo{}
		for _, n := range nodes {
			l, err := tp.leader(n)
			if err != nil {
				return err
			}
			if !l.HAEnabled {
				return fmt.Errorf("%s: sys/leader says ha_enabled false", n)
			}
			ls[n] = l
			if l.IsSelf {
				actives = append(actives, n)
			}
		}
		if len(actives) != 1 {
			return fmt.Errorf("active nodes %v", actives)
		}
		for n, l := range ls {
			if l.LeaderAddress != apiAddr(actives[0]) {
				return fmt.Errorf("%s names %q as the leader, not %s", n, l.LeaderAddress, apiAddr(actives[0]))
			}
		}
		active = actives[0]
		return nil
	})
	return active
}

// listKeys lists secret/metadata/<prefix> with c.
func listKeys(c *api.Client, prefix string) (map[string]bool, error) {
	s, err := c.Logical().List("secret/metadata/" + strings.TrimSuffix(prefix, "/"))
	if err != nil {
		return nil, err
	}
	present := map[string]bool{}
	if s == nil {
		return present, nil
	}
	keys, _ := s.Data["keys"].([]any)
	for _, k := range keys {
		present[prefix+fmt.Sprint(k)] = true
	}
	return present, nil
}

// missing lists the acknowledged writes absent from present.
func missing(ws []drillWrite, present map[string]bool) []string {
	var out []string
	for _, r := range ws {
		if r.acked && !present[seqKey(haPrefix, r.seq)] {
			out = append(out, fmt.Sprintf("%s (acknowledged %s)", seqKey(haPrefix, r.seq), r.done.Format(time.StampMilli)))
		}
	}
	return out
}

// activeNodeDown is the step ActiveNodeDown of TestComposeFaults.
func (tp *topo) activeNodeDown() {
	t := tp.t
	victim := tp.waitActive(replTimeout, dc1Nodes...)
	survivor := dc1Nodes[0]
	if survivor == victim {
		survivor = dc1Nodes[1]
	}
	for _, s := range []string{"dc2", "dc3"} {
		tp.addr(s) // resolved before the kill: the timeline measures Coffer
	}
	t.Logf("%s is active, %s a standby: writing through %s (forwarded), then killing %s", victim, survivor, survivor, victim)

	w := newWriter("http://"+tp.addr(survivor), tp.rootTok, haPrefix)
	w.start()
	halted := false
	halt := func() {
		if !halted {
			halted = true
			w.halt()
		}
	}
	defer halt()
	waitUntil(t, fmt.Sprintf("%d writes through the standby %s acknowledged", haLoadBefore, survivor), replTimeout, func() error {
		if n := w.ackedCount(); n < haLoadBefore {
			return fmt.Errorf("%d acknowledged: %s", n, lastErr(w.snapshot()))
		}
		return nil
	})

	id := tp.container(victim)
	if _, err := tp.run(cmdTimeout, "docker", "kill", id); err != nil {
		t.Fatal(err)
	}
	killAt := time.Now()
	restarted := false
	defer func() {
		if !restarted {
			_, _ = tp.composeOut("start", victim)
		}
	}()
	tp.forget(victim)
	if got := tp.waitActive(takeoverTimeout, survivor); got != survivor {
		t.Fatalf("active after the kill: %s, want %s", got, survivor)
	}
	takeoverAt := time.Now()
	t.Logf("%s active %.2fs after %s was killed", survivor, takeoverAt.Sub(killAt).Seconds(), victim)

	waitUntil(t, fmt.Sprintf("%d writes through %s sent after the takeover acknowledged", haLoadAfter, survivor), replTimeout, func() error {
		if n := w.ackedSentAfter(takeoverAt); n < haLoadAfter {
			return fmt.Errorf("%d acknowledged: %s", n, lastErr(w.snapshot()))
		}
		return nil
	})
	first, _ := w.firstAckSentAfter(killAt)
	halt()
	tp.checkNoLoss(w.snapshot(), survivor, killAt, first)

	tp.mustCompose("start", victim)
	restarted = true
	tp.forget(victim)
	tp.waitStandby(victim, survivor)
}

// checkNoLoss checks that every acknowledged write is on dc1 (through the
// survivor) and reaches dc2 and dc3.
func (tp *topo) checkNoLoss(ws []drillWrite, survivor string, killAt time.Time, first drillWrite) {
	t := tp.t
	acked, failed := 0, map[string]int{}
	var failures []string
	for _, r := range ws {
		if r.acked {
			acked++
			continue
		}
		failed[failureKind(r)]++
		failures = append(failures, fmt.Sprintf("\n  write %d sent %+.2fs, answered %+.2fs: %s: %s",
			r.seq, r.sent.Sub(killAt).Seconds(), r.done.Sub(killAt).Seconds(), failureKind(r), r.err))
	}
	if n := len(failures); n > maxListed {
		// The first and the last ones: how the gap began and how it ended.
		more := fmt.Sprintf("\n  ... %d more ...", n-maxListed)
		failures = append(append(failures[:maxListed/2:maxListed/2], more), failures[n-maxListed/2:]...)
	}
	t.Logf("writes: %d acknowledged; first write sent after the kill and acknowledged: %s, sent %+.2fs, answered %+.2fs; not acknowledged %v (outcome unknown: not checked):%s",
		acked, seqKey(haPrefix, first.seq), first.sent.Sub(killAt).Seconds(), first.done.Sub(killAt).Seconds(), failed, strings.Join(failures, ""))
	present, err := listKeys(tp.client(survivor, tp.rootTok), haPrefix)
	if err != nil {
		t.Fatalf("list secret/metadata/%s through %s: %v", haPrefix, survivor, err)
	}
	if lost := missing(ws, present); len(lost) > 0 {
		t.Fatalf("%d acknowledged writes lost by the takeover (absent on dc1 through %s): %s", len(lost), survivor, strings.Join(lost, ", "))
	}
	for _, s := range []string{"dc2", "dc3"} {
		waitUntil(t, fmt.Sprintf("%s holds all %d acknowledged writes", s, acked), replTimeout, func() error {
			c, err := tp.S(s)
			if err != nil {
				return err
			}
			present, err := listKeys(c, haPrefix)
			if err != nil {
				return err
			}
			if lost := missing(ws, present); len(lost) > 0 {
				return fmt.Errorf("%d missing, the first %s", len(lost), lost[0])
			}
			return nil
		})
	}
	t.Logf("no acknowledged write lost; dc2 and dc3 hold all %d, those acknowledged after the takeover included", acked)
}

// waitStandby waits until the restarted node is a performance standby of
// the active one, then writes through it (forwarded) and reads the write
// on dc2.
func (tp *topo) waitStandby(node, active string) {
	t := tp.t
	waitUntil(t, node+" back as a standby of "+active, replTimeout, func() error {
		l, err := tp.leader(node)
		if err != nil {
			return err
		}
		if l.IsSelf || !l.PerfStandby || l.LeaderAddress != apiAddr(active) {
			return fmt.Errorf("sys/leader %+v", l)
		}
		code, err := tp.healthCode(node)
		if err != nil {
			return err
		}
		if code != 473 {
			return fmt.Errorf("sys/health %d, want 473 (performance standby)", code)
		}
		return nil
	})
	if got := tp.waitActive(replTimeout, dc1Nodes...); got != active {
		t.Fatalf("active after %s came back: %s, want %s (the lock stays where it is)", node, got, active)
	}
	v := "via-" + node + "-standby"
	if err := kvPut(tp.client(node, tp.rootTok), "ha-back", v); err != nil {
		t.Fatalf("write through %s, back as a standby: %v", node, err)
	}
	tp.waitKV("dc2", "ha-back", v)
	t.Logf("%s back as a standby; a write through it reached dc2", node)
}
