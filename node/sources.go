package node

import "github.com/prometheus/client_golang/prometheus"

// sourceCollector exports how each registry source's last sync went, as the view
// holds it (every node tells the same: the statuses are in etcd), for alerting on a
// source that went stale (Consul or a Kubernetes cluster unreachable, its last
// entries kept).
type sourceCollector struct{ n *Node }

var (
	sourceStaleDesc = prometheus.NewDesc("navarch_registry_source_stale",
		"1 when a registry source's last sync failed (its last known entries are served), 0 when it synced.", []string{"source"}, nil)
	sourceSyncDesc = prometheus.NewDesc("navarch_registry_source_last_sync_timestamp_seconds",
		"Unix time, in seconds, of a registry source's last successful sync.", []string{"source"}, nil)
)

func (c sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- sourceStaleDesc
	ch <- sourceSyncDesc
}

func (c sourceCollector) Collect(ch chan<- prometheus.Metric) {
	p := c.n.parts.Load()
	if p == nil {
		return // not started: no view yet
	}
	for name, st := range p.view.Sources() {
		stale := 0.0
		if st.Stale {
			stale = 1
		}
		ch <- prometheus.MustNewConstMetric(sourceStaleDesc, prometheus.GaugeValue, stale, name)
		if !st.LastSync.IsZero() {
			ch <- prometheus.MustNewConstMetric(sourceSyncDesc, prometheus.GaugeValue, float64(st.LastSync.UnixNano())/1e9, name)
		}
	}
}
