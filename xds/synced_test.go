package xds

import (
	"context"
	"testing"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
)

// reviewsLeastRequestDR is reviewsDR with another load balancer: a change to the
// reviews clusters.
const reviewsLeastRequestDR = `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  trafficPolicy: {loadBalancer: {simple: LEAST_REQUEST}}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
`

// otherNamespaceSE is a service only its own namespace sees: a change that
// proxies elsewhere get nothing of.
const otherNamespaceSE = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: other, namespace: other}
spec:
  hosts: [other.other.svc.cluster.local]
  ports: [{number: 80, name: http, protocol: HTTP}]
  exportTo: ["."]
  resolution: STATIC`

// TestSyncedRevision: a proxy's synced revision (what navarch wait waits on) is
// the revision it has taken in full: it moves with changes that send it nothing,
// is 0 while a response waits for its ACK or was rejected, and returns once the
// proxy acknowledges.
func TestSyncedRevision(t *testing.T) {
	src := newFakeSource(snapshotAt(t, 5, reviewsSE, reviewsDR))
	s, cc := startServer(t, src)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	synced := func(want int64, what string) {
		t.Helper()
		var got int64 = -1
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if ps := s.Proxies(); len(ps) == 1 {
				if got = ps[0].Synced; got == want {
					return
				}
			}
		}
		t.Fatalf("%s: synced revision %d, want %d", what, got, want)
	}
	cluster := "outbound|9080|v1|reviews.default.svc.cluster.local"
	st.Send(&discovery.DiscoveryRequest{Node: testNode("default"), TypeUrl: ClusterType, ResourceNames: []string{cluster}})
	cds := recvSotW(t, st)
	synced(0, "the clusters sent, not acknowledged")
	st.Send(&discovery.DiscoveryRequest{TypeUrl: ClusterType, ResourceNames: []string{cluster}, VersionInfo: cds.VersionInfo, ResponseNonce: cds.Nonce})
	synced(5, "the clusters acknowledged")

	// A change elsewhere: nothing to send, and the proxy is up to it.
	src.set(snapshotAt(t, 7, reviewsSE, reviewsDR, otherNamespaceSE))
	synced(7, "a change that sends the proxy nothing")

	// A change to its cluster, rejected: not synced, whatever comes after.
	src.set(snapshotAt(t, 9, reviewsSE, reviewsLeastRequestDR))
	next := recvSotW(t, st)
	st.Send(&discovery.DiscoveryRequest{TypeUrl: ClusterType, ResourceNames: []string{cluster}, ResponseNonce: next.Nonce,
		ErrorDetail: &status.Status{Code: int32(codes.InvalidArgument), Message: "test rejects it"}})
	synced(0, "the change rejected")
	// Builds move on; the proxy is brought up to them, and still not synced.
	src.set(snapshotAt(t, 11, reviewsSE, reviewsLeastRequestDR, otherNamespaceSE))
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		ps := s.Proxies()
		if len(ps) == 1 && ps[0].Types["cds"].Revision == 11 {
			if ps[0].Synced != 0 {
				t.Fatalf("a proxy that rejected its clusters is synced at %d", ps[0].Synced)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the proxy was not brought up to revision 11: %+v", ps)
		}
	}
}
