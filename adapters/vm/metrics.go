package vm

import "github.com/prometheus/client_golang/prometheus"

// Metrics counts a node's registrations, under istiod's names for its
// auto-registration.
type Metrics struct {
	success, updates, unregister, deletes, errors prometheus.Counter
	held                                          prometheus.Gauge
}

// NewMetrics creates the registrar's metrics and registers them with reg (none when
// reg is nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	m := &Metrics{
		success:    c("auto_registration_success_total", "Workloads registered (a WorkloadEntry written for a proxy that connected)."),
		updates:    c("auto_registration_updates_total", "Registered workloads' entries written again: health reports, disconnections, a new lease."),
		unregister: c("auto_registration_unregister_total", "Registered proxies that disconnected from this node."),
		deletes:    c("auto_registration_deletes_total", "Entries this node deleted a grace period after their proxy left."),
		errors:     c("auto_registration_errors_total", "Registrations refused or failed."),
		held: prometheus.NewGauge(prometheus.GaugeOpts{Name: "navarch_auto_registration_entries",
			Help: "WorkloadEntries this node holds for proxies connected to it or within their grace period."}),
	}
	if reg != nil {
		reg.MustRegister(m.success, m.updates, m.unregister, m.deletes, m.errors, m.held)
	}
	return m
}
