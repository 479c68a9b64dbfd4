package agent

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseProbe(t *testing.T) {
	for in, want := range map[string]Probe{
		"tcp:127.0.0.1:9080":              {Kind: "tcp", Target: "127.0.0.1:9080"},
		"grpc:127.0.0.1:9080":             {Kind: "grpc", Target: "127.0.0.1:9080"},
		"grpc:127.0.0.1:9080/ratings":     {Kind: "grpc", Target: "127.0.0.1:9080", Service: "ratings"},
		"http://127.0.0.1:8080/ready":     {Kind: "http", Target: "http://127.0.0.1:8080/ready"},
		"https://127.0.0.1:8443/":         {Kind: "http", Target: "https://127.0.0.1:8443/"},
		"exec:/bin/check  --quick":        {Kind: "exec", Command: []string{"/bin/check", "--quick"}},
		`exec:sh -c 'test -f /run/ready'`: {Kind: "exec", Command: []string{"sh", "-c", "test -f /run/ready"}},
	} {
		p, err := ParseProbe(in)
		if err != nil || p.Kind != want.Kind || p.Target != want.Target || p.Service != want.Service || !slices.Equal(p.Command, want.Command) {
			t.Errorf("ParseProbe(%q) = %+v, %v; want %+v", in, p, err, want)
		}
	}
	for _, bad := range []string{"", "udp:1.2.3.4:5", "tcp:nohost", "ftp://x/", "https://", "grpc:", "exec:", "exec:  ", `exec:sh -c 'exit 0`} {
		if _, err := ParseProbe(bad); err == nil {
			t.Errorf("ParseProbe(%q) accepted", bad)
		}
	}
}

func TestRegistrationValidate(t *testing.T) {
	ok := Registration{Group: "ratings", Address: "10.0.0.5", Locality: "eu/west/a"}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := Registration{Address: "vm1.example.com", Locality: "a/b/c/d", Probe: &Probe{Kind: "tcp", Target: "x"}}
	err := bad.Validate()
	for _, want := range []string{"--group", "--address", "--locality", "probe target"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %s", err, want)
		}
	}
}

func TestRegistrationNodeIsIstios(t *testing.T) {
	n := registrationNode(Registration{Group: "ratings", Address: "fd00::5", Network: "n2", Locality: "eu/west",
		Labels: map[string]string{"version": "v2"}}, "vms", "ratings")
	if n.Id != "sidecar~fd00::5~ratings-fd00--5.vms~vms.svc.cluster.local" {
		t.Errorf("node id %q", n.Id)
	}
	md := n.Metadata.Fields
	if md["AUTO_REGISTER_GROUP"].GetStringValue() != "ratings" || md["NAMESPACE"].GetStringValue() != "vms" ||
		md["NETWORK"].GetStringValue() != "n2" || md["LABELS"].GetStructValue().Fields["version"].GetStringValue() != "v2" {
		t.Errorf("metadata %v", md)
	}
	if n.Locality.Region != "eu" || n.Locality.Zone != "west" || n.Locality.SubZone != "" {
		t.Errorf("locality %v", n.Locality)
	}
	if ns, sa, err := namespaceAndAccount("spiffe://cluster.local/ns/vms/sa/ratings"); ns != "vms" || sa != "ratings" || err != nil {
		t.Errorf("namespaceAndAccount: %q %q %v", ns, sa, err)
	}
	if _, _, err := namespaceAndAccount("spiffe://cluster.local/ns/vms"); err == nil {
		t.Error("a SPIFFE ID without a service account was accepted")
	}
}

// TestProbeThresholds runs an HTTP probe against a server whose answer the test
// flips: the first result is reported at once, then a change only once its
// threshold of consecutive results is reached.
func TestProbeThresholds(t *testing.T) {
	var failing atomic.Bool
	var checks atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		checks.Add(1)
		if failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	p, err := ParseProbe(srv.URL + "/ready")
	if err != nil {
		t.Fatal(err)
	}
	p.Period, p.FailureThreshold, p.SuccessThreshold = 20*time.Millisecond, 3, 2
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := runProbe(ctx, p)
	if r := next(t, out); !r.healthy {
		t.Fatalf("first result %+v, want healthy", r)
	}
	failing.Store(true)
	before := checks.Load()
	if r := next(t, out); r.healthy || !strings.Contains(r.message, "503") {
		t.Fatalf("after failures: %+v", r)
	}
	if n := checks.Load() - before; n < 3 {
		t.Errorf("unhealthy after %d failed checks, want the threshold of 3", n)
	}
	failing.Store(false)
	before = checks.Load()
	if r := next(t, out); !r.healthy {
		t.Fatalf("after successes: %+v", r)
	}
	if n := checks.Load() - before; n < 2 {
		t.Errorf("healthy again after %d checks, want the threshold of 2", n)
	}

	// A TCP probe of a closed port starts unhealthy.
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := lis.Addr().String()
	lis.Close()
	tp, _ := ParseProbe("tcp:" + addr)
	tout := runProbe(ctx, tp)
	if r := <-tout; r.healthy {
		t.Fatalf("tcp probe of a closed port: %+v", r)
	}
}

// runProbe runs p as the agent does and returns where its results arrive.
func runProbe(ctx context.Context, p *Probe) chan probeResult {
	pr := newProber(ctx)
	pr.set(p, true)
	return pr.health
}

// next returns the probe's next result, failing the test after 10 s.
func next(t *testing.T, out chan probeResult) probeResult {
	t.Helper()
	select {
	case r := <-out:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no probe result")
		return probeResult{}
	}
}

// An HTTPS probe reaches a workload with a certificate no one trusts, sending the
// probe's headers; an exec probe is healthy while its command exits 0; nothing is
// reported before the initial delay.
func TestProbeKinds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Probe") != "navarch" || r.Host != "ratings.local" {
			w.WriteHeader(http.StatusBadRequest)
		}
	}))
	defer srv.Close()
	hp, err := ParseProbe(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	hp.Header = http.Header{"X-Probe": {"navarch"}}
	out := runProbe(ctx, hp)
	if r := next(t, out); r.healthy {
		t.Fatalf("https probe without the Host header: %+v, want unhealthy (400)", r)
	}
	withHost := *hp
	withHost.Header = http.Header{"X-Probe": {"navarch"}, "Host": {"ratings.local"}}
	out = runProbe(ctx, &withHost)
	if r := next(t, out); !r.healthy {
		t.Fatalf("https probe with its headers: %+v", r)
	}

	for cmd, healthy := range map[string]bool{"exec:true": true, "exec:false": false, "exec:/no/such/check": false,
		`exec:sh -c 'test "$0" = "a b"' 'a b'`: true, `exec:sh -c 'test "$0" = "a b"' a b`: false} {
		ep, err := ParseProbe(cmd)
		if err != nil {
			t.Fatal(err)
		}
		out := runProbe(ctx, ep)
		if r := next(t, out); r.healthy != healthy || (!healthy && !strings.Contains(r.message, "exec probe")) {
			t.Errorf("%s: %+v, want healthy=%v", cmd, r, healthy)
		}
	}

	dp, _ := ParseProbe("exec:true")
	dp.InitialDelay = 300 * time.Millisecond
	start := time.Now()
	out = runProbe(ctx, dp)
	next(t, out)
	if waited := time.Since(start); waited < dp.InitialDelay {
		t.Errorf("first result after %s, before the initial delay of %s", waited, dp.InitialDelay)
	}
}
