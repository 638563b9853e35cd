package replmode

import (
	"time"

	"github.com/cofferhq/coffer/primary"
	"github.com/cofferhq/coffer/secondary"
)

// Status renders sys/replication/performance/status with Vault's fields.
func (m *Manager) Status() map[string]any {
	m.mu.RLock()
	defer m.mu.RUnlock()
	st := map[string]any{
		"mode":       string(Disabled),
		"cluster_id": m.host.ClusterID(),
		"last_wal":   m.host.WAL().LastIndex(),
	}
	if x := m.host.Merkle(); x != nil {
		st["merkle_root"] = x.RootHex()
	}
	switch {
	case m.drMode == Secondary:
		// A DR secondary has no performance mode.
		delete(st, "last_wal")
	case m.primary != nil && m.mode == Primary:
		m.primaryStatus(st, "")
	case m.secondary != nil:
		m.secondaryStatus(st)
	case m.boot != nil && !m.boot.rec.DR:
		m.bootstrapStatus(st)
	case m.mode == Secondary && m.starting == nil:
		// Demoted: waiting for update-primary.
		st["mode"] = string(Secondary)
		st["state"] = "demoted"
		st["last_error"] = "this former primary waits for a new primary: sys/replication/performance/secondary/update-primary with a token from it"
	case m.starting != nil:
		// The stored role is retrying its start (NATS down at unseal).
		st["mode"] = string(m.mode)
		st["state"] = "connecting"
		st["last_error"] = m.startErr
	default:
		delete(st, "last_wal")
	}
	m.commonFields(st)
	m.reindexStatus(st)
	return st
}

// bootstrapStatus: an activation that has not completed (the data is being
// replaced, or waits for a retry).
func (m *Manager) bootstrapStatus(st map[string]any) {
	b := m.boot
	st["mode"] = string(Secondary)
	st["state"] = "bootstrapping"
	st["secondary_id"] = b.rec.SecondaryID
	st["bootstrap"] = map[string]any{
		"phase": map[bool]string{true: phaseRunning, false: phaseFailed}[b.running()], "started": fmtTime(b.rec.Started),
		"primary_cluster_id": b.rec.PrimaryClusterID,
	}
	if b.sec != nil {
		ss := b.sec.Status()
		st["merkle_sync_progress"] = map[string]any{"sync_progress": ss.SyncKeysDone, "sync_total_keys": ss.SyncTotalKeys}
		if ss.LastError != "" {
			st["last_error"] = ss.LastError
		}
	}
	if b.rec.Error != "" {
		st["last_error"] = b.rec.Error
	}
}

// DRStatus renders sys/replication/dr/status with Vault's fields.
func (m *Manager) DRStatus() map[string]any {
	m.mu.RLock()
	defer m.mu.RUnlock()
	st := map[string]any{"mode": string(Disabled), "cluster_id": m.host.ClusterID()}
	if x := m.host.Merkle(); x != nil {
		st["merkle_root"] = x.RootHex() // as Vault's DR status: the replicated keys' root
	}
	switch {
	case m.drMode == Primary && m.primary != nil:
		st["last_wal"] = m.host.WAL().LastIndex()
		m.primaryStatus(st, primary.KindDR)
	case m.drMode == Secondary && m.drSecondary != nil:
		st["last_wal"] = m.host.WAL().LastIndex()
		m.followerStatus(st, m.drSecondary)
	case m.drMode == Secondary && m.boot != nil:
		m.bootstrapStatus(st)
	case m.drMode == Secondary:
		st["mode"] = string(Secondary)
		st["state"] = "demoted"
		st["last_error"] = "this former DR primary waits for a new primary: sys/replication/dr/secondary/update-primary with a DR token from it"
	case m.boot != nil && m.boot.rec.DR:
		m.bootstrapStatus(st)
	}
	m.commonFields(st)
	return st
}

func (m *Manager) primaryStatus(st map[string]any, kind string) {
	ps := m.primary.Status()
	st["mode"] = string(Primary)
	st["state"] = "running"
	switch ps.ClaimState {
	case primary.ClaimClaiming:
		st["state"] = "claiming"
		st["claim_reason"] = ps.ClaimWhy
	case primary.ClaimFenced:
		st["state"] = "fenced"
		st["fenced_reason"] = ps.ClaimWhy
		st["set_holder"] = ps.Holder
		st["set_holder_api_addr"] = ps.HolderAPIAddr
	}
	st["generation"] = ps.Generation
	if ps.ClaimError != "" {
		st["claim_error"] = ps.ClaimError
	}
	st["foreign_claims"] = ps.ForeignClaims
	st["primary_cluster_addr"] = m.clusterAddr
	st["last_reindex_epoch"] = m.lastReindexEpoch()
	secs := []map[string]any{}
	var known []string
	for _, s := range ps.Secondaries {
		if s.State == "revoked" || s.Kind != kind {
			continue
		}
		known = append(known, s.ID)
		e := map[string]any{
			"node_id":           s.ID,
			"api_address":       s.APIAddr,
			"cluster_address":   m.clusterAddr,
			"connection_status": connection(s.Connected),
			"last_heartbeat":    fmtTime(s.LastHeartbeat),
			"last_remote_wal":   s.LastRemoteWAL,
			"state":             s.State,
		}
		secondaryFields(e, s, ps.LastWAL)
		secs = append(secs, e)
	}
	st["known_secondaries"] = known
	st["secondaries"] = secs
	st["last_shipped_wal"] = ps.ShippedIndex
	st["wal_stream_repairs"] = ps.StreamRepairs
	if ps.LastStreamRepair != "" {
		st["last_wal_stream_repair"] = ps.LastStreamRepair
		st["last_wal_stream_repair_time"] = fmtTime(ps.LastStreamRepairAt)
	}
	st["foreign_duplicates"] = ps.ForeignDuplicates
	if ps.ShipError != "" {
		st["ship_error"] = ps.ShipError
		st["ship_error_since"] = fmtTime(ps.ShipErrorSince)
	}
}

func (m *Manager) secondaryStatus(st map[string]any) { m.followerStatus(st, m.secondary) }

// followerStatus renders a running secondary, performance or DR.
func (m *Manager) followerStatus(st map[string]any, s *secondary.Secondary) {
	ss := s.Status()
	st["mode"] = string(Secondary)
	st["state"] = string(ss.State)
	st["secondary_id"] = ss.SecondaryID
	if ss.FilterID != "" {
		st["paths_filter_id"] = ss.FilterID
	}
	st["last_remote_wal"] = ss.LastRemoteWAL
	st["generation"] = ss.Generation
	st["primary_cluster_addr"] = m.clusterAddr
	st["known_primary_cluster_addrs"] = []string{m.clusterAddr}
	st["connection_state"] = map[bool]string{true: "ready", false: "transient_failure"}[ss.Connected]
	api := m.primaryAPI
	if ss.PrimaryAPIAddr != "" {
		api = ss.PrimaryAPIAddr // as the primary's heartbeats say: its active node's
	}
	prim := map[string]any{
		"api_address":       api,
		"cluster_address":   m.clusterAddr,
		"connection_status": connection(ss.Connected),
		"last_heartbeat":    fmtTime(ss.LastHeartbeat),
	}
	followerFields(st, prim, ss)
	st["primaries"] = []map[string]any{prim}
	switch ss.State {
	case secondary.StateSync, secondary.StateMerkleDiff, secondary.StateMerkleSync:
		st["merkle_sync_progress"] = map[string]any{"sync_progress": ss.SyncKeysDone, "sync_total_keys": ss.SyncTotalKeys}
	default:
		// What the last sync (since this process started) wrote or deleted.
		st["last_sync_keys"] = ss.SyncKeysDone
	}
	if ss.LastError != "" {
		st["last_error"] = ss.LastError
	}
	m.followerExtras(st, s)
}

func connection(ok bool) string {
	if ok {
		return "connected"
	}
	return "disconnected"
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}
