package replmode

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/cofferhq/coffer/storage"
)

// The stored mode, under the barrier at core/replication/mode (class
// ignored: never shipped):
//
//	{"v":1, "mode":"primary"|"secondary", "secondary_id":"...",
//	 "primary_cluster_addr":"nats://...", "primary_api_addr":"http://..."}
//
// "v" is part of the format: a change old servers cannot ignore takes a new
// version. No entry means disabled.
const (
	statePath    = "core/replication/mode"
	stateVersion = 1
)

type state struct {
	V                  int    `json:"v"`
	Mode               string `json:"mode"`
	SecondaryID        string `json:"secondary_id,omitempty"`
	PrimaryClusterAddr string `json:"primary_cluster_addr,omitempty"`
	PrimaryAPIAddr     string `json:"primary_api_addr,omitempty"`
}

func loadState(ctx context.Context, b storage.Backend) (state, bool, error) {
	var st state
	e, err := b.Get(ctx, statePath)
	if err != nil || e == nil {
		return st, false, err
	}
	if err := json.Unmarshal(e.Value, &st); err != nil {
		return st, true, fmt.Errorf("decode %s: %w", statePath, err)
	}
	return st, true, nil
}

func saveState(ctx context.Context, b storage.Backend, st state) error {
	st.V = stateVersion
	buf, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return b.Put(ctx, &storage.Entry{Key: statePath, Value: buf})
}

func deleteState(ctx context.Context, b storage.Backend) error {
	return b.Delete(ctx, statePath)
}
