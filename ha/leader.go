package ha

import (
	"encoding/json"
	"fmt"
	"time"
)

// leaderVersion is the version of the record a node stores in the lock.
const leaderVersion = 1

// leaderRecord is the value of the HA lock while a node holds it: who the
// active node is and how to reach it. JSON, {"v":1,...}; a reader refuses
// other versions rather than guess.
type leaderRecord struct {
	V           int       `json:"v"`
	Node        string    `json:"node"`
	APIAddr     string    `json:"api_addr"`
	ClusterAddr string    `json:"cluster_addr,omitempty"`
	Since       time.Time `json:"since"`
}

func encodeLeader(r leaderRecord) []byte {
	r.V = leaderVersion
	b, _ := json.Marshal(r)
	return b
}

func decodeLeader(b []byte) (leaderRecord, error) {
	var r leaderRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("ha: the lock's value is not a leader record: %w", err)
	}
	if r.V != leaderVersion {
		return r, fmt.Errorf("ha: leader record version %d, this node reads version %d: run one Coffer version across the cluster's nodes", r.V, leaderVersion)
	}
	return r, nil
}
