package xds

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the xDS server's Prometheus metrics. Where an istiod (pilot) metric means
// the same thing it has the same name, so existing dashboards work.
type Metrics struct {
	pushes      *prometheus.CounterVec // pilot_xds_pushes{type}
	convergence prometheus.Histogram   // pilot_proxy_convergence_time
	rejects     *prometheus.CounterVec // pilot_total_xds_rejects{type}
	connected   prometheus.Gauge       // pilot_xds
	buildTime   prometheus.Histogram   // navarch_xds_build_seconds
	buildErrors prometheus.Counter     // navarch_xds_build_errors_total
	sent        *prometheus.CounterVec // navarch_xds_resources_sent_total{type}
	classes     prometheus.Gauge       // navarch_xds_proxy_classes
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pilot_xds_pushes", Help: "xDS responses sent, by type (lds, rds, cds, eds, sds).",
		}, []string{"type"}),
		convergence: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pilot_proxy_convergence_time",
			Help:    "Seconds from a change reaching this node to its push being sent to a proxy.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		rejects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pilot_total_xds_rejects", Help: "Responses proxies rejected (NACKs), by type.",
		}, []string{"type"}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pilot_xds", Help: "Connected xDS streams.",
		}),
		buildTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "navarch_xds_build_seconds",
			Help:    "Seconds to build the resources of one proxy class.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 12),
		}),
		buildErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "navarch_xds_build_errors_total", Help: "Resources left out of a build because they could not be built or failed validation.",
		}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "navarch_xds_resources_sent_total", Help: "Resources sent to proxies, by type.",
		}, []string{"type"}),
		classes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "navarch_xds_proxy_classes", Help: "Distinct proxy classes with connected proxies (each is built once per push).",
		}),
	}
	reg.MustRegister(m.pushes, m.convergence, m.rejects, m.connected, m.buildTime, m.buildErrors, m.sent, m.classes)
	return m
}
