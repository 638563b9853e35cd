package replmode

import (
	"github.com/cofferhq/coffer/telemetry"
)

// CollectMetrics sets the replication gauges at a scrape (telemetry.OnScrape):
// the WAL's last index; on a primary what it shipped and, per secondary, how
// far behind that secondary is in entries and seconds as its heartbeats say;
// on a secondary its last_remote_wal and its own lag.
func (m *Manager) CollectMetrics(r *telemetry.Registry) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	last := m.host.WAL().LastIndex()
	r.SetGauge(telemetry.NameLastWAL, float64(last))
	if m.primary != nil && m.mode == Primary {
		ps := m.primary.Status()
		r.SetGauge(telemetry.NameLastShippedWAL, float64(ps.ShippedIndex))
		for _, s := range ps.Secondaries {
			if s.State == "revoked" {
				continue
			}
			id := telemetry.Label{Name: "secondary", Value: s.ID}
			r.SetGauge(telemetry.NameSecondaryLagEntries, float64(behind(ps.LastWAL, s.LastRemoteWAL)), id)
			r.SetGauge(telemetry.NameSecondaryLagSeconds, s.Lag.Seconds(), id)
		}
	}
	if sec := m.secondary; sec != nil {
		ss := sec.Status()
		r.SetGauge(telemetry.NameLastRemoteWAL, float64(ss.LastRemoteWAL))
		r.SetGauge(telemetry.NameLagEntries, float64(behind(ss.PrimaryLastWAL, ss.LastRemoteWAL)))
		r.SetGauge(telemetry.NameLagSeconds, ss.Lag.Seconds())
	}
}

func behind(primary, applied uint64) uint64 {
	if primary > applied {
		return primary - applied
	}
	return 0
}
