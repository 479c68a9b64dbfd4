package agent

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// registrationStatus is what the registration loop has done, for the status server.
type registrationStatus struct {
	mu           sync.Mutex
	registering  bool      // Register runs
	server       string    // the node the registration is held with; "" while none
	since        time.Time // when it was accepted there
	lastErr      string    // why the last stream ended
	health       probeResult
	probe        string
	names        int
	tableVersion string
}

func (s *registrationStatus) update(f func(*registrationStatus)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

// Status is the agent's state as its status server shows it (GET /debug/status).
type Status struct {
	// Ready is what /healthz/ready answers: the workload holds a valid certificate
	// and, when the agent registers it, a node has accepted the registration.
	Ready  bool   `json:"ready"`
	Reason string `json:"reason,omitempty"` // why it is not
	// Identity and CertificateExpires are the certificate's in the output directory.
	Identity           string    `json:"identity,omitempty"`
	CertificateExpires time.Time `json:"certificate_expires,omitzero"`
	// RegisteredWith is the node (its TLS address) holding the registration, since
	// RegisteredSince; LastError is why the stream before ended.
	RegisteredWith  string    `json:"registered_with,omitempty"`
	RegisteredSince time.Time `json:"registered_since,omitzero"`
	LastError       string    `json:"last_error,omitempty"`
	// WorkloadHealthy is the probe's last result (and HealthMessage why it failed),
	// as the registration reports it; Probe the probe run (none: always healthy).
	WorkloadHealthy *bool  `json:"workload_healthy,omitempty"`
	HealthMessage   string `json:"health_message,omitempty"`
	Probe           string `json:"probe,omitempty"`
	// Names and NameTableVersion are the DNS proxy's table.
	Names            int    `json:"names,omitempty"`
	NameTableVersion string `json:"name_table_version,omitempty"`
}

// Status returns the agent's state now. The certificate is read from the output
// directory, as the registration reads it.
func (a *Agent) Status() Status {
	var st Status
	now := time.Now()
	certs, err := Load(a.cfg.OutDir)
	switch {
	case err != nil:
		st.Reason = "no certificate: " + err.Error()
	case !certs.Valid(now):
		st.Identity, st.CertificateExpires = certs.Identity, certs.Leaf().NotAfter
		st.Reason = fmt.Sprintf("the certificate is not valid now (valid %s to %s)", certs.Leaf().NotBefore.UTC().Format(time.RFC3339), st.CertificateExpires.UTC().Format(time.RFC3339))
	default:
		st.Identity, st.CertificateExpires = certs.Identity, certs.Leaf().NotAfter
	}
	a.reg.update(func(r *registrationStatus) {
		if !r.registering {
			return
		}
		st.RegisteredWith, st.RegisteredSince, st.LastError = r.server, r.since, r.lastErr
		healthy := r.health.healthy
		st.WorkloadHealthy, st.HealthMessage, st.Probe = &healthy, r.health.message, r.probe
		st.Names, st.NameTableVersion = r.names, r.tableVersion
		if st.Reason == "" && r.server == "" {
			st.Reason = "not registered with a node"
			if r.lastErr != "" {
				st.Reason += ": " + r.lastErr
			}
		}
	})
	st.Ready = st.Reason == ""
	return st
}

// StatusHandler serves the agent's status, as istio-agent's status port (15020)
// does for its proxy: GET /healthz/ready answers 200 when the agent is Ready and 503
// with the reason otherwise (a VM's health check, a load balancer's); GET
// /debug/status is Status as JSON; GET /metrics the same as Prometheus gauges.
func (a *Agent) StatusHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(statusCollector{a})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz/ready", func(w http.ResponseWriter, _ *http.Request) {
		st := a.Status()
		if !st.Ready {
			http.Error(w, st.Reason, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("GET /debug/status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(a.Status())
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}

// statusCollector is the agent's Status as gauges, read once per scrape.
type statusCollector struct{ a *Agent }

var statusGauges = struct{ ready, expiry, healthy, names *prometheus.Desc }{
	ready:   prometheus.NewDesc("navarch_agent_ready", "1 when the workload holds a valid certificate and is registered (when the agent registers it).", nil, nil),
	expiry:  prometheus.NewDesc("navarch_agent_certificate_expiry_timestamp_seconds", "When the workload's certificate expires (Unix time; 0 without one).", nil, nil),
	healthy: prometheus.NewDesc("navarch_agent_workload_healthy", "1 while the workload passes its readiness probe (or has none).", nil, nil),
	names:   prometheus.NewDesc("navarch_agent_dns_names", "Names in the DNS proxy's table.", nil, nil),
}

func (statusCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- statusGauges.ready
	ch <- statusGauges.expiry
	ch <- statusGauges.healthy
	ch <- statusGauges.names
}

func (c statusCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.a.Status()
	flag := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	expiry := 0.0
	if !st.CertificateExpires.IsZero() {
		expiry = float64(st.CertificateExpires.Unix())
	}
	ch <- prometheus.MustNewConstMetric(statusGauges.ready, prometheus.GaugeValue, flag(st.Ready))
	ch <- prometheus.MustNewConstMetric(statusGauges.expiry, prometheus.GaugeValue, expiry)
	ch <- prometheus.MustNewConstMetric(statusGauges.healthy, prometheus.GaugeValue, flag(st.WorkloadHealthy != nil && *st.WorkloadHealthy))
	ch <- prometheus.MustNewConstMetric(statusGauges.names, prometheus.GaugeValue, float64(st.Names))
}
