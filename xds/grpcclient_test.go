package xds

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/navarch/navarch/e2e/grpcapp"
)

// These tests run grpc-go's own xDS client against the server, with real gRPC
// backends, and check what the traffic did.

func startBackends(t *testing.T, names ...string) []*grpcapp.Backend {
	t.Helper()
	var out []*grpcapp.Backend
	for _, n := range names {
		b, err := grpcapp.StartBackend(n)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(b.Stop)
		out = append(out, b)
	}
	return out
}

func ratingsSE(v1, v2 *grpcapp.Backend) string {
	return fmt.Sprintf(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings.default.svc.cluster.local]
  ports: [{number: 9090, name: grpc, protocol: GRPC}]
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, ports: {grpc: %d}, labels: {version: v1}}
  - {address: 127.0.0.1, ports: {grpc: %d}, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: default}
spec:
  host: ratings
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
`, v1.Port, v2.Port)
}

func TestGRPCClientWeightsHeadersAndFaults(t *testing.T) {
	bs := startBackends(t, "v1", "v2")
	src := newFakeSource(snapshotOf(t, ratingsSE(bs[0], bs[1]), `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings]
  http:
  - match: [{headers: {x-canary: {exact: "yes"}}}]
    route: [{destination: {host: ratings, subset: v2}}]
  - match: [{headers: {x-fault: {exact: abort}}}]
    fault: {abort: {httpStatus: 503, percentage: {value: 100}}}
    route: [{destination: {host: ratings, subset: v1}}]
  - route:
    - {destination: {host: ratings, subset: v1}, weight: 120}
    - {destination: {host: ratings, subset: v2}, weight: 30}
`))
	s, cc := startServer(t, src)
	_ = s
	target := "xds:///ratings.default.svc.cluster.local:9090"
	conn, err := grpcapp.Dial(grpcapp.Bootstrap([]string{cc.Target()}, "default", nil), target)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// 120/30 is a 80/20 split.
	tally := grpcapp.Call(ctx, conn, 1000)
	if len(tally.Failed) > 0 {
		t.Fatalf("RPCs failed: %v", tally.Failed)
	}
	if got := tally.Share("v1"); math.Abs(got-0.8) > 0.05 {
		t.Fatalf("v1 got %.3f of the RPCs, want 0.80±0.05 (%v)", got, tally.By)
	}
	if canary := grpcapp.Call(ctx, conn, 100, "x-canary", "yes"); canary.By["v2"] != 100 {
		t.Fatalf("RPCs with x-canary: yes went %v, want all to v2", canary.By)
	}
	if aborted := grpcapp.Call(ctx, conn, 50, "x-fault", "abort"); aborted.Failed[codes.Unavailable] != 50 {
		t.Fatalf("RPCs with x-fault: abort: %v answered, %v failed; want all Unavailable (HTTP 503)", aborted.By, aborted.Failed)
	}

	// Move everything to v2.
	src.set(snapshotOf(t, ratingsSE(bs[0], bs[1]), `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings]
  http:
  - route: [{destination: {host: ratings, subset: v2}}]
`))
	deadline := time.Now().Add(30 * time.Second)
	for {
		if tl := grpcapp.Call(ctx, conn, 20); tl.By["v2"] == 20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("traffic did not move to v2")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestGRPCClientLocalityFailover: with outlier detection on the DestinationRule, a
// grpc-go client sends everything to the endpoints of its own locality and, when
// they fail, fails over to the next locality.
// TestGRPCClientLocalityFailover: a client gets its own locality's endpoint, and
// the other's once its own dies, with a DestinationRule's outlier detection or
// with the service's traffic distribution alone.
func TestGRPCClientLocalityFailover(t *testing.T) {
	t.Run("outlier detection", func(t *testing.T) {
		testLocalityFailover(t, "", `
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: default}
spec:
  host: ratings
  trafficPolicy: {outlierDetection: {consecutive5xxErrors: 5, interval: 1s, baseEjectionTime: 30s}}
`)
	})
	t.Run("traffic distribution", func(t *testing.T) {
		testLocalityFailover(t, "annotations: {networking.istio.io/traffic-distribution: PreferClose}", "")
	})
}

func testLocalityFailover(t *testing.T, annotations, rule string) {
	bs := startBackends(t, "near", "far")
	src := newFakeSource(snapshotOf(t, fmt.Sprintf(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: default, %s}
spec:
  hosts: [ratings.default.svc.cluster.local]
  ports: [{number: 9090, name: grpc, protocol: GRPC}]
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, ports: {grpc: %d}, locality: us-east/a}
  - {address: 127.0.0.1, ports: {grpc: %d}, locality: eu/d}
`, annotations, bs[0].Port, bs[1].Port)+rule))
	_, cc := startServer(t, src)
	target := "xds:///ratings.default.svc.cluster.local:9090"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dial := func(locality string) *grpc.ClientConn {
		conn, err := grpcapp.Dial(grpcapp.BootstrapWith(grpcapp.BootstrapOptions{
			Servers: []string{cc.Target()}, Namespace: "default", Name: "client-" + strings.ReplaceAll(locality, "/", "-"), Locality: locality}), target)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	east, europe := dial("us-east/a"), dial("eu/d")
	if tally := grpcapp.Call(ctx, east, 100); tally.By["near"] != 100 {
		t.Fatalf("a client in us-east/a: %v answered, %v failed; want all from its own locality", tally.By, tally.Failed)
	}
	if tally := grpcapp.Call(ctx, europe, 100); tally.By["far"] != 100 {
		t.Fatalf("a client in eu/d: %v answered, %v failed; want all from its own locality", tally.By, tally.Failed)
	}
	bs[0].Stop()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if tally := grpcapp.Call(ctx, east, 20); tally.By["far"] == 20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the client in us-east/a did not fail over to eu/d when its locality's endpoint died")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestGRPCClientNodeLocal: a node-local service (internalTrafficPolicy Local) sends a
// client only to the endpoint on its node; a client that names no node gets none.
func TestGRPCClientNodeLocal(t *testing.T) {
	bs := startBackends(t, "on-a", "on-b")
	src := newFakeSource(snapshotOf(t, fmt.Sprintf(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: collector, namespace: default, annotations: {navarch.io/internal-traffic-policy: Local}}
spec:
  hosts: [collector.default.svc.cluster.local]
  ports: [{number: 4317, name: grpc, protocol: GRPC}]
  resolution: STATIC
  workloadSelector: {labels: {app: collector}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: collector-a, namespace: default, annotations: {navarch.io/node: node-a}}
spec: {address: 127.0.0.1, ports: {grpc: %d}, labels: {app: collector}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: collector-b, namespace: default, annotations: {navarch.io/node: node-b}}
spec: {address: 127.0.0.1, ports: {grpc: %d}, labels: {app: collector}}
`, bs[0].Port, bs[1].Port)))
	s, cc := startServer(t, src)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for node, want := range map[string]string{"node-a": "on-a", "node-b": "on-b", "": ""} {
		conn, err := grpcapp.Dial(grpcapp.BootstrapWith(grpcapp.BootstrapOptions{
			Servers: []string{cc.Target()}, Namespace: "default", Name: "client-" + node, NodeName: node}), "xds:///collector.default.svc.cluster.local:4317")
		if err != nil {
			t.Fatal(err)
		}
		tally := grpcapp.Call(ctx, conn, 50)
		if ps := s.Proxies(); !slices.ContainsFunc(ps, func(p ProxyStatus) bool {
			return p.Node == node && strings.HasSuffix(p.ID, "client-"+node+".default~default.svc.cluster.local")
		}) {
			t.Errorf("no proxy status of the client on %q: %+v", node, ps)
		}
		conn.Close()
		if want == "" {
			if len(tally.By) > 0 || tally.Failed[codes.Unavailable] != 50 {
				t.Errorf("a client that names no node: %v answered, %v failed; want all UNAVAILABLE", tally.By, tally.Failed)
			}
		} else if tally.By[want] != 50 {
			t.Errorf("a client on %s: %v answered, %v failed; want all from %s", node, tally.By, tally.Failed, want)
		}
	}
}

// TestGRPCClientRetriesByTheMeshConfig: the mesh config's defaultHttpRetryPolicy is
// what a grpc-go client retries by where no VirtualService says: a backend that
// answers one call in four answers every RPC with 3 retries (4 tries each), and a
// quarter with none.
func TestGRPCClientRetriesByTheMeshConfig(t *testing.T) {
	flaky, err := grpcapp.StartFlakyBackend("flaky", 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(flaky.Stop)
	service := fmt.Sprintf(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: flaky, namespace: default}
spec:
  hosts: [flaky.default.svc.cluster.local]
  ports: [{number: 9090, name: grpc, protocol: GRPC}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {grpc: %d}}]
`, flaky.Port)
	mesh := func(attempts int) string {
		return fmt.Sprintf(`
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data: {mesh: "defaultHttpRetryPolicy: {attempts: %d}"}
`, attempts)
	}
	src := newFakeSource(snapshotOf(t, service, mesh(3)))
	_, cc := startServer(t, src)
	conn, err := grpcapp.Dial(grpcapp.Bootstrap([]string{cc.Target()}, "default", nil), "xds:///flaky.default.svc.cluster.local:9090")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	before := flaky.Calls()
	if tally := grpcapp.Call(ctx, conn, 40); tally.By["flaky"] != 40 {
		t.Fatalf("with 3 retries: %v answered, %v failed; want all 40 answered", tally.By, tally.Failed)
	}
	if tries := flaky.Calls() - before; tries > 160 {
		t.Errorf("40 RPCs took %d tries, want at most 4 each", tries)
	}

	src.set(snapshotOf(t, service, mesh(0)))
	deadline := time.Now().Add(30 * time.Second)
	for {
		before := flaky.Calls()
		tally := grpcapp.Call(ctx, conn, 40)
		if tries := flaky.Calls() - before; tries == 40 {
			if tally.By["flaky"] != 10 || tally.Failed[codes.Unavailable] != 30 {
				t.Fatalf("without retries: %v answered, %v failed; want 10 and 30 UNAVAILABLE", tally.By, tally.Failed)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the client still retries after the mesh config turned retries off")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
