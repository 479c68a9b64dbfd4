package xds

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/navarch/navarch/registry"
)

// fakeSource is a SnapshotSource whose snapshots a test sets.
type fakeSource struct {
	mu      sync.Mutex
	snap    *registry.Snapshot
	changes chan struct{}
}

func newFakeSource(s *registry.Snapshot) *fakeSource {
	return &fakeSource{snap: s, changes: make(chan struct{}, 1)}
}

func (f *fakeSource) Snapshot() *registry.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.snap
}

func (f *fakeSource) Changes() <-chan struct{} { return f.changes }

func (f *fakeSource) set(s *registry.Snapshot) {
	f.mu.Lock()
	f.snap = s
	f.mu.Unlock()
	select {
	case f.changes <- struct{}{}:
	default:
	}
}

// startServer serves src over ADS on a loopback port and returns a client connection.
func startServer(t *testing.T, src SnapshotSource) (*Server, *grpc.ClientConn) {
	t.Helper()
	s := NewServer(DefaultConfig(), src, NewMetrics(prometheus.NewRegistry()), slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	go s.Run(ctx)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	discovery.RegisterAggregatedDiscoveryServiceServer(gs, s)
	go gs.Serve(lis)
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cc.Close()
		gs.Stop()
		cancel()
	})
	return s, cc
}

func testNode(ns string) *corev3.Node {
	md, _ := structpb.NewStruct(map[string]any{"NAMESPACE": ns, "GENERATOR": "grpc"})
	return &corev3.Node{Id: "sidecar~10.0.0.1~client." + ns + "~" + ns + ".svc.cluster.local", Metadata: md}
}

const reviewsSE = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  ports: [{number: 9080, name: grpc, protocol: GRPC}]
  resolution: STATIC
  endpoints:
  - {address: 10.1.0.1, labels: {version: v1}}
  - {address: 10.1.0.2, labels: {version: v2}}
`

const reviewsDR = `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
`

// frontendToV2 routes the RPCs of clients labelled app: frontend to v2 of reviews,
// and everyone else's to v1.
const frontendToV2 = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match: [{sourceLabels: {app: frontend}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route: [{destination: {host: reviews, subset: v1}}]
`

func recvSotW(t *testing.T, st discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient) *discovery.DiscoveryResponse {
	t.Helper()
	resp, err := st.Recv()
	if err != nil {
		t.Fatalf("receiving: %v", err)
	}
	return resp
}

func TestSotWSendsNamedResourcesAndPushesChanges(t *testing.T) {
	src := newFakeSource(snapshotOf(t, reviewsSE))
	s, cc := startServer(t, src)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	name := "reviews.default.svc.cluster.local:9080"
	if err := st.Send(&discovery.DiscoveryRequest{Node: testNode("default"), TypeUrl: ListenerType, ResourceNames: []string{name}}); err != nil {
		t.Fatal(err)
	}
	resp := recvSotW(t, st)
	if resp.TypeUrl != ListenerType || len(resp.Resources) != 1 {
		t.Fatalf("got %d resources of %s, want the one listener", len(resp.Resources), resp.TypeUrl)
	}
	// ACK, then subscribe to the route the listener names.
	st.Send(&discovery.DiscoveryRequest{TypeUrl: ListenerType, ResourceNames: []string{name}, VersionInfo: resp.VersionInfo, ResponseNonce: resp.Nonce})
	route := "outbound|9080||reviews.default.svc.cluster.local"
	st.Send(&discovery.DiscoveryRequest{TypeUrl: RouteType, ResourceNames: []string{route}})
	rresp := recvSotW(t, st)
	if rresp.TypeUrl != RouteType || len(rresp.Resources) != 1 {
		t.Fatalf("got %d resources of %s, want the route", len(rresp.Resources), rresp.TypeUrl)
	}
	st.Send(&discovery.DiscoveryRequest{TypeUrl: RouteType, ResourceNames: []string{route}, VersionInfo: rresp.VersionInfo, ResponseNonce: rresp.Nonce})

	// A VirtualService changes the route only: the next response is the route.
	src.set(snapshotOf(t, reviewsSE, reviewsDR, `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews, subset: v2}}]}]
`))
	next := recvSotW(t, st)
	if next.TypeUrl != RouteType || next.VersionInfo == rresp.VersionInfo {
		t.Fatalf("after the change got %s version %s, want a new route version (had %s)", next.TypeUrl, next.VersionInfo, rresp.VersionInfo)
	}
	// The push was timed as istiod times its own (pilot_debounce_time,
	// pilot_pushcontext_init_seconds, pilot_proxy_queue_time); an answer to the
	// route response before last is counted as an expired nonce (so may the ACK of
	// that response, if it reached the server after the push).
	st.Send(&discovery.DiscoveryRequest{TypeUrl: RouteType, ResourceNames: []string{route}, VersionInfo: rresp.VersionInfo, ResponseNonce: rresp.Nonce})
	deadline := time.Now().Add(5 * time.Second)
	for what, observed := range map[string]func() bool{ // the push records its times as it ends, maybe after the send
		"a debounce time":  func() bool { return histogramCount(t, s.metrics.debounceTime) > 0 },
		"a snapshot time":  func() bool { return histogramCount(t, s.metrics.snapshotTime) > 0 },
		"a queue time":     func() bool { return histogramCount(t, s.metrics.queueTime) > 0 },
		"an expired nonce": func() bool { return testutil.ToFloat64(s.metrics.expiredNonce.WithLabelValues("rds")) >= 1 },
	} {
		for !observed() {
			if time.Now().After(deadline) {
				t.Fatalf("%s was not recorded", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// histogramCount is how many observations h has.
func histogramCount(t *testing.T, h prometheus.Histogram) uint64 {
	t.Helper()
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

func TestSotWDoesNotResendRejectedVersion(t *testing.T) {
	src := newFakeSource(snapshotOf(t, reviewsSE, reviewsDR))
	s, cc := startServer(t, src)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cluster := "outbound|9080|v1|reviews.default.svc.cluster.local"
	st.Send(&discovery.DiscoveryRequest{Node: testNode("default"), TypeUrl: ClusterType, ResourceNames: []string{cluster}})
	cds := recvSotW(t, st)
	st.Send(&discovery.DiscoveryRequest{TypeUrl: EndpointType, ResourceNames: []string{cluster}})
	eds := recvSotW(t, st)
	if cds.TypeUrl != ClusterType || eds.TypeUrl != EndpointType {
		t.Fatalf("got %s then %s, want clusters then endpoints", cds.TypeUrl, eds.TypeUrl)
	}
	// Reject the clusters, accept the endpoints.
	st.Send(&discovery.DiscoveryRequest{TypeUrl: ClusterType, ResourceNames: []string{cluster}, ResponseNonce: cds.Nonce,
		ErrorDetail: &status.Status{Code: int32(codes.InvalidArgument), Message: "test rejects it"}})
	st.Send(&discovery.DiscoveryRequest{TypeUrl: EndpointType, ResourceNames: []string{cluster}, VersionInfo: eds.VersionInfo, ResponseNonce: eds.Nonce})

	// An endpoint change: the next response must be endpoints, not the rejected clusters again.
	src.set(snapshotOf(t, reviewsDR, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  ports: [{number: 9080, name: grpc, protocol: GRPC}]
  resolution: STATIC
  endpoints:
  - {address: 10.1.0.3, labels: {version: v1}}
`))
	next := recvSotW(t, st)
	if next.TypeUrl != EndpointType {
		t.Fatalf("after an endpoint change got %s, want endpoints (the rejected clusters must not be resent)", next.TypeUrl)
	}
	st.Send(&discovery.DiscoveryRequest{TypeUrl: EndpointType, ResourceNames: []string{cluster}, VersionInfo: next.VersionInfo, ResponseNonce: next.Nonce})
	// The stream's requests are handled apart from pushes: the NACK may be recorded
	// after the endpoints went out.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		proxies := s.Proxies()
		if len(proxies) == 1 && proxies[0].Types["cds"].Nacks == 1 && proxies[0].Types["cds"].NackError == "test rejects it" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("proxy status does not show the NACK: %+v", proxies)
		}
	}

	// A cluster change: now the clusters are sent again, in a new version.
	src.set(snapshotOf(t, reviewsSE, reviewsLeastRequestDR))
	for {
		r := recvSotW(t, st)
		if r.TypeUrl == ClusterType {
			if r.VersionInfo == cds.VersionInfo {
				t.Fatalf("clusters resent in the rejected version %s", r.VersionInfo)
			}
			break
		}
	}
}

func TestDeltaResumeSendsNothingKnownAndOnlyChanges(t *testing.T) {
	src := newFakeSource(snapshotOf(t, reviewsSE, reviewsDR))
	_, cc := startServer(t, src)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ads := discovery.NewAggregatedDiscoveryServiceClient(cc)

	first, err := ads.DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	first.Send(&discovery.DeltaDiscoveryRequest{Node: testNode("default"), TypeUrl: ClusterType})
	resp, err := first.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Resources) != 3 {
		t.Fatalf("wildcard clusters: got %d, want 3 (default, v1, v2)", len(resp.Resources))
	}
	known := map[string]string{}
	for _, r := range resp.Resources {
		known[r.Name] = r.Version
	}
	first.Send(&discovery.DeltaDiscoveryRequest{TypeUrl: ClusterType, ResponseNonce: resp.Nonce})
	first.CloseSend()

	// Reconnect, saying what we have; then change one cluster's policy (subset v2 only).
	second, err := ads.DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	second.Send(&discovery.DeltaDiscoveryRequest{Node: testNode("default"), TypeUrl: ClusterType, InitialResourceVersions: known})
	src.set(snapshotOf(t, reviewsSE, `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}, trafficPolicy: {loadBalancer: {simple: LEAST_REQUEST}}}
`))
	next, err := second.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(next.Resources) != 1 || next.Resources[0].Name != "outbound|9080|v2|reviews.default.svc.cluster.local" {
		var names []string
		for _, r := range next.Resources {
			names = append(names, r.Name)
		}
		t.Fatalf("after resuming and one change got %v, want only the v2 cluster", names)
	}
	if len(next.RemovedResources) != 0 {
		t.Fatalf("removed %v, want nothing removed", next.RemovedResources)
	}
}

func TestRejectsInvalidNode(t *testing.T) {
	_, cc := startServer(t, newFakeSource(snapshotOf(t, reviewsSE)))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st.Send(&discovery.DiscoveryRequest{Node: &corev3.Node{Id: "gateway~10.0.0.1~x.default~default.svc.cluster.local"}, TypeUrl: ListenerType})
	_, err = st.Recv()
	if grpcstatus.Code(err) != codes.InvalidArgument || err == io.EOF {
		t.Fatalf("got %v, want InvalidArgument for node type gateway", err)
	}
}

// TestEnvoyProxiesGetTheirProfile subscribes to every listener as Envoy does, once as a
// gateway (type router) and once as a sidecar: each gets its own kind of listeners.
func TestEnvoyProxiesGetTheirProfile(t *testing.T) {
	src := newFakeSource(snapshotOf(t, reviewsSE, `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: ["*"]}]
`))
	_, cc := startServer(t, src)
	for _, tt := range []struct {
		typ  string
		want []string
	}{
		{TypeRouter, []string{"0.0.0.0_8080"}},
		{TypeSidecar, []string{"0.0.0.0_9080", virtualInbound, virtualOutbound}},
	} {
		t.Run(tt.typ, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			st, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
			if err != nil {
				t.Fatal(err)
			}
			md, _ := structpb.NewStruct(map[string]any{"NAMESPACE": "default", "LABELS": map[string]any{"istio": "ingressgateway"}})
			node := &corev3.Node{Id: tt.typ + "~10.0.0.3~gw.default~default.svc.cluster.local", Metadata: md}
			if err := st.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: ListenerType}); err != nil {
				t.Fatal(err)
			}
			resp := recvSotW(t, st)
			var got []string
			for _, r := range resp.Resources {
				var l listenerv3.Listener
				if err := r.UnmarshalTo(&l); err != nil {
					t.Fatal(err)
				}
				got = append(got, l.Name)
			}
			sort.Strings(got)
			if !slices.Equal(got, tt.want) {
				t.Fatalf("listeners %v, want %v", got, tt.want)
			}
		})
	}
}

// TestListenersByShortName: a proxyless client that dials a short name of a service
// (xds:///reviews:9080) gets the service's listener under that name, valid, with the
// service's routes; one in another namespace reaches it as name.namespace only.
func TestListenersByShortName(t *testing.T) {
	src := newFakeSource(snapshotOf(t, reviewsSE))
	_, cc := startServer(t, src)
	ask := func(ns string, names ...string) map[string]string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		st, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Send(&discovery.DiscoveryRequest{Node: testNode(ns), TypeUrl: ListenerType, ResourceNames: names}); err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, a := range recvSotW(t, st).Resources {
			var l listenerv3.Listener
			if err := a.UnmarshalTo(&l); err != nil {
				t.Fatal(err)
			}
			if err := l.Validate(); err != nil {
				t.Errorf("listener %s: %v", l.Name, err)
			}
			var hcm hcmv3.HttpConnectionManager
			if err := l.GetApiListener().GetApiListener().UnmarshalTo(&hcm); err != nil {
				t.Fatal(err)
			}
			got[l.Name] = hcm.GetRds().GetRouteConfigName()
		}
		return got
	}
	const route = "outbound|9080||reviews.default.svc.cluster.local"
	got := ask("default", "reviews:9080", "reviews.default:9080", "reviews.default.svc:9080", "reviews:9999", "ratings:9080")
	want := map[string]string{"reviews:9080": route, "reviews.default:9080": route, "reviews.default.svc:9080": route}
	if !maps.Equal(got, want) {
		t.Errorf("a client in default got %v, want %v", got, want)
	}
	got = ask("other", "reviews:9080", "reviews.default:9080")
	if want := map[string]string{"reviews.default:9080": route}; !maps.Equal(got, want) {
		t.Errorf("a client in other got %v, want %v", got, want)
	}
}

func TestFQDNOfShortName(t *testing.T) {
	for _, c := range []struct{ host, want string }{
		{"reviews", "reviews.shop.svc.cluster.local"},
		{"reviews.default", "reviews.default.svc.cluster.local"},
		{"reviews.default.svc", "reviews.default.svc.cluster.local"},
		{"reviews.default.svc.cluster.local", ""},
		{"api.example.com", ""},
	} {
		if got := fqdnOfShortName(c.host, "shop", "cluster.local"); got != c.want {
			t.Errorf("%s: %q, want %q", c.host, got, c.want)
		}
	}
}

// TestProxyTakesTheLabelsOfTheWorkloadAtItsAddress: as istiod does, a proxy that
// sends no labels takes those of the workload registered at its address in its
// namespace, and a change of that workload's labels moves it to the configuration
// of its new labels.
func TestProxyTakesTheLabelsOfTheWorkloadAtItsAddress(t *testing.T) {
	workloadAt := func(app string) string {
		return fmt.Sprintf(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: default}
spec:
  hosts: [web.default.svc.cluster.local]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {role: web}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web-1, namespace: default}
spec: {address: 10.0.0.1, labels: {role: web, app: %s}}
`, app)
	}
	src := newFakeSource(snapshotOf(t, reviewsSE, reviewsDR, frontendToV2, workloadAt("frontend")))
	s, cc := startServer(t, src)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const route = "outbound|9080||reviews.default.svc.cluster.local"
	firstCluster := func(resp *discovery.DiscoveryResponse) string {
		t.Helper()
		var rc routev3.RouteConfiguration
		if len(resp.Resources) != 1 || resp.Resources[0].UnmarshalTo(&rc) != nil {
			t.Fatalf("response %v", resp)
		}
		return rc.VirtualHosts[0].Routes[0].GetRoute().GetCluster()
	}
	// testNode's address is 10.0.0.1, where web-1 is registered.
	if err := st.Send(&discovery.DiscoveryRequest{Node: testNode("default"), TypeUrl: RouteType, ResourceNames: []string{route}}); err != nil {
		t.Fatal(err)
	}
	resp := recvSotW(t, st)
	if got := firstCluster(resp); got != "outbound|9080|v2|reviews.default.svc.cluster.local" {
		t.Fatalf("with web-1's labels (app: frontend) the first route goes to %s, want v2", got)
	}
	if ps := s.Proxies(); len(ps) != 1 || strings.Join(ps[0].Labels, ",") != "app=frontend,role=web" {
		t.Errorf("proxy status %+v, want web-1's labels", ps)
	}
	st.Send(&discovery.DiscoveryRequest{TypeUrl: RouteType, ResourceNames: []string{route}, VersionInfo: resp.VersionInfo, ResponseNonce: resp.Nonce})

	src.set(snapshotOf(t, reviewsSE, reviewsDR, frontendToV2, workloadAt("batch")))
	if got := firstCluster(recvSotW(t, st)); got != "outbound|9080|v1|reviews.default.svc.cluster.local" {
		t.Fatalf("after web-1's labels changed to app: batch the first route goes to %s, want v1", got)
	}
	if ps := s.Proxies(); len(ps) != 1 || strings.Join(ps[0].Labels, ",") != "app=batch,role=web" {
		t.Errorf("proxy status %+v, want web-1's new labels", ps)
	}

	// A proxy at the same address that sends labels keeps them.
	own, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	node := testNode("default")
	node.Metadata.Fields["LABELS"] = structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"app": structpb.NewStringValue("frontend")}})
	if err := own.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: RouteType, ResourceNames: []string{route}}); err != nil {
		t.Fatal(err)
	}
	if got := firstCluster(recvSotW(t, own)); got != "outbound|9080|v2|reviews.default.svc.cluster.local" {
		t.Fatalf("a proxy that sends app: frontend at web-1's address: first route to %s, want v2", got)
	}
}

// TestClassesFollowWhatConfigurationSelectsBy: proxyless proxies told apart only by
// labels no configuration selects on share one class; a VirtualService matching on
// one of those labels splits them (and each gets its own routes), and its removal
// joins them again.
func TestClassesFollowWhatConfigurationSelectsBy(t *testing.T) {
	const allToV1 = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews, subset: v1}}]}]
`
	src := newFakeSource(snapshotOf(t, reviewsSE, reviewsDR, allToV1))
	s, cc := startServer(t, src)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const route = "outbound|9080||reviews.default.svc.cluster.local"
	type client struct {
		st   discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient
		last *discovery.DiscoveryResponse
	}
	// next acknowledges the client's last response and returns the cluster the first
	// route of the next one goes to.
	next := func(c *client) string {
		t.Helper()
		if c.last != nil {
			if err := c.st.Send(&discovery.DiscoveryRequest{TypeUrl: RouteType, ResourceNames: []string{route}, VersionInfo: c.last.VersionInfo, ResponseNonce: c.last.Nonce}); err != nil {
				t.Fatal(err)
			}
		}
		c.last = recvSotW(t, c.st)
		var rc routev3.RouteConfiguration
		if len(c.last.Resources) != 1 || c.last.Resources[0].UnmarshalTo(&rc) != nil {
			t.Fatalf("response %v", c.last)
		}
		return strings.Split(rc.VirtualHosts[0].Routes[0].GetRoute().GetCluster(), "|")[2]
	}
	classes := func() int {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.classes)
	}
	connect := func(app, hash string) *client {
		st, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
		if err != nil {
			t.Fatal(err)
		}
		node := testNode("default")
		node.Metadata.Fields["LABELS"] = structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
			"app": structpb.NewStringValue(app), "pod-template-hash": structpb.NewStringValue(hash)}})
		if err := st.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: RouteType, ResourceNames: []string{route}}); err != nil {
			t.Fatal(err)
		}
		return &client{st: st}
	}
	frontend, batch := connect("frontend", "5d8f"), connect("batch", "77c1")
	if f, b := next(frontend), next(batch); f != "v1" || b != "v1" {
		t.Fatalf("before any source match: frontend to %s, batch to %s; want v1 for both", f, b)
	}
	if n := classes(); n != 1 {
		t.Errorf("%d classes for two proxies told apart by labels nothing selects on, want 1", n)
	}

	src.set(snapshotOf(t, reviewsSE, reviewsDR, frontendToV2))
	if f := next(frontend); f != "v2" {
		t.Fatalf("with a route for sourceLabels app: frontend, frontend goes to %s, want v2", f)
	}
	if n := classes(); n != 2 {
		t.Errorf("%d classes once app is matched on, want 2", n)
	}

	src.set(snapshotOf(t, reviewsSE, reviewsDR, allToV1))
	if f := next(frontend); f != "v1" {
		t.Fatalf("after the source match went, frontend goes to %s, want v1", f)
	}
	deadline := time.Now().Add(10 * time.Second)
	for classes() != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := classes(); n != 1 {
		t.Errorf("%d classes after the source match went, want 1", n)
	}
}

// pushedServer is a server of src that has pushed its first snapshot, with no
// workers running: tests call push and join themselves.
func pushedServer(src SnapshotSource) *Server {
	s := NewServer(DefaultConfig(), src, NewMetrics(prometheus.NewRegistry()), slog.New(slog.DiscardHandler))
	s.push(time.Now())
	return s
}

// joiningStream is a stream of node that has joined its class as identify joins it:
// the stream's lock is still held, for the caller to release.
func joiningStream(t *testing.T, s *Server, node *corev3.Node) (*conn, *class) {
	t.Helper()
	p, err := ParseProxy(node)
	if err != nil {
		t.Fatal(err)
	}
	c := newConn(context.Background(), 1, false)
	c.mu.Lock()
	c.proxy = p
	return c, s.join(c)
}

// TestStreamJoiningDuringAPushIsRelabelled: a stream that joins its class from the
// snapshot before a push (as identify does, holding the stream's lock) while the push
// brings configuration that selects by the proxy's labels ends in the class of those
// labels. Left in the class it joined, a server whose AuthorizationPolicy arrived
// just as it connected would serve without the policy until the next change.
func TestStreamJoiningDuringAPushIsRelabelled(t *testing.T) {
	src := newFakeSource(snapshotOf(t, reviewsSE, reviewsDR))
	s := pushedServer(src)
	node := testNode("default")
	node.Metadata.Fields["LABELS"] = structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
		"app": structpb.NewStringValue("frontend")}})
	c, before := joiningStream(t, s, node)
	if strings.Contains(string(before.key), "app=frontend") {
		t.Fatalf("class %q keeps a label nothing selects by", before.key)
	}

	src.set(snapshotOf(t, reviewsSE, reviewsDR, frontendToV2))
	pushed := make(chan struct{})
	go func() {
		s.push(time.Now())
		close(pushed)
	}()
	c.mu.Unlock() // the first request is handled
	<-pushed
	_, cl := c.proxyAndClass()
	if cl == nil || !strings.Contains(string(cl.key), "app=frontend") {
		t.Fatalf("after a push that selects by app, the stream's class is %v, want one with app=frontend", cl)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.classes[cl.key] != cl || cl.members != 1 || len(s.classes) != 1 {
		t.Errorf("server's classes %v, want only the stream's, with 1 member", slices.Collect(maps.Keys(s.classes)))
	}
}

// TestClassBuildNeverGoesBack: a stream that joined from the snapshot before a push
// builds its new class after the push has built it from the newer one (join builds
// outside the server lock): the newer build stays.
func TestClassBuildNeverGoesBack(t *testing.T) {
	old := snapshotOf(t, reviewsSE, reviewsDR)
	src := newFakeSource(old)
	s := pushedServer(src)
	c, cl := joiningStream(t, s, testNode("default"))
	c.mu.Unlock()
	joinedAt := cl.build.Load().push

	src.set(snapshotOf(t, reviewsSE, reviewsDR, frontendToV2))
	s.push(time.Now())
	newer := cl.build.Load()
	if newer.snap == old {
		t.Fatal("the push did not rebuild the class")
	}
	if b := s.buildClass(cl, old, joinedAt); b != newer || cl.build.Load() != newer {
		t.Errorf("a build from the snapshot before the push replaced the push's (revision %d, want %d)", cl.build.Load().Revision, newer.Revision)
	}
}
