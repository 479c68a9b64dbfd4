package registry

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/store"
)

func snapshot(t *testing.T, space store.Space, docs string) *Snapshot {
	t.Helper()
	rs, _, err := api.Decode("test", []byte(docs), "")
	if err != nil {
		t.Fatal(err)
	}
	var entries []store.Entry
	for _, r := range rs {
		entries = append(entries, store.Entry{Space: space, Resource: r})
	}
	return NewSnapshot(entries, 7, "cluster.local")
}

func TestServicesAndEndpoints(t *testing.T) {
	snap := snapshot(t, store.ConfigSpace, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: shop}
spec:
  hosts: [ratings, ratings.example.com]
  ports:
  - {number: 9080, name: http, protocol: HTTP, targetPort: 8080}
  - {number: 9090, name: grpc, protocol: GRPC}
  resolution: STATIC
  workloadSelector: {labels: {app: ratings}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ratings-vm1, namespace: shop}
spec:
  address: 10.0.0.1
  labels: {app: ratings, version: v1}
  ports: {grpc: 19090}
  locality: us-east/a
  serviceAccount: ratings
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: other-vm, namespace: shop}
spec:
  address: 10.0.0.2
  labels: {app: other}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ratings-elsewhere, namespace: other}
spec:
  address: 10.0.0.3
  labels: {app: ratings}
`)
	if n := len(snap.Services()); n != 2 {
		t.Fatalf("got %d services, want 2 (one per host)", n)
	}
	svc := snap.Service("ratings.shop.svc.cluster.local", "shop")
	if svc == nil {
		t.Fatal("the short host ratings in namespace shop must resolve to ratings.shop.svc.cluster.local")
	}
	eps := snap.Endpoints(svc)
	if len(eps) != 1 || eps[0].Name != "ratings-vm1" {
		t.Fatalf("endpoints %v, want only ratings-vm1 (selected, same namespace)", eps)
	}
	http, _ := svc.Port(9080)
	grpcPort, _ := svc.Port(9090)
	if got := eps[0].PortFor(http); got != 8080 {
		t.Fatalf("http port: workload serves on %d, want the target port 8080", got)
	}
	if got := eps[0].PortFor(grpcPort); got != 19090 {
		t.Fatalf("grpc port: workload serves on %d, want its own port 19090", got)
	}
	if svc.Source != SourceServiceEntry || svc.Origin.Kind != api.ServiceEntry {
		t.Fatalf("source %q origin %v", svc.Source, svc.Origin)
	}
}

func TestInlineEndpointsAndRegistrySources(t *testing.T) {
	snap := snapshot(t, store.RegistrySpace("consul"), `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: consul}
spec:
  hosts: [web.service.consul]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 10.0.1.1, locality: dc1, labels: {version: v1}}
  - {address: 10.0.1.2, locality: dc1, weight: 3}
`)
	svc := snap.Service("web.service.consul", "default")
	if svc == nil || svc.Source != "consul" {
		t.Fatalf("service %+v, want web.service.consul from source consul", svc)
	}
	if eps := snap.Endpoints(svc); len(eps) != 2 || eps[1].Weight != 3 || eps[0].Locality != "dc1" {
		t.Fatalf("endpoints %+v", eps)
	}
	if len(snap.Config(api.ServiceEntry)) != 0 {
		t.Fatal("registry entries must not show up as user configuration")
	}
}

func TestDestinationRuleLookup(t *testing.T) {
	snap := snapshot(t, store.ConfigSpace, `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: wildcard, namespace: shop}
spec: {host: "*.shop.svc.cluster.local"}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: exact, namespace: shop}
spec: {host: ratings}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: private, namespace: other}
spec: {host: ratings.shop.svc.cluster.local, exportTo: ["."]}
`)
	if dr := snap.DestinationRule("ratings.shop.svc.cluster.local", "shop", "shop", "istio-system", nil); dr == nil || dr.Meta.Name != "exact" {
		t.Fatalf("got %v, want the exact-host rule", dr)
	}
	if dr := snap.DestinationRule("cart.shop.svc.cluster.local", "shop", "shop", "istio-system", nil); dr == nil || dr.Meta.Name != "wildcard" {
		t.Fatalf("got %v, want the wildcard rule", dr)
	}
	if dr := snap.DestinationRule("ratings.shop.svc.cluster.local", "other", "shop", "istio-system", nil); dr == nil || dr.Meta.Name != "private" {
		t.Fatalf("from namespace other got %v, want its own rule", dr)
	}
}

// TestDestinationRuleWorkloadSelector: a DestinationRule with a workloadSelector
// applies to the workloads of its namespace it selects, ahead of the rules without a
// selector, and to no one else; as in Istio, a namespace's rules for a host hide
// other namespaces' for it even when none of them selects the proxy.
func TestDestinationRuleWorkloadSelector(t *testing.T) {
	snap := snapshot(t, store.ConfigSpace, `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: everyone, namespace: shop}
spec: {host: ratings.shop.svc.cluster.local}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: canary-clients, namespace: shop}
spec:
  host: ratings.shop.svc.cluster.local
  workloadSelector: {matchLabels: {track: canary}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: others-canaries, namespace: other}
spec:
  host: ratings.shop.svc.cluster.local
  workloadSelector: {matchLabels: {track: canary}}
`)
	for _, tt := range []struct {
		ns     string
		labels map[string]string
		want   string
	}{
		{"shop", map[string]string{"track": "canary", "app": "web"}, "canary-clients"},
		{"shop", map[string]string{"track": "stable"}, "everyone"},
		{"shop", nil, "everyone"},
		{"other", map[string]string{"track": "canary"}, "others-canaries"},
		{"other", map[string]string{"track": "stable"}, ""},
	} {
		got := ""
		if dr := snap.DestinationRule("ratings.shop.svc.cluster.local", tt.ns, "shop", "istio-system", tt.labels); dr != nil {
			got = dr.Meta.Name
		}
		if got != tt.want {
			t.Errorf("a client in %s with %v: got rule %q, want %q", tt.ns, tt.labels, got, tt.want)
		}
	}
}

// TestDestinationRuleSelectorOnlyRule: when the only rule naming a host exactly has
// a workloadSelector, the proxies it does not select get no rule: the most specific
// host decides, as in Istio, and a wildcard rule does not stand in.
func TestDestinationRuleSelectorOnlyRule(t *testing.T) {
	snap := snapshot(t, store.ConfigSpace, `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: shop-wide, namespace: shop}
spec: {host: "*.shop.svc.cluster.local"}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: canary-carts, namespace: shop}
spec:
  host: cart
  workloadSelector: {matchLabels: {track: canary}}
`)
	rules := snap.DestinationRules("shop", "istio-system")
	for _, tt := range []struct {
		host   string
		labels map[string]string
		want   string
	}{
		{"cart.shop.svc.cluster.local", map[string]string{"track": "canary"}, "canary-carts"},
		{"cart.shop.svc.cluster.local", map[string]string{"track": "stable"}, ""},
		{"ratings.shop.svc.cluster.local", map[string]string{"track": "canary"}, "shop-wide"},
		{"ratings.example.com", nil, ""},
	} {
		got := ""
		if dr := rules.For(tt.host, "shop", tt.labels); dr != nil {
			got = dr.Meta.Name
		}
		if got != tt.want {
			t.Errorf("%s for %v: got rule %q, want %q", tt.host, tt.labels, got, tt.want)
		}
	}
}

// TestDestinationRuleChoice: which namespace's rule a proxy takes (its own, even
// for a wildcard host, before the service's exact one; the service's; the root
// namespace's; never a third namespace's) and how rules of one host and namespace
// merge.
func TestDestinationRuleChoice(t *testing.T) {
	snap := snapshot(t, store.ConfigSpace, `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: client-wide, namespace: client}
spec: {host: "*.shop.svc.cluster.local"}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: shop}
spec: {host: ratings}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: cart-third, namespace: third}
spec: {host: cart.shop.svc.cluster.local, exportTo: ["*"]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: cart-root, namespace: istio-system}
spec: {host: cart.shop.svc.cluster.local}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: orders-one, namespace: shop}
spec:
  host: orders
  subsets: [{name: v1, labels: {v: "1"}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: orders-two, namespace: shop}
spec:
  host: orders
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
  subsets: [{name: v2, labels: {v: "2"}}, {name: v1, labels: {v: "2"}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: orders-three, namespace: shop}
spec:
  host: orders
  exportTo: ["."]
  subsets: [{name: home}]
`)
	for _, tt := range []struct{ host, ns, want string }{
		{"ratings.shop.svc.cluster.local", "client", "client-wide"},
		{"ratings.shop.svc.cluster.local", "other", "ratings"},
		{"cart.shop.svc.cluster.local", "other", "cart-root"},
		{"cart.shop.svc.cluster.local", "third", "cart-third"},
	} {
		got := ""
		if dr := snap.DestinationRule(tt.host, tt.ns, "shop", "istio-system", nil); dr != nil {
			got = dr.Meta.Name
		}
		if got != tt.want {
			t.Errorf("%s from %s: got rule %q, want %q", tt.host, tt.ns, got, tt.want)
		}
	}
	subsets := func(ns string) string {
		dr := snap.DestinationRule("orders.shop.svc.cluster.local", ns, "shop", "istio-system", nil)
		if dr == nil {
			return "none"
		}
		spec := dr.Spec.(*networking.DestinationRule)
		out := dr.Meta.Name + " " + spec.GetTrafficPolicy().GetLoadBalancer().GetSimple().String()
		for _, s := range spec.Subsets {
			out += fmt.Sprintf(" %s%v", s.Name, s.Labels)
		}
		return out
	}
	// Exported alike: one rule, the first's name, subsets of both (the first's v1),
	// the later one's policy since the first has none; the rule kept to shop is not
	// part of it.
	if got, want := subsets("other"), "orders-one RANDOM v1map[v:1] v2map[v:2]"; got != want {
		t.Errorf("from another namespace: %q, want %q", got, want)
	}
	if got := snap.Config(api.DestinationRule)[0].Spec.(*networking.DestinationRule); len(got.Subsets) > 2 {
		t.Errorf("merging changed a stored rule: %v", got)
	}
}

func TestResolveHost(t *testing.T) {
	tests := []struct{ host, ns, want string }{
		{"reviews", "default", "reviews.default.svc.cluster.local"},
		{"reviews.default", "x", "reviews.default"},
		{"*.foo.com", "x", "*.foo.com"},
		{"10.0.0.1", "x", "10.0.0.1"},
	}
	for _, tt := range tests {
		if got := ResolveHost(tt.host, tt.ns, "cluster.local"); got != tt.want {
			t.Errorf("ResolveHost(%q, %q) = %q, want %q", tt.host, tt.ns, got, tt.want)
		}
	}
}

func TestNetworkGateways(t *testing.T) {
	snap := snapshot(t, store.ConfigSpace, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: eastwest, namespace: istio-system, labels: {topology.istio.io/network: west}}
spec:
  hosts: [eastwest.west.example, eastwest-alias.west.example]
  ports:
  - {number: 15443, name: tls, protocol: TLS, targetPort: 8443}
  resolution: STATIC
  endpoints:
  - {address: 192.0.2.10, locality: eu/west-1}
  - {address: 192.0.2.11, ports: {tls: 9443}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: not-a-gateway, namespace: istio-system, labels: {topology.istio.io/network: north}}
spec:
  hosts: [ingress.north.example]
  ports: [{number: 443, name: https, protocol: HTTPS}]
  resolution: STATIC
  endpoints: [{address: 192.0.2.20}]
`)
	want := []Gateway{
		{Network: "west", Address: "192.0.2.10", Port: 8443},
		{Network: "west", Address: "192.0.2.11", Port: 9443},
	}
	if got := snap.Gateways("west"); !reflect.DeepEqual(got, want) {
		t.Fatalf("gateways into west:\n got %+v\nwant %+v (IP endpoints on port 15443, once each however many hosts)", got, want)
	}
	if got := snap.Gateways("north"); len(got) != 0 {
		t.Fatalf("gateways into north: %+v, want none (the service has no port 15443)", got)
	}
	if got := snap.GatewayScale(); got != 2 {
		t.Errorf("GatewayScale with two gateways into one network: %d, want 2", got)
	}
}

// Gateways of a Kubernetes cluster serve its workloads; a ServiceEntry's serve any
// of their network; GatewayScale is the least common multiple of how many there are
// into each network and each network's cluster.
func TestGatewaysByCluster(t *testing.T) {
	const gateway = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: %s, namespace: istio-system, labels: {topology.istio.io/network: %s}}
spec:
  hosts: [%s.example]
  ports: [{number: 15443, name: tls, protocol: TLS}]
  resolution: STATIC
  endpoints: [%s]
`
	var entries []store.Entry
	for _, g := range []struct {
		space                    store.Space
		name, network, endpoints string
	}{
		{store.ConfigSpace, "static", "west", "{address: 192.0.2.30}"},
		{store.RegistrySpace("kubernetes.c1"), "c1", "west", "{address: 192.0.2.10}, {address: 192.0.2.11}"},
		{store.RegistrySpace("kubernetes.c2"), "c2", "west", "{address: 192.0.2.20}"},
		{store.ConfigSpace, "north", "north", "{address: 192.0.2.40}, {address: 192.0.2.41}, {address: 192.0.2.42}"},
	} {
		rs, _, err := api.Decode("test", []byte(fmt.Sprintf(gateway, g.name, g.network, g.name, g.endpoints)), "")
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, store.Entry{Space: g.space, Resource: rs[0]})
	}
	snap := NewSnapshot(entries, 7, "cluster.local")
	addresses := func(gws []Gateway) []string {
		var out []string
		for _, gw := range gws {
			out = append(out, gw.Cluster+"/"+gw.Address)
		}
		return out
	}
	for _, tt := range []struct {
		network, cluster string
		want             []string
	}{
		{"west", "c1", []string{"c1/192.0.2.10", "c1/192.0.2.11"}},
		{"west", "c2", []string{"c2/192.0.2.20"}},
		{"west", "c3", []string{"c1/192.0.2.10", "c1/192.0.2.11", "c2/192.0.2.20", "/192.0.2.30"}},
		{"west", "", []string{"c1/192.0.2.10", "c1/192.0.2.11", "c2/192.0.2.20", "/192.0.2.30"}},
		{"east", "c1", nil},
	} {
		if got := addresses(snap.GatewaysFor(tt.network, tt.cluster)); !slices.Equal(got, tt.want) {
			t.Errorf("GatewaysFor(%q, %q) = %v, want %v", tt.network, tt.cluster, got, tt.want)
		}
	}
	// west: 4 in all, 2 of c1, 1 of c2, 1 of no cluster; north: 3.
	if got := snap.GatewayScale(); got != 12 {
		t.Errorf("GatewayScale = %d, want 12", got)
	}
}

// A workload takes Istio's mTLS by its tlsMode label; without one, a WorkloadEntry
// or a ServiceEntry's endpoint does if it names a service account, a Kubernetes pod
// does not.
func TestMeshTLS(t *testing.T) {
	for _, tt := range []struct {
		labels         map[string]string
		serviceAccount string
		source         string
		want           bool
	}{
		{map[string]string{TLSModeLabel: "istio"}, "", SourceServiceEntry, true},
		{map[string]string{TLSModeLabel: "disabled"}, "ratings", SourceServiceEntry, false},
		{nil, "ratings", SourceServiceEntry, true},
		{nil, "", SourceServiceEntry, false},
		{nil, "ratings", "kubernetes.c1", false},
		{map[string]string{TLSModeLabel: "istio"}, "ratings", "kubernetes.c1", true},
	} {
		w := &Workload{Labels: tt.labels, ServiceAccount: tt.serviceAccount, Source: tt.source}
		if got := w.MeshTLS(); got != tt.want {
			t.Errorf("labels %v, service account %q, source %s: MeshTLS %v, want %v", tt.labels, tt.serviceAccount, tt.source, got, tt.want)
		}
	}
}

// TestLabelIndexSelectsWhatMatches checks the index against matching every workload:
// the same workloads, in the same order, for selectors of zero to three labels,
// present, absent and shared.
func TestLabelIndexSelectsWhatMatches(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	values := []string{"a", "b", "c"}
	x := &labelIndex{byLabel: map[label][]*Workload{}}
	for i := 0; i < 200; i++ {
		labels := map[string]string{}
		for _, k := range []string{"app", "version", "zone"} {
			if rng.IntN(4) > 0 {
				labels[k] = values[rng.IntN(len(values))]
			}
		}
		x.add(&Workload{Name: fmt.Sprint(i), Labels: labels})
	}
	for i := 0; i < 500; i++ {
		selector := map[string]string{}
		for _, k := range []string{"app", "version", "zone", "missing"} {
			if rng.IntN(2) == 0 {
				selector[k] = append(values, "d")[rng.IntN(len(values)+1)]
			}
		}
		var want []*Workload
		for _, w := range x.all {
			if w.Matches(selector) {
				want = append(want, w)
			}
		}
		if got := x.selected(selector); !slices.Equal(got, want) {
			t.Fatalf("selector %v: got %d workloads, want %d", selector, len(got), len(want))
		}
	}
}

// TestServicesOfOneHostMerge: ServiceEntries of one host and namespace make one
// service for proxies: the oldest's, with the ports of those that resolve alike and
// the endpoints of all, each on its own entry's ports; another namespace's entry
// stays apart, and Services lists each entry as defined.
func TestServicesOfOneHostMerge(t *testing.T) {
	snap := snapshot(t, store.ConfigSpace, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: a, namespace: shop}
spec:
  hosts: [api.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: b, namespace: shop}
spec:
  hosts: [api.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 443, name: tls, protocol: TLS}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.2}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: c, namespace: shop}
spec:
  hosts: [api.example.com]
  ports: [{number: 8443, name: tls-alt, protocol: TLS}]
  resolution: DNS
  endpoints: [{address: 10.0.0.3}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: d, namespace: other}
spec:
  hosts: [api.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.4}]
`)
	addresses := func(ws []*Workload) string {
		var out []string
		for _, w := range ws {
			out = append(out, w.Address)
		}
		return fmt.Sprint(out)
	}
	svc := snap.Service("api.example.com", "shop")
	var ports []uint32
	for _, p := range svc.Ports {
		ports = append(ports, p.Number)
	}
	if !slices.Equal(ports, []uint32{80, 443}) || svc.Origin.Name != "a" {
		t.Errorf("service of shop: %s with ports %v, want a's with 80 and 443 (c resolves otherwise)", svc.Origin.Name, ports)
	}
	for port, want := range map[uint32]string{80: "[10.0.0.1 10.0.0.2]", 443: "[10.0.0.2]"} { // c's endpoint serves neither
		if got := addresses(snap.EndpointsOn(svc, port)); got != want {
			t.Errorf("endpoints on %d: %s, want %s", port, got, want)
		}
	}
	if got := addresses(snap.Endpoints(snap.Service("api.example.com", "other"))); got != "[10.0.0.4]" {
		t.Errorf("service of other: endpoints %s, want its own entry's", got)
	}
	if n := len(snap.Services()); n != 4 {
		t.Errorf("Services lists %d, want each of the 4 entries", n)
	}
}

// A WorkloadGroup that navarch apply wrote is the one a snapshot gives, in either
// order, when a source mirrors one of the same name; a mirrored one alone is given.
func TestWorkloadGroupPrefersAppliedConfiguration(t *testing.T) {
	group := func(sa string) string {
		return "apiVersion: networking.istio.io/v1\nkind: WorkloadGroup\nmetadata: {name: ratings, namespace: vms}\nspec: {template: {serviceAccount: " + sa + "}}\n"
	}
	mirrored := store.RegistrySpace(KubernetesConfigSource("east"))
	applied, kube := entriesOf(t, store.ConfigSpace, group("applied")), entriesOf(t, mirrored, group("mirrored"))
	for _, entries := range [][]store.Entry{append(slices.Clone(applied), kube...), append(slices.Clone(kube), applied...)} {
		g := NewSnapshot(entries, 1, "cluster.local").WorkloadGroup("vms", "ratings")
		if sa := g.Spec.(*networking.WorkloadGroup).GetTemplate().GetServiceAccount(); sa != "applied" {
			t.Errorf("group of service account %q, want the applied one", sa)
		}
	}
	if g := NewSnapshot(kube, 1, "cluster.local").WorkloadGroup("vms", "ratings"); g == nil {
		t.Error("a mirrored group alone is not given")
	}
	if g := NewSnapshot(kube, 1, "cluster.local").WorkloadGroup("default", "ratings"); g != nil {
		t.Error("another namespace's group is given")
	}
}
