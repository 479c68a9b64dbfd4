package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"

	"github.com/navarch/navarch/adapters/kubernetes/kubetest"
	"github.com/navarch/navarch/client"
	"github.com/navarch/navarch/internal/peers"
	"github.com/navarch/navarch/xds"
)

// nameTableParity is configuration whose services a name table treats each its own
// way: a ServiceEntry of one address, of two, of a single-address CIDR, of a wider
// range, of none (resolved by DNS: allocated one), a headless one (resolution NONE) selecting
// WorkloadEntries of no network and of network net-2, a headless one listing no
// endpoints, and in namespace other a service that a Sidecar of namespace scoped
// leaves out of its proxies' view.
const nameTableParity = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  addresses: [240.240.0.10]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.31}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: twice, namespace: default}
spec:
  hosts: [twice.example.com]
  addresses: [240.240.0.20, 240.240.0.21]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: block, namespace: default}
spec:
  hosts: [one.example.com]
  addresses: [240.240.0.30/32]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.32}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: range, namespace: default}
spec:
  hosts: [range.example.com]
  addresses: [240.240.1.0/24]
  ports: [{number: 80, name: tcp, protocol: TCP}]
  resolution: NONE
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external, namespace: default}
spec:
  hosts: [api.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: default}
spec:
  hosts: [db.default.svc.cluster.local]
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  resolution: NONE
  workloadSelector: {labels: {app: db}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: db-0, namespace: default}
spec: {address: 127.0.0.35, labels: {app: db}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: db-2, namespace: default}
spec: {address: 127.0.0.37, labels: {app: db}, network: net-2}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: anywhere, namespace: default}
spec:
  hosts: [anywhere.example.com]
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  resolution: NONE
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: other}
spec:
  hosts: [ratings.other.svc.cluster.local]
  addresses: [240.240.0.40]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.38}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: scoped}
spec:
  egress: [{hosts: [default/*]}]
`

// nameTableCluster is a Kubernetes cluster of a Service with a cluster IP and a
// headless one whose two pods, with names of their own under it (subdomain; one
// with a hostname), are one ready and one not.
const nameTableCluster = `apiVersion: v1
kind: Service
metadata: {name: details, namespace: default}
spec:
  selector: {app: details}
  clusterIP: 10.96.0.60
  ports: [{name: http, port: 9080}]
---
apiVersion: v1
kind: Service
metadata: {name: cache, namespace: default}
spec:
  selector: {app: cache}
  clusterIP: None
  ports: [{name: tcp-redis, port: 6379}]
---
apiVersion: v1
kind: Pod
metadata: {name: cache-0, namespace: default, labels: {app: cache}}
spec:
  serviceAccountName: default
  hostname: primary
  subdomain: cache
  containers: [{name: cache, image: registry.example/cache:1, ports: [{containerPort: 6379}]}]
status:
  phase: Running
  podIP: 127.0.0.41
  podIPs: [{ip: 127.0.0.41}]
  conditions: [{type: Ready, status: "True"}]
---
apiVersion: v1
kind: Pod
metadata: {name: cache-1, namespace: default, labels: {app: cache}}
spec:
  serviceAccountName: default
  subdomain: cache
  containers: [{name: cache, image: registry.example/cache:1, ports: [{containerPort: 6379}]}]
status:
  phase: Running
  podIP: 127.0.0.42
  podIPs: [{ip: 127.0.0.42}]
  conditions: [{type: Ready, status: "False"}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: cache-0
  namespace: default
  labels: {kubernetes.io/service-name: cache, endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io}
addressType: IPv4
endpoints:
- {addresses: [127.0.0.41], conditions: {ready: true}, targetRef: {kind: Pod, name: cache-0, namespace: default}}
- {addresses: [127.0.0.42], conditions: {ready: false}, targetRef: {kind: Pod, name: cache-1, namespace: default}}
ports: [{name: tcp-redis, port: 6379, protocol: TCP}]
`

// nameTable asks server over ADS, as istio-agent does for its DNS proxy (a request
// naming nothing), for the name table of a proxy of node id and metadata md, less
// nameTableNotCompared.
func nameTable(t *testing.T, server, id string, md map[string]any) map[string]xds.NameInfo {
	t.Helper()
	st, node := adsStream(t, server, id, md)
	if err := st.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: xds.NameTableType}); err != nil {
		t.Fatal(err)
	}
	for {
		res, err := st.Recv()
		if err != nil {
			t.Fatalf("the name table from %s: %v", server, err)
		}
		if res.TypeUrl != xds.NameTableType || len(res.Resources) != 1 {
			continue
		}
		nt, err := xds.DecodeNameTable(res.Resources[0].Value)
		if err != nil {
			t.Fatal(err)
		}
		for host, ni := range nt {
			if nameTableNotCompared[host] {
				delete(nt, host)
				continue
			} // a headless service's endpoints come in no set order
			slices.Sort(ni.IPs)
			nt[host] = ni
		}
		return nt
	}
}

// nameTableNotCompared are the names TestSameNameTableAsIstiod leaves out:
// kubernetes.default, the Service of the real API server navarch follows, which
// istiod's fake cluster does not have; and db.default, a headless ServiceEntry
// selecting WorkloadEntries, which istiod's discovery server as Istio's tests run
// it gives no entry (its endpoints never reach the push context the table is built
// from), while Istio's own name-table tests give such an entry its endpoints'
// addresses, as navarch does (xds TestNameTable).
var nameTableNotCompared = map[string]bool{"kubernetes.default.svc.cluster.local": true, "db.default.svc.cluster.local": true}

// TestSameNameTableAsIstiod gives istiod (with its Kubernetes registry over a fake
// client) and a navarch node (its Kubernetes adapter over a real API server) the
// same ServiceEntries and Kubernetes cluster, and compares the name tables, which
// istio-agent's DNS proxy answers from, of sidecars with DNS capture: in namespaces
// with and without a Sidecar, in another network, IPv6-only, in the cluster, and of
// an ingress gateway.
func TestSameNameTableAsIstiod(t *testing.T) {
	bin := peers.Binary(t, "istiod-xds", "NAVARCH_ISTIOD_XDS_BIN")
	kc := kubetest.Start(t)
	createKubeObjects(t, kc, nameTableCluster)
	node := startDevNode(t, "--kubeconfig", kc.Kubeconfig)
	applyServed(t, node, nameTableParity)
	// api.example.com has an address allocated, which proxies with DNS capture
	// know it by: istiod is given navarch's as its allocator's status.
	var reg client.RegistryListing
	if err := json.Unmarshal([]byte(mustCLI(t, node.HTTP, "registry", "-o", "json")), &reg); err != nil {
		t.Fatal(err)
	}
	istiod := startIstiod(t, bin, "127.0.0.1:0", withAllocatedStatus(t, nameTableParity, reg),
		"--kube", writeFile(t, t.TempDir(), "kube.yaml", nameTableCluster))

	sidecar := func(ns, ip string, extra map[string]any) (string, map[string]any) {
		md := map[string]any{"NAMESPACE": ns, "ISTIO_META_DNS_CAPTURE": "true", "DNS_CAPTURE": "true"}
		maps.Copy(md, extra)
		return fmt.Sprintf("sidecar~%s~app.%s~%s.svc.cluster.local", ip, ns, ns), md
	}
	type proxy struct {
		name            string
		id              string
		istiodMD, navMD map[string]any
	}
	same := func(name, id string, md map[string]any) proxy { return proxy{name, id, md, md} }
	var proxies []proxy
	for _, c := range []struct {
		name, ns, ip string
		extra        map[string]any
	}{
		{"a sidecar", "default", "127.0.0.50", nil},
		{"a sidecar whose Sidecar sees namespace default only", "scoped", "127.0.0.51", nil},
		{"a sidecar in network net-1", "default", "127.0.0.52", map[string]any{"NETWORK": "net-1"}},
		{"a sidecar in network net-2", "default", "127.0.0.53", map[string]any{"NETWORK": "net-2"}},
		{"an IPv6 sidecar", "default", "fd00::54", nil},
	} {
		id, md := sidecar(c.ns, c.ip, c.extra)
		proxies = append(proxies, same(c.name, id, md))
	}
	// The proxy of the cluster: each names it as it calls it.
	id, md := sidecar("default", "127.0.0.55", nil)
	inIstiod, inNavarch := maps.Clone(md), maps.Clone(md)
	inIstiod["CLUSTER_ID"], inNavarch["CLUSTER_ID"] = "Kubernetes", "kubernetes"
	proxies = append(proxies, proxy{"a sidecar of the Kubernetes cluster", id, inIstiod, inNavarch},
		same("an ingress gateway", "router~127.0.0.56~ingressgateway.default~default.svc.cluster.local",
			map[string]any{"NAMESPACE": "default", "LABELS": map[string]any{"istio": "ingressgateway"}}))

	for _, p := range proxies {
		t.Run(p.name, func(t *testing.T) {
			want := nameTable(t, istiod, p.id, p.istiodMD)
			t.Logf("istiod: %v", want)
			if len(want) < 3 {
				t.Fatalf("istiod's name table has %d names: %v", len(want), want)
			}
			// The adapter writes the cluster a moment after the node is ready.
			eventually(t, 30*time.Second, "the same name table as istiod's", func() error {
				got := nameTable(t, node.XDS, p.id, p.navMD)
				var diffs []string
				for _, host := range slices.Sorted(maps.Keys(want)) {
					if w, g := fmt.Sprint(want[host]), fmt.Sprint(got[host]); w != g {
						diffs = append(diffs, fmt.Sprintf("%s: istiod %s, navarch %s", host, w, g))
					}
				}
				for _, host := range slices.Sorted(maps.Keys(got)) {
					if _, ok := want[host]; !ok {
						diffs = append(diffs, fmt.Sprintf("%s: navarch only, %v", host, got[host]))
					}
				}
				if len(diffs) > 0 {
					return fmt.Errorf("%d names differ:\n%s", len(diffs), strings.Join(diffs, "\n"))
				}
				return nil
			})
		})
	}
}
