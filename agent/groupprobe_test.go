package agent

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/navarch/navarch/xds"
)

// A group's probe, written as a flag, reads back as the same probe.
func TestGroupProbeReadsBackAsAFlag(t *testing.T) {
	for _, gp := range []*networking.ReadinessProbe{
		{HealthCheckMethod: &networking.ReadinessProbe_TcpSocket{TcpSocket: &networking.TCPHealthCheckConfig{Port: 9080}}},
		{HealthCheckMethod: &networking.ReadinessProbe_TcpSocket{TcpSocket: &networking.TCPHealthCheckConfig{Host: "fd00::1", Port: 9080}}},
		{HealthCheckMethod: &networking.ReadinessProbe_HttpGet{HttpGet: &networking.HTTPHealthCheckConfig{Path: "ready", Port: 8443, Scheme: "HTTPS"}}},
		{HealthCheckMethod: &networking.ReadinessProbe_Exec{Exec: &networking.ExecHealthCheckConfig{Command: []string{"sh", "-c", "test -f '/run/a b'"}}}},
	} {
		p, err := GroupProbe(gp)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseProbe(p.String())
		if err != nil || back.Kind != p.Kind || back.Target != p.Target || !slices.Equal(back.Command, p.Command) {
			t.Errorf("%v: flag %q reads back as %+v, %v; want %+v", gp, p.String(), back, err, p)
		}
	}
	if p, err := GroupProbe(nil); p != nil || err != nil || p.String() != "none" {
		t.Errorf("no probe: %+v, %v", p, err)
	}
}

// A prober reports its probe's results; another probe replaces it, and the
// replaced one reports nothing more; no probe is healthy.
func TestProberReplacesItsProbe(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr := newProber(ctx)
	failing, _ := ParseProbe("exec:false")
	failing.Period = 50 * time.Millisecond
	pr.set(failing, true)
	if r := next(t, pr.health); r.healthy {
		t.Fatalf("exec:false reported %+v", r)
	}
	if pr.set(failing, false) {
		t.Error("setting the same probe again changed it")
	}
	passing, _ := ParseProbe("exec:true")
	passing.Period = 50 * time.Millisecond
	if !pr.set(passing, false) {
		t.Fatal("a different probe changed nothing")
	}
	if r := next(t, pr.health); !r.healthy {
		t.Fatalf("after exec:true replaced exec:false: %+v", r)
	}

	// A slow failing check is replaced by no probe while it runs: healthy, and
	// its result never arrives.
	slow, _ := ParseProbe("exec:sh -c 'sleep 0.3; exit 1'")
	slow.Timeout = 5 * time.Second
	pr.set(slow, false)
	time.Sleep(50 * time.Millisecond) // the check is running
	pr.set(nil, false)
	if r := next(t, pr.health); !r.healthy {
		t.Fatalf("no probe: %+v", r)
	}
	select {
	case r := <-pr.health:
		t.Errorf("a replaced probe reported %+v", r)
	case <-time.After(600 * time.Millisecond):
	}
}

// takeGroup follows the probe of the WorkloadGroup on the stream, rejects a probe
// it cannot run (keeping its own), and keeps its probe when the group is gone.
func TestTakeGroup(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := DefaultConfig()
	cfg.Servers, cfg.OutDir, cfg.TokenFile = []string{"127.0.0.1:15012"}, t.TempDir(), "token"
	a, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	pr := newProber(ctx)
	pr.set(nil, true)
	response := func(version string, probe *networking.ReadinessProbe) *discovery.DiscoveryResponse {
		b, err := proto.Marshal(&networking.WorkloadGroup{Template: &networking.WorkloadEntry{ServiceAccount: "ratings"}, Probe: probe})
		if err != nil {
			t.Fatal(err)
		}
		return &discovery.DiscoveryResponse{TypeUrl: xds.WorkloadGroupType, VersionInfo: version, Nonce: "n" + version,
			Resources: []*anypb.Any{{TypeUrl: xds.WorkloadGroupType, Value: b}}}
	}
	tcp := &networking.ReadinessProbe{PeriodSeconds: 2, HealthCheckMethod: &networking.ReadinessProbe_TcpSocket{TcpSocket: &networking.TCPHealthCheckConfig{Port: 9080}}}
	ack := a.takeGroup(pr, response("1", tcp), "vms", "ratings")
	if ack.ErrorDetail != nil || ack.VersionInfo != "1" || ack.ResponseNonce != "n1" || ack.TypeUrl != xds.WorkloadGroupType ||
		!slices.Equal(ack.ResourceNames, []string{"ratings"}) {
		t.Fatalf("ack %v", ack)
	}
	if pr.current == nil || pr.current.String() != "tcp:127.0.0.1:9080" || pr.current.Period != 2*time.Second {
		t.Fatalf("the group's probe is not the agent's: %+v", pr.current)
	}
	bad := &networking.ReadinessProbe{HealthCheckMethod: &networking.ReadinessProbe_TcpSocket{TcpSocket: &networking.TCPHealthCheckConfig{}}}
	nack := a.takeGroup(pr, response("2", bad), "vms", "ratings")
	if msg := nack.ErrorDetail.GetMessage(); !strings.Contains(msg, "WorkloadGroup vms/ratings: spec.probe.tcpSocket.port") {
		t.Errorf("a probe without a port: %q, want a rejection naming the field", msg)
	}
	if pr.current.String() != "tcp:127.0.0.1:9080" {
		t.Errorf("a rejected probe replaced the agent's: %+v", pr.current)
	}
	badHost := &networking.ReadinessProbe{HealthCheckMethod: &networking.ReadinessProbe_HttpGet{HttpGet: &networking.HTTPHealthCheckConfig{Host: "bad host", Port: 80}}}
	if msg := a.takeGroup(pr, response("2b", badHost), "vms", "ratings").ErrorDetail.GetMessage(); !strings.Contains(msg, "WorkloadGroup vms/ratings: spec.probe: agent: http probe target") {
		t.Errorf("a probe the agent cannot run: %q, want a rejection saying why", msg)
	}
	gone := response("3", nil)
	gone.Resources = nil
	if ack := a.takeGroup(pr, gone, "vms", "ratings"); ack.ErrorDetail != nil || pr.current.String() != "tcp:127.0.0.1:9080" {
		t.Errorf("a response without the group: %v, probe %+v", ack, pr.current)
	}
	if ack := a.takeGroup(pr, response("4", nil), "vms", "ratings"); ack.ErrorDetail != nil || pr.current != nil {
		t.Errorf("a group without a probe: %v, probe %+v", ack, pr.current)
	}
}
