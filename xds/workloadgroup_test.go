package xds

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	networking "istio.io/api/networking/v1alpha3"
)

const workloadGroupInput = `apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {name: ratings, namespace: vms}
spec:
  template: {serviceAccount: ratings}
  probe: {tcpSocket: {port: 9080}, periodSeconds: %d}
`

// TestWorkloadGroupIsServedToItsNamespace: a proxy subscribed to a WorkloadGroup
// of its namespace gets its spec, and again when it changes; a proxy of another
// namespace asking for the same name gets nothing.
func TestWorkloadGroupIsServedToItsNamespace(t *testing.T) {
	src := newFakeSource(snapshotOf(t, fmt.Sprintf(workloadGroupInput, 5)))
	_, cc := startServer(t, src)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ads := discovery.NewAggregatedDiscoveryServiceClient(cc)
	subscribe := func(ns string) discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient {
		t.Helper()
		md, _ := structpb.NewStruct(map[string]any{"NAMESPACE": ns, "GENERATOR": "grpc"})
		stream, err := ads.StreamAggregatedResources(ctx)
		if err != nil {
			t.Fatal(err)
		}
		node := &corev3.Node{Id: "sidecar~10.0.0.1~vm." + ns + "~" + ns + ".svc.cluster.local", Metadata: md}
		if err := stream.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: WorkloadGroupType, ResourceNames: []string{"ratings"}}); err != nil {
			t.Fatal(err)
		}
		return stream
	}
	period := func(resp *discovery.DiscoveryResponse) int32 {
		t.Helper()
		if len(resp.Resources) != 1 || resp.TypeUrl != WorkloadGroupType || resp.Resources[0].TypeUrl != WorkloadGroupType {
			t.Fatalf("%d resources of %s, want the group", len(resp.Resources), resp.TypeUrl)
		}
		var wg networking.WorkloadGroup
		if err := proto.Unmarshal(resp.Resources[0].Value, &wg); err != nil {
			t.Fatal(err)
		}
		if wg.GetTemplate().GetServiceAccount() != "ratings" || wg.GetProbe().GetTcpSocket().GetPort() != 9080 {
			t.Fatalf("group %v", &wg)
		}
		return wg.GetProbe().GetPeriodSeconds()
	}

	vms := subscribe("vms")
	resp := recvSotW(t, vms)
	if got := period(resp); got != 5 {
		t.Errorf("probe period %d, want 5", got)
	}
	if err := vms.Send(&discovery.DiscoveryRequest{TypeUrl: WorkloadGroupType, ResourceNames: []string{"ratings"}, VersionInfo: resp.VersionInfo, ResponseNonce: resp.Nonce}); err != nil {
		t.Fatal(err)
	}
	if other := recvSotW(t, subscribe("default")); len(other.Resources) != 0 {
		t.Errorf("a proxy of namespace default was sent %d resources for vms' group", len(other.Resources))
	}

	src.set(snapshotAt(t, 2, fmt.Sprintf(workloadGroupInput, 7)))
	if got := period(recvSotW(t, vms)); got != 7 {
		t.Errorf("after the change: probe period %d, want 7", got)
	}
}
