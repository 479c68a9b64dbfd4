package agent

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The status server says why the agent is not ready (no certificate, no node
// holding its registration) and, once it is, shows the certificate, the
// registration and the workload's health, as JSON and as gauges.
func TestStatusServer(t *testing.T) {
	ca := newTestCA(t)
	srv := startCSRServer(t, ca, time.Hour)
	a := newAgent(t, setup(t, ca, srv.addr), nil)
	hs := httptest.NewServer(a.StatusHandler())
	defer hs.Close()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(hs.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz/ready"); code != http.StatusServiceUnavailable || !strings.Contains(body, "no certificate") {
		t.Errorf("before the first certificate: %d %q", code, body)
	}
	certs, err := a.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if code, body := get("/healthz/ready"); code != http.StatusOK {
		t.Errorf("with a certificate, registering nothing: %d %q", code, body)
	}

	// Registering: ready only while a node holds the registration.
	a.reg.update(func(r *registrationStatus) {
		r.registering, r.probe, r.health = true, "tcp:127.0.0.1:9080", probeResult{healthy: false, message: "connection refused"}
		r.lastErr = errors.New("rpc error: code = Unavailable").Error()
	})
	if code, body := get("/healthz/ready"); code != http.StatusServiceUnavailable || !strings.Contains(body, "not registered with a node: rpc error") {
		t.Errorf("registering, with no node holding it: %d %q", code, body)
	}
	since := time.Now()
	a.reg.update(func(r *registrationStatus) { r.server, r.since, r.lastErr, r.names = "127.0.0.1:15012", since, "", 3 })
	if code, body := get("/healthz/ready"); code != http.StatusOK {
		t.Errorf("registered: %d %q", code, body)
	}
	code, body := get("/debug/status")
	var st Status
	if err := json.Unmarshal([]byte(body), &st); code != http.StatusOK || err != nil {
		t.Fatalf("/debug/status: %d %v %q", code, err, body)
	}
	if !st.Ready || st.Identity != identity || !st.CertificateExpires.Equal(certs.Leaf().NotAfter) || st.RegisteredWith != "127.0.0.1:15012" ||
		st.WorkloadHealthy == nil || *st.WorkloadHealthy || st.HealthMessage != "connection refused" || st.Probe != "tcp:127.0.0.1:9080" || st.Names != 3 {
		t.Errorf("status %+v", st)
	}
	_, metrics := get("/metrics")
	for _, want := range []string{"navarch_agent_ready 1", "navarch_agent_workload_healthy 0", "navarch_agent_dns_names 3"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics has no %q:\n%s", want, metrics)
		}
	}
	var expiry float64
	for _, line := range strings.Split(metrics, "\n") {
		if v, ok := strings.CutPrefix(line, "navarch_agent_certificate_expiry_timestamp_seconds "); ok {
			expiry, _ = strconv.ParseFloat(v, 64)
		}
	}
	if int64(expiry) != certs.Leaf().NotAfter.Unix() {
		t.Errorf("certificate expiry gauge %v, want %d", expiry, certs.Leaf().NotAfter.Unix())
	}
}

// BenchmarkStatus is the cost of one status request: the certificate files read
// and parsed.
func BenchmarkStatus(b *testing.B) {
	ca := newTestCA(b)
	srv := startCSRServer(b, ca, time.Hour)
	a := newAgent(b, setup(b, ca, srv.addr), nil)
	if _, err := a.Fetch(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if !a.Status().Ready {
			b.Fatal("not ready")
		}
	}
}
