package kubernetes

import "github.com/prometheus/client_golang/prometheus"

// Metrics count the changes the adapters' informers see, under istiod's names:
// pilot_k8s_reg_events{type,event} for the registry's objects (type Services, Pods,
// Nodes, Namespaces, EndpointSlice) and pilot_k8s_cfg_events{type,event} for Istio's
// configuration (type its kind); event add, update, updatesame (an update of
// nothing the translation reads, which wakes nothing) or delete. Only the node that
// syncs a cluster counts its changes.
type Metrics struct {
	reg, cfg *prometheus.CounterVec
}

// NewMetrics registers the adapters' metrics with reg; every adapter of a node
// shares them.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	labels := []string{"type", "event"}
	m := &Metrics{
		reg: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pilot_k8s_reg_events", Help: "Changes of Kubernetes objects the registry follows, by type and event."}, labels),
		cfg: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pilot_k8s_cfg_events", Help: "Changes of a Kubernetes cluster's Istio configuration, by kind and event."}, labels),
	}
	reg.MustRegister(m.reg, m.cfg)
	return m
}

func (m *Metrics) regVec() *prometheus.CounterVec {
	if m == nil {
		return nil
	}
	return m.reg
}

func (m *Metrics) cfgVec() *prometheus.CounterVec {
	if m == nil {
		return nil
	}
	return m.cfg
}

// events counts the changes of one informer's objects (none if vec is nil).
type events struct {
	add, update, same, del prometheus.Counter
}

func newEvents(vec *prometheus.CounterVec, typ string) events {
	if vec == nil {
		return events{}
	}
	return events{vec.WithLabelValues(typ, "add"), vec.WithLabelValues(typ, "update"),
		vec.WithLabelValues(typ, "updatesame"), vec.WithLabelValues(typ, "delete")}
}

func inc(c prometheus.Counter) {
	if c != nil {
		c.Inc()
	}
}
