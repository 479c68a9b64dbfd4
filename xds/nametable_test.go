package xds

import (
	"bytes"
	"context"
	"reflect"
	"testing"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/structpb"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/registry"
	"github.com/navarch/navarch/store"
)

// nameTableInput: ServiceEntries of one address, two addresses, a single-address
// CIDR, a wider range, none (resolved by DNS), and a headless one (resolution NONE)
// with endpoints of no network and of network net-2, one failing its checks;
// a headless entry that lists no endpoints; and, in namespace other, a service a
// Sidecar of namespace scoped keeps from its proxies.
const nameTableInput = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  addresses: [240.240.0.10]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.1.0.1}]
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
  endpoints: [{address: 10.1.0.3}]
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
spec: {address: 10.1.0.5, labels: {app: db}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: db-1, namespace: default, annotations: {navarch.io/health: unhealthy}}
spec: {address: 10.1.0.6, labels: {app: db}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: db-2, namespace: default}
spec: {address: 10.2.0.7, labels: {app: db}, network: net-2}
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
  endpoints: [{address: 10.1.0.8}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: scoped}
spec:
  egress: [{hosts: [default/*]}]
`

// TestNameTable: a proxy's name table has what istiod's has: the services it sees
// with their addresses (a single-address CIDR as its address), a headless
// service with its healthy endpoints in the proxy's network (a proxy of no network:
// in every network), and nothing for a
// service without an address to answer with; registry External for ServiceEntries.
func TestNameTable(t *testing.T) {
	snap := snapshotOf(t, nameTableInput)
	external := func(ips ...string) NameInfo { return NameInfo{IPs: ips, Registry: registryExternal} }
	want := map[string]NameInfo{
		"reviews.default.svc.cluster.local": external("240.240.0.10"),
		"twice.example.com":                 external("240.240.0.20", "240.240.0.21"),
		"one.example.com":                   external("240.240.0.30"),
		"db.default.svc.cluster.local":      external("10.1.0.5", "10.2.0.7"),
		"ratings.other.svc.cluster.local":   external("240.240.0.40"),
	}
	got := nameTable(newContext(snap, grpcProxy("default", nil), "cluster.local", "istio-system"))
	if !reflect.DeepEqual(got, want) {
		t.Errorf("name table:\n got %v\nwant %v", got, want)
	}

	p := grpcProxy("default", nil)
	p.Network = "net-1"
	if got := nameTable(newContext(snap, p, "cluster.local", "istio-system"))["db.default.svc.cluster.local"]; !reflect.DeepEqual(got, external("10.1.0.5")) {
		t.Errorf("the headless service from network net-1: %v, want only the endpoint of no network", got)
	}

	scoped := nameTable(newContext(snap, grpcProxy("scoped", nil), "cluster.local", "istio-system"))
	if _, ok := scoped["ratings.other.svc.cluster.local"]; ok || len(scoped) != 4 {
		t.Errorf("a proxy whose Sidecar imports only namespace default: %v, want default's four names", scoped)
	}

	// The table survives the wire, encoded as proto's deterministic marshalling
	// of the message encodes it.
	r := nameTableResource(want)
	if generic, err := deterministic.Marshal(newNameTable(want)); err != nil || !bytes.Equal(generic, r.Body.Value) {
		t.Errorf("the name table's bytes differ from its message's deterministic marshalling (%v)", err)
	}
	decoded, err := DecodeNameTable(r.Body.Value)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(decoded, want) {
		t.Errorf("decoded %v, want %v", decoded, want)
	}
}

// TestNameTableOfKubernetesServices: a Kubernetes service's entry names its
// namespace and short name (from which istio-agent answers reviews and
// reviews.shop), and gives a proxy of the service's cluster the cluster IPs of its
// IP version (a dual-stack proxy, of the first's), as istiod; a proxy elsewhere the
// first.
func TestNameTableOfKubernetesServices(t *testing.T) {
	rs, _, err := api.Decode("doc", []byte(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews.shop.svc.cluster.local]
  addresses: [10.96.0.10, "fd00::10"]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
`), "")
	if err != nil {
		t.Fatal(err)
	}
	snap := registry.NewSnapshot([]store.Entry{{Space: store.RegistrySpace(registry.KubernetesSource("east")), Resource: rs[0]}}, 1, "cluster.local")
	for _, c := range []struct {
		name, cluster, families string
		want                    []string
	}{
		{"an IPv4 proxy of the cluster", "east", "4", []string{"10.96.0.10"}},
		{"a dual-stack proxy of the cluster: the first address's version", "east", "46", []string{"10.96.0.10"}},
		{"an IPv6 proxy of the cluster", "east", "6", []string{"fd00::10"}},
		{"an IPv6 proxy of another cluster", "west", "6", nil},
		{"a dual-stack proxy of another cluster", "west", "46", []string{"10.96.0.10"}},
	} {
		p := grpcProxy("shop", nil)
		p.ClusterID, p.IPFamilies = c.cluster, c.families
		got, ok := nameTable(newContext(snap, p, "cluster.local", "istio-system"))["reviews.shop.svc.cluster.local"]
		want := NameInfo{IPs: c.want, Registry: registryKubernetes, Namespace: "shop", Shortname: "reviews"}
		if c.want == nil {
			if ok {
				t.Errorf("%s: %v, want no entry", c.name, got)
			}
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %v, want %v", c.name, got, want)
		}
	}
}

// TestNameTableIsServedOnRequest: a proxy that asks for the name table (as
// istio-agent does, naming nothing) gets it over SotW and Delta, and a change of a
// service's address is pushed to it.
func TestNameTableIsServedOnRequest(t *testing.T) {
	src := newFakeSource(snapshotOf(t, nameTableInput))
	_, cc := startServer(t, src)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ads := discovery.NewAggregatedDiscoveryServiceClient(cc)
	md, _ := structpb.NewStruct(map[string]any{"NAMESPACE": "default", "ISTIO_META_DNS_CAPTURE": "true"})
	node := &corev3.Node{Id: "sidecar~10.0.0.1~vm.default~default.svc.cluster.local", Metadata: md}
	table := func(b []byte) map[string]NameInfo {
		t.Helper()
		nt, err := DecodeNameTable(b)
		if err != nil {
			t.Fatal(err)
		}
		return nt
	}

	sotw, err := ads.StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := sotw.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: NameTableType}); err != nil {
		t.Fatal(err)
	}
	resp := recvSotW(t, sotw)
	if len(resp.Resources) != 1 || resp.TypeUrl != NameTableType {
		t.Fatalf("SotW: %d resources of %s, want one name table", len(resp.Resources), resp.TypeUrl)
	}
	if got := table(resp.Resources[0].Value)["reviews.default.svc.cluster.local"].IPs; !reflect.DeepEqual(got, []string{"240.240.0.10"}) {
		t.Errorf("SotW: reviews resolves to %v", got)
	}
	if err := sotw.Send(&discovery.DiscoveryRequest{TypeUrl: NameTableType, VersionInfo: resp.VersionInfo, ResponseNonce: resp.Nonce}); err != nil {
		t.Fatal(err)
	}

	delta, err := ads.DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := delta.Send(&discovery.DeltaDiscoveryRequest{Node: node, TypeUrl: NameTableType}); err != nil {
		t.Fatal(err)
	}
	dresp, err := delta.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(dresp.Resources) != 1 || !reflect.DeepEqual(table(dresp.Resources[0].Resource.Value), table(resp.Resources[0].Value)) {
		t.Fatalf("Delta: %d resources, want the SotW stream's name table", len(dresp.Resources))
	}
	if err := delta.Send(&discovery.DeltaDiscoveryRequest{TypeUrl: NameTableType, ResponseNonce: dresp.Nonce}); err != nil {
		t.Fatal(err)
	}

	moved := snapshotAt(t, 2, nameTableInput+"---\n"+`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: details, namespace: default}
spec:
  hosts: [details.default.svc.cluster.local]
  addresses: [240.240.0.50]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.1.0.9}]
`)
	src.set(moved)
	if got := table(recvSotW(t, sotw).Resources[0].Value)["details.default.svc.cluster.local"].IPs; !reflect.DeepEqual(got, []string{"240.240.0.50"}) {
		t.Errorf("SotW after a new service: details resolves to %v", got)
	}
	dresp, err = delta.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if got := table(dresp.Resources[0].Resource.Value)["details.default.svc.cluster.local"].IPs; !reflect.DeepEqual(got, []string{"240.240.0.50"}) {
		t.Errorf("Delta after a new service: details resolves to %v", got)
	}
}

// TestAllocatedAddressesForDNSCapture: a proxy with DNS capture knows a TCP
// ServiceEntry resolved by DNS without addresses by the address allocated to it,
// in its name table and by a listener of its own, as istiod's auto-allocation; a
// proxy without it has the port's wildcard listener and no name for it.
func TestAllocatedAddressesForDNSCapture(t *testing.T) {
	snap := snapshotOf(t, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: default}
spec:
  hosts: [db.example.com]
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  resolution: DNS
`)
	svc := snap.Service("db.example.com", "default")
	if svc == nil || len(svc.AutoAddresses) != 2 {
		t.Fatalf("db has no allocated addresses: %+v", svc)
	}
	vip := svc.AutoAddresses[0]
	for _, capture := range []bool{true, false} {
		p := grpcProxy("default", nil)
		p.Generator, p.IstioProxy, p.DNSCapture, p.IPFamilies = "", true, capture, "4"
		ctx := newContext(snap, p, "cluster.local", "istio-system")
		sets, err := sidecarProfile().build(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, vipListener := sets[ListenerType].ByName[vip+"_5432"]
		_, wildcard := sets[ListenerType].ByName["0.0.0.0_5432"]
		ni, named := nameTable(ctx)["db.example.com"]
		switch {
		case capture && (!vipListener || wildcard || !named || !reflect.DeepEqual(ni.IPs, []string{vip})):
			t.Errorf("with DNS capture: listener at %s %t, at 0.0.0.0 %t, name table %v; want the allocated address's", vip, vipListener, wildcard, ni)
		case !capture && (vipListener || !wildcard || named):
			t.Errorf("without DNS capture: listener at %s %t, at 0.0.0.0 %t, name table %v; want the wildcard listener, no name", vip, vipListener, wildcard, ni)
		}
	}
}

// TestNameTableOfStatefulSetPods: a headless Kubernetes service's pods with a
// name of their own (a StatefulSet's: hostname and subdomain) each resolve by it
// to their address, as Kubernetes' DNS and istiod's name table have them; a pod
// that is not ready has no name, nor does one of another network.
func TestNameTableOfStatefulSetPods(t *testing.T) {
	rs, _, err := api.Decode("doc", []byte(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: kafka, namespace: shop}
spec:
  hosts: [kafka.shop.svc.cluster.local]
  ports: [{number: 9092, name: tcp, protocol: TCP}]
  resolution: NONE
  workloadSelector: {labels: {app: kafka}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: kafka-0, namespace: shop, annotations: {navarch.io/pod-dns-name: kafka-0.kafka}}
spec: {address: 10.1.0.10, labels: {app: kafka}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: kafka-1, namespace: shop, annotations: {navarch.io/pod-dns-name: kafka-1.kafka, navarch.io/health: unhealthy}}
spec: {address: 10.1.0.11, labels: {app: kafka}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: kafka-2, namespace: shop, annotations: {navarch.io/pod-dns-name: kafka-2.kafka}}
spec: {address: 10.2.0.12, labels: {app: kafka}, network: far}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: loose, namespace: shop}
spec: {address: 10.1.0.13, labels: {app: kafka}}
`), "")
	if err != nil {
		t.Fatal(err)
	}
	var entries []store.Entry
	for _, r := range rs {
		entries = append(entries, store.Entry{Space: store.RegistrySpace(registry.KubernetesSource("east")), Resource: r})
	}
	snap := registry.NewSnapshot(entries, 1, "cluster.local")
	p := grpcProxy("shop", nil)
	p.Network = "near"
	got := nameTable(newContext(snap, p, "cluster.local", "istio-system"))
	kube := func(short string, ips ...string) NameInfo {
		return NameInfo{IPs: ips, Registry: registryKubernetes, Namespace: "shop", Shortname: short}
	}
	want := map[string]NameInfo{
		"kafka.shop.svc.cluster.local":         kube("kafka", "10.1.0.10", "10.1.0.13"),
		"kafka-0.kafka.shop.svc.cluster.local": kube("kafka-0.kafka", "10.1.0.10"),
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("name table:\n got %v\nwant %v", got, want)
	}
}

// newNameTable is the NameTable message of entries, built generically from its
// descriptor: what encodeNameTable must marshal alike.
func newNameTable(entries map[string]NameInfo) proto.Message {
	td, id := nameTableDescriptors()
	m := dynamicpb.NewMessage(td)
	table := m.Mutable(td.Fields().ByName("table")).Map()
	f := id.Fields()
	for host, ni := range entries {
		info := dynamicpb.NewMessage(id)
		ips := info.Mutable(f.ByName("ips")).List()
		for _, ip := range ni.IPs {
			ips.Append(protoreflect.ValueOfString(ip))
		}
		for field, v := range map[protoreflect.Name]string{"registry": ni.Registry, "shortname": ni.Shortname, "namespace": ni.Namespace} {
			if v != "" {
				info.Set(f.ByName(field), protoreflect.ValueOfString(v))
			}
		}
		table.Set(protoreflect.ValueOfString(host).MapKey(), protoreflect.ValueOfMessage(info))
	}
	return m
}
