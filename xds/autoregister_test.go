package xds

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
)

// recordingRegistrar records what the server asks of a Registrar; it refuses
// proxies of group "refused".
type recordingRegistrar struct {
	mu     sync.Mutex
	events []string
}

func (r *recordingRegistrar) add(e string) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recordingRegistrar) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

func (r *recordingRegistrar) Register(_ context.Context, p *Proxy, _ *Identity, healthy *bool) (Registered, error) {
	if p.AutoRegisterGroup == "refused" {
		return nil, grpcstatus.Error(codes.PermissionDenied, "not this group")
	}
	h := "unreported"
	if healthy != nil {
		h = fmt.Sprint(*healthy)
	}
	r.add(fmt.Sprintf("register %s/%s %s healthy=%s", p.Namespace, p.AutoRegisterGroup, p.IP, h))
	return recordedRegistration{r}, nil
}

type recordedRegistration struct{ r *recordingRegistrar }

func (g recordedRegistration) Name() string { return "entry" }
func (g recordedRegistration) SetHealth(_ context.Context, healthy bool, msg string) error {
	g.r.add(fmt.Sprintf("health %v %q", healthy, msg))
	return nil
}
func (g recordedRegistration) Close() { g.r.add("close") }

func registeringNode(group string) *discovery.DiscoveryRequest {
	n := testNode("vms")
	n.Metadata.Fields["AUTO_REGISTER_GROUP"] = structpb.NewStringValue(group)
	return &discovery.DiscoveryRequest{Node: n, TypeUrl: HealthType,
		ErrorDetail: &rpcstatus.Status{Code: int32(codes.Unavailable), Message: "starting"}}
}

// registeringServer serves reviews with a recordingRegistrar, and opens streams to
// it that end with ctx.
func registeringServer(t *testing.T) (*Server, *recordingRegistrar, func(ctx context.Context) discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient) {
	t.Helper()
	s, cc := startServer(t, newFakeSource(snapshotOf(t, reviewsSE)))
	reg := &recordingRegistrar{}
	s.SetRegistrar(reg)
	ads := discovery.NewAggregatedDiscoveryServiceClient(cc)
	return s, reg, func(ctx context.Context) discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient {
		t.Helper()
		st, err := ads.StreamAggregatedResources(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
}

func TestAutoRegistrationAndHealthReports(t *testing.T) {
	_, reg, open := registeringServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st := open(ctx)
	// Registered with the health of its first request, which is answered with nothing.
	st.Send(registeringNode("ratings"))
	st.Send(&discovery.DiscoveryRequest{TypeUrl: HealthType})
	st.Send(&discovery.DiscoveryRequest{TypeUrl: LegacyHealthType, ErrorDetail: &rpcstatus.Status{Message: "probe failed"}})
	// A resource request on the same stream is served as usual.
	st.Send(&discovery.DiscoveryRequest{TypeUrl: ClusterType, ResourceNames: []string{"outbound|9080||reviews.default.svc.cluster.local"}})
	if resp := recvSotW(t, st); resp.TypeUrl != ClusterType {
		t.Fatalf("first response is of type %s, want only the clusters asked for", resp.TypeUrl)
	}
	st.CloseSend()
	cancel()
	want := []string{`register vms/ratings 10.0.0.1 healthy=false`, `health true ""`, `health false "probe failed"`, `close`}
	deadline := time.Now().Add(10 * time.Second)
	for fmt.Sprint(reg.seen()) != fmt.Sprint(want) {
		if time.Now().After(deadline) {
			t.Fatalf("registrar saw %q, want %q", reg.seen(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// A registration refused ends the stream with the registrar's reason.
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st = open(ctx)
	st.Send(registeringNode("refused"))
	if _, err := st.Recv(); grpcstatus.Code(err) != codes.PermissionDenied {
		t.Fatalf("refused registration: %v, want PermissionDenied", err)
	}
}

func TestEndRegisteredEndsOnlyRegisteredStreams(t *testing.T) {
	s, reg, open := registeringServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	registered := open(ctx)
	registered.Send(registeringNode("ratings"))
	plain := open(ctx)
	plain.Send(&discovery.DiscoveryRequest{Node: testNode("default"), TypeUrl: ClusterType, ResourceNames: []string{"outbound|9080||reviews.default.svc.cluster.local"}})
	recvSotW(t, plain)
	for len(s.Proxies()) < 2 {
		time.Sleep(10 * time.Millisecond)
	}

	s.EndRegistered()
	if _, err := registered.Recv(); grpcstatus.Code(err) != codes.Unavailable {
		t.Fatalf("registered stream: %v, want Unavailable", err)
	}
	// The other stream is still served: a change reaches it.
	plain.Send(&discovery.DiscoveryRequest{TypeUrl: ClusterType, ResourceNames: []string{"outbound|9080|v1|reviews.default.svc.cluster.local"}})
	if resp := recvSotW(t, plain); resp.TypeUrl != ClusterType {
		t.Fatalf("unregistered stream got %v", resp)
	}
	deadline := time.Now().Add(10 * time.Second)
	for fmt.Sprint(reg.seen()) != fmt.Sprint([]string{"register vms/ratings 10.0.0.1 healthy=false", "close"}) {
		if time.Now().After(deadline) {
			t.Fatalf("registrar saw %q", reg.seen())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
