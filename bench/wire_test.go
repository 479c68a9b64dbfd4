package bench

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/registry"
	"github.com/navarch/navarch/store"
	"github.com/navarch/navarch/xds"
)

// source is an xds.SnapshotSource whose snapshots a test sets.
type source struct {
	mu      sync.Mutex
	snap    *registry.Snapshot
	changes chan struct{}
}

func (s *source) Snapshot() *registry.Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snap
}

func (s *source) Changes() <-chan struct{} { return s.changes }

func (s *source) set(snap *registry.Snapshot) {
	s.mu.Lock()
	s.snap = snap
	s.mu.Unlock()
	select {
	case s.changes <- struct{}{}:
	default:
	}
}

// meshSnapshot is a snapshot of n ServiceEntries in namespace bench, each with a
// DestinationRule whose connection pool limit is maxRequests.
func meshSnapshot(t *testing.T, n, maxRequests int, rev int64) *registry.Snapshot {
	t.Helper()
	var entries []store.Entry
	for i := range n {
		doc := fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: svc-%[1]d, namespace: bench}
spec:
  hosts: [svc-%[1]d.bench.svc.cluster.local]
  ports: [{number: 80, name: grpc, protocol: GRPC}]
  resolution: STATIC
  endpoints: [{address: 10.1.%[2]d.%[3]d}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: svc-%[1]d, namespace: bench}
spec:
  host: svc-%[1]d.bench.svc.cluster.local
  trafficPolicy: {connectionPool: {http: {http2MaxRequests: %[4]d}}}
`, i, i/250, i%250+1, maxRequests)
		rs, _, err := api.Decode("mesh", []byte(doc), "")
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			entries = append(entries, store.Entry{Space: store.ConfigSpace, Resource: r})
		}
	}
	return registry.NewSnapshot(entries, rev, "cluster.local")
}

// serveXDS serves src over ADS on a loopback port, with a navarch node's fixed
// 64 KiB windows (so a large request waits for window updates) and keepalive pings
// every second (which a client must answer or lose its connection).
func serveXDS(t *testing.T, src *source) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := xds.NewServer(xds.DefaultConfig(), src, xds.NewMetrics(prometheus.NewRegistry()), slog.New(slog.DiscardHandler))
	go s.Run(ctx)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpc.StaticStreamWindowSize(65535), grpc.StaticConnWindowSize(65535),
		grpc.WriteBufferSize(4<<10), grpc.MaxRecvMsgSize(16<<20),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: time.Second, Timeout: time.Second}))
	discovery.RegisterAggregatedDiscoveryServiceServer(gs, s)
	go gs.Serve(lis)
	t.Cleanup(func() {
		gs.Stop()
		cancel()
	})
	return lis.Addr().String()
}

// holdings is every resource version a proxy holds, by type and name.
func holdings(p *Proxy) map[string]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]string{}
	for t, m := range p.have {
		for name, h := range m {
			out[fmt.Sprintf("%d/%s", t, name)] = h.version
		}
	}
	return out
}

// TestWireClientsGetWhatGRPCClientsGet: simulated proxies speaking HTTP/2
// themselves end up holding exactly the resource versions that proxies using
// grpc-go's client hold, SotW and Delta, named and wildcard, before and after a
// change; wildcard requests and responses are large enough to span frames and
// wait on flow control, and (named SotW) the streams outlive keepalive pings.
func TestWireClientsGetWhatGRPCClientsGet(t *testing.T) {
	const services = 1500
	src := &source{snap: meshSnapshot(t, services, 100, 1), changes: make(chan struct{}, 1)}
	target := serveXDS(t, src)
	rev := int64(1)
	for _, mode := range []Mode{Named, Wildcard} {
		for _, delta := range []bool{false, true} {
			t.Run(fmt.Sprintf("mode=%d/delta=%v", mode, delta), func(t *testing.T) {
				fleet := func(grpcClients bool) *Fleet {
					f := StartFleet(context.Background(), FleetConfig{
						Proxies: 4, Targets: []string{target}, Delta: delta, Mode: mode, Namespace: "bench", GRPCClients: grpcClients,
						Listeners: func(i int) []string { return []string{fmt.Sprintf("svc-%d.bench.svc.cluster.local:80", i)} },
					})
					t.Cleanup(f.Stop)
					return f
				}
				wire, grpcs := fleet(false), fleet(true)
				endpoints := func(i int) []string {
					if mode == Wildcard {
						return []string{fmt.Sprintf("outbound|80||svc-%d.bench.svc.cluster.local", services-1)}
					}
					return []string{fmt.Sprintf("outbound|80||svc-%d.bench.svc.cluster.local", i)}
				}
				same := func(what string) {
					t.Helper()
					deadline := time.Now().Add(30 * time.Second)
					for {
						var diff []string
						for i := range 4 {
							w, g := holdings(wire.Proxies()[i]), holdings(grpcs.Proxies()[i])
							if len(g) == 0 || !maps.Equal(w, g) {
								diff = append(diff, fmt.Sprintf("proxy %d: wire holds %d resources, grpc-go %d", i, len(w), len(g)))
							}
						}
						if len(diff) == 0 {
							return
						}
						if time.Now().After(deadline) {
							t.Fatalf("%s: %s", what, strings.Join(diff, "; "))
						}
						time.Sleep(20 * time.Millisecond)
					}
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				for _, f := range []*Fleet{wire, grpcs} {
					if err := f.WaitSynced(ctx, typeURLs[tEDS], endpoints, nil); err != nil {
						t.Fatal(err)
					}
				}
				// changed waits until every proxy holds a version of its cluster other
				// than the one it held before the change.
				changed := func(what string) {
					t.Helper()
					cluster := func(i int) string { return fmt.Sprintf("%d/outbound|80||svc-%d.bench.svc.cluster.local", tCDS, i) }
					var before []string
					for _, f := range []*Fleet{wire, grpcs} {
						for i, p := range f.Proxies() {
							before = append(before, holdings(p)[cluster(i)])
						}
					}
					rev++
					src.set(meshSnapshot(t, services, 100+int(rev), rev))
					eventually := time.Now().Add(30 * time.Second)
					for k := 0; k < len(before); {
						f, i := wire, k
						if k >= 4 {
							f, i = grpcs, k-4
						}
						if holdings(f.Proxies()[i])[cluster(i)] != before[k] {
							k++
							continue
						}
						if time.Now().After(eventually) {
							t.Fatalf("%s: proxy %d of fleet %d still holds its cluster's version %s", what, i, k/4, before[k])
						}
						time.Sleep(10 * time.Millisecond)
					}
					same(what)
				}
				same("connected")
				changed("after the change")
				if mode != Named || delta {
					return
				}
				time.Sleep(2500 * time.Millisecond) // two keepalive pings unanswered would end the streams
				for i, p := range wire.Proxies() {
					if st := p.Status(); !st.Connected || st.Streams != 1 {
						t.Errorf("wire proxy %d: connected %v after %d streams", i, st.Connected, st.Streams)
					}
				}
				changed("after the next change")
			})
		}
	}
}

// TestWireStreamReturnsTheServersStatus: a stream the server ends with an error
// status gives that status to Recv, as grpc-go's client does.
func TestWireStreamReturnsTheServersStatus(t *testing.T) {
	src := &source{snap: meshSnapshot(t, 1, 100, 1), changes: make(chan struct{}, 1)}
	target := serveXDS(t, src)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := wireTransport{mode: Named}.sotw(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&discovery.DiscoveryRequest{TypeUrl: typeURLs[tLDS], Node: &corev3.Node{Id: "not an istio node id"}}); err != nil {
		t.Fatal(err)
	}
	_, err = st.Recv()
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "not an istio node id") {
		t.Fatalf("Recv: %v; want InvalidArgument naming the node id", err)
	}
}
