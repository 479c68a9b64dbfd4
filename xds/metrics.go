package xds

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the xDS server's Prometheus metrics. Where an istiod (pilot) metric means
// the same thing it has the same name (and, but for finer buckets where navarch's
// times are shorter, the same labels and buckets), so Istio's control plane
// dashboard and alerts work.
type Metrics struct {
	pushes       *prometheus.CounterVec   // pilot_xds_pushes{type}
	pushTime     *prometheus.HistogramVec // pilot_xds_push_time{type}
	configSize   *prometheus.HistogramVec // pilot_xds_config_size_bytes{type}
	triggers     *prometheus.CounterVec   // pilot_push_triggers{type}
	debounceTime prometheus.Histogram     // pilot_debounce_time
	snapshotTime prometheus.Histogram     // pilot_pushcontext_init_seconds
	queueTime    prometheus.Histogram     // pilot_proxy_queue_time
	expiredNonce *prometheus.CounterVec   // pilot_xds_expired_nonce{type}
	convergence  prometheus.Histogram     // pilot_proxy_convergence_time
	rejects      *prometheus.CounterVec   // pilot_total_xds_rejects{type}
	connected    prometheus.Gauge         // pilot_xds
	services     prometheus.Gauge         // pilot_services
	virtual      prometheus.Gauge         // pilot_virt_services
	buildTime    prometheus.Histogram     // navarch_xds_build_seconds
	buildErrors  prometheus.Counter       // pilot_total_xds_internal_errors
	sent         *prometheus.CounterVec   // navarch_xds_resources_sent_total{type}
	classes      prometheus.Gauge         // navarch_xds_proxy_classes
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pilot_xds_pushes", Help: "xDS responses sent, by type (lds, rds, cds, eds, sds).",
		}, []string{"type"}),
		pushTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pilot_xds_push_time",
			Help:    "Seconds to put together and send one xDS response, by type.",
			Buckets: []float64{.001, .01, .1, 1, 3, 5, 10, 20, 30},
		}, []string{"type"}),
		configSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pilot_xds_config_size_bytes",
			Help:    "Bytes of the resources of one xDS response, by type URL.",
			Buckets: []float64{1, 10000, 1000000, 4000000, 10000000, 40000000},
		}, []string{"type"}),
		triggers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pilot_push_triggers", Help: "Pushes, by what changed (config, service, endpoint, global); a push of several changes counts once for each.",
		}, []string{"type"}),
		debounceTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pilot_debounce_time",
			Help:    "Seconds from the first change of a push to its streams being queued for it (batching, the snapshot and the builds).",
			Buckets: []float64{.001, .01, .1, 1, 3, 5, 10, 20, 30},
		}),
		snapshotTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pilot_pushcontext_init_seconds",
			Help:    "Seconds to index the registry and configuration for a push (the snapshot).",
			Buckets: []float64{.001, .01, .1, 0.5, 1, 3, 5},
		}),
		queueTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pilot_proxy_queue_time",
			Help:    "Seconds a stream waits for a push worker.",
			Buckets: []float64{.001, .01, .1, .5, 1, 3, 5, 10, 20, 30},
		}),
		expiredNonce: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pilot_xds_expired_nonce", Help: "Requests that answer a response older than the stream's last (ignored), by type.",
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
		services: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pilot_services", Help: "Services in the registry (of every source) at the last push.",
		}),
		virtual: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pilot_virt_services", Help: "VirtualServices at the last push.",
		}),
		buildTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "navarch_xds_build_seconds",
			Help:    "Seconds to build the resources of one proxy class.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 12),
		}),
		buildErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pilot_total_xds_internal_errors", Help: "Builds of a proxy class that left resources out because they could not be built or failed validation.",
		}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "navarch_xds_resources_sent_total", Help: "Resources sent to proxies, by type.",
		}, []string{"type"}),
		classes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "navarch_xds_proxy_classes", Help: "Distinct proxy classes with connected proxies (each is built once per push).",
		}),
	}
	reg.MustRegister(m.pushes, m.pushTime, m.configSize, m.triggers, m.debounceTime, m.snapshotTime, m.queueTime, m.expiredNonce, m.convergence, m.rejects, m.connected,
		m.services, m.virtual, m.buildTime, m.buildErrors, m.sent, m.classes)
	return m
}
