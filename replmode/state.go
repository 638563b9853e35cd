package replmode

import (
	"context"

	"github.com/cofferhq/coffer/replication"
	"github.com/cofferhq/coffer/storage"
)

// The stored mode, under the barrier at core/replication/mode (class
// ignored: never shipped), a replication.StateRecord:
//
//	{"v":1, "mode":"primary"|"secondary", "secondary_id":"...",
//	 "primary_cluster_addr":"nats://...", "primary_api_addr":"http://...",
//	 "demoted":true (a former primary waiting for update-primary)}
//
// The key, "v" and the field names are part of the format: a change old
// servers cannot read takes a new version. No entry means disabled.
const stateVersion = 1

type state struct {
	V                  int    `json:"v"`
	Mode               string `json:"mode"`
	SecondaryID        string `json:"secondary_id,omitempty"`
	PrimaryClusterAddr string `json:"primary_cluster_addr,omitempty"`
	PrimaryAPIAddr     string `json:"primary_api_addr,omitempty"`
	// Demoted: a former primary waiting for update-primary (mode secondary,
	// no primary to follow yet).
	Demoted bool `json:"demoted,omitempty"`
	// DRMode is the DR mode ("primary", "secondary"; absent: disabled).
	// A DR secondary's other fields describe its primary, as a performance
	// secondary's do.
	DRMode string `json:"dr_mode,omitempty"`
}

var stateRecord = replication.StateRecord[state]{Key: "core/replication/mode", Version: stateVersion, Name: "replication mode"}

func loadState(ctx context.Context, b storage.Backend) (state, bool, error) {
	st, err := stateRecord.Load(ctx, b)
	if err != nil || st == nil {
		return state{}, false, err
	}
	return *st, true, nil
}

func saveState(ctx context.Context, b storage.Backend, st state) error {
	st.V = stateVersion
	return stateRecord.Save(ctx, b, &st)
}

func deleteState(ctx context.Context, b storage.Backend) error {
	return b.Delete(ctx, stateRecord.Key)
}
