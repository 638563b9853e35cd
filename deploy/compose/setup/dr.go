package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
)

// DR replication of the compose topology: dc1 is also a DR primary, dr1 its
// DR secondary (docs/operations.md, "Failover drill").

const (
	pathDREnable    = "sys/replication/dr/primary/enable"
	pathDRToken     = "sys/replication/dr/primary/secondary-token"
	pathDRRevoke    = "sys/replication/dr/primary/revoke-secondary"
	pathDRSecEnable = "sys/replication/dr/secondary/enable"
	pathDRStatus    = "sys/replication/dr/status"

	// drActivateTimeout bounds one dr/secondary/enable call: it answers when
	// the first sync ends (or after activation_wait, with a warning).
	drActivateTimeout = 2 * time.Minute
)

// drStatus reads sys/replication/dr/status (served without a token).
func drStatus(cl *api.Client) (map[string]any, error) {
	s, err := cl.Logical().Read(pathDRStatus)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return nil, errors.New("empty DR replication status")
	}
	return s.Data, nil
}

// index reads a WAL index field of a status ("last_wal", "last_remote_wal").
func index(st map[string]any, field string) (uint64, error) {
	var n uint64
	switch v := st[field].(type) {
	case json.Number:
		i, err := v.Int64()
		if err != nil || i < 0 {
			return 0, fmt.Errorf("%s = %v: not a WAL index", field, v)
		}
		n = uint64(i)
	case float64:
		n = uint64(v)
	default:
		return 0, fmt.Errorf("no %s in the DR status %v", field, st)
	}
	return n, nil
}

// enableDRPrimary makes dc1 a DR primary unless it is one already.
func enableDRPrimary(P *api.Client) error {
	st, err := drStatus(P)
	if err != nil {
		return fmt.Errorf("dc1 DR replication status: %w", err)
	}
	if st["mode"] == "primary" {
		fmt.Println("dc1 is already a DR primary")
		return nil
	}
	fmt.Println("== enabling DR replication on dc1 (its batches carry a DR section from now on)")
	return retry("dc1 dr/primary/enable", 3*time.Minute, func() error {
		_, err := P.Logical().Write(pathDREnable, nil)
		if err == nil {
			return nil
		}
		if st, serr := drStatus(P); serr == nil && st["mode"] == "primary" {
			return nil
		}
		return err
	})
}

// activateDR makes d a DR secondary of P (id = d's name) unless it is one
// already, and waits until it streams.
func activateDR(P *api.Client, d cluster) error {
	tok, err := initialize(d, d.name+"-")
	if err != nil {
		return err
	}
	anon, err := d.client("")
	if err != nil {
		return err
	}
	isSecondary := func() bool {
		st, err := drStatus(anon)
		return err == nil && st["mode"] == "secondary"
	}
	if isSecondary() {
		fmt.Printf("%s is already a DR secondary of dc1\n", d.name)
		return waitDRStreaming(anon, d)
	}
	if st, err := drStatus(anon); err == nil && st["mode"] == "primary" {
		return fmt.Errorf("%s is a DR primary: it was promoted (a failover ran on this project), so the setup's topology no longer applies; start over with `down -v`, or carry on by hand (docs/operations.md, \"Failover drill\")", d.name)
	}
	D, err := d.client(tok)
	if err != nil {
		return err
	}
	D.SetClientTimeout(drActivateTimeout)
	fmt.Printf("== activating %s: dr/primary/secondary-token id=%s on dc1, dr/secondary/enable on %s\n", d.name, d.name, d.name)
	err = retry("activate DR secondary "+d.name, 3*time.Minute, func() error {
		// An earlier attempt whose answer was lost may have succeeded.
		if isSecondary() {
			return nil
		}
		w, err := P.Logical().Write(pathDRToken, map[string]any{"id": d.name})
		if err != nil && strings.Contains(err.Error(), "revoke") {
			// A token from an interrupted earlier run: revoke it, try again.
			if _, rerr := P.Logical().Write(pathDRRevoke, map[string]any{"id": d.name}); rerr != nil {
				return fmt.Errorf("revoke the stale %s DR token: %v (after %v)", d.name, rerr, err)
			}
			w, err = P.Logical().Write(pathDRToken, map[string]any{"id": d.name})
		}
		if err != nil {
			return fmt.Errorf("dr/primary/secondary-token id=%s: %w", d.name, err)
		}
		if w == nil || w.WrapInfo == nil || w.WrapInfo.Token == "" {
			return fmt.Errorf("dr/primary/secondary-token id=%s: no wrap_info.token", d.name)
		}
		if _, err := D.Logical().Write(pathDRSecEnable, map[string]any{"token": w.WrapInfo.Token, "primary_api_addr": primaryAPIAddr()}); err != nil {
			if isSecondary() {
				return nil
			}
			if _, rerr := P.Logical().Write(pathDRRevoke, map[string]any{"id": d.name}); rerr != nil {
				fmt.Printf("  revoke %s after a failed DR activation: %v\n", d.name, rerr)
			}
			return fmt.Errorf("dr/secondary/enable on %s: %w", d.name, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Printf("%s: activated as a DR secondary\n", d.name)
	return waitDRStreaming(anon, d)
}

// waitDRStreaming waits until the DR secondary streams WAL batches.
func waitDRStreaming(anon *api.Client, d cluster) error {
	return retry(d.name+" DR secondary streaming", 3*time.Minute, func() error {
		st, err := drStatus(anon)
		if err != nil {
			return err
		}
		if st["mode"] != "secondary" || st["state"] != "stream-wals" {
			return fmt.Errorf("DR status: mode %v, state %v, last_error %v", st["mode"], st["state"], st["last_error"])
		}
		return nil
	})
}

// drCaughtUp waits until d has applied everything dc1 committed so far.
func drCaughtUp(P *api.Client, d cluster) error {
	st, err := drStatus(P)
	if err != nil {
		return fmt.Errorf("dc1 DR replication status: %w", err)
	}
	want, err := index(st, "last_wal")
	if err != nil {
		return fmt.Errorf("dc1: %w", err)
	}
	anon, err := d.client("")
	if err != nil {
		return err
	}
	if err := retry(d.name+" applying dc1's WAL up to "+fmt.Sprint(want), 2*time.Minute, func() error {
		st, err := drStatus(anon)
		if err != nil {
			return err
		}
		got, err := index(st, "last_remote_wal")
		if err != nil {
			return err
		}
		if got < want {
			return fmt.Errorf("last_remote_wal %d", got)
		}
		return nil
	}); err != nil {
		return err
	}
	fmt.Printf("%s: replicated (DR)\n", d.name)
	return nil
}
