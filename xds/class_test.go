package xds

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/internal/corpus"
	"github.com/navarch/navarch/registry"
	"github.com/navarch/navarch/store"
)

// everySelectorInput selects proxies in every way configuration can: workload
// selectors of each kind, a Gateway selector, sourceLabels in HTTP, TCP and TLS
// matches, failover by labels, and WorkloadEntries whose ports a sidecar serves its
// service on.
const everySelectorInput = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: shop}
spec:
  hosts: [ratings.shop.svc.cluster.local]
  ports: [{number: 9080, name: http, protocol: HTTP, targetPort: 8080}, {number: 9443, name: tls, protocol: TLS}]
  resolution: STATIC
  workloadSelector: {labels: {app: ratings}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ratings-a, namespace: shop}
spec: {address: 10.0.0.1, labels: {app: ratings, zone: a}, ports: {http: 18080}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ratings-b, namespace: shop}
spec: {address: 10.0.0.2, labels: {app: ratings, zone: b}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: shop}
spec:
  hosts: [ratings.shop.svc.cluster.local]
  http:
  - match: [{sourceLabels: {tier: web}}]
    route: [{destination: {host: ratings.shop.svc.cluster.local, subset: a}}]
  - route: [{destination: {host: ratings.shop.svc.cluster.local}}]
  tls:
  - match: [{port: 9443, sniHosts: [ratings.shop.svc.cluster.local], sourceLabels: {tier: batch}}]
    route: [{destination: {host: ratings.shop.svc.cluster.local, subset: b}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: shop}
spec:
  host: ratings.shop.svc.cluster.local
  subsets: [{name: a, labels: {zone: a}}, {name: b, labels: {zone: b}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: tiered, namespace: shop}
spec:
  hosts: [tiered.shop.svc.cluster.local]
  ports: [{number: 9080, name: grpc, protocol: GRPC}]
  resolution: STATIC
  endpoints: [{address: 10.0.1.1, labels: {rank: gold}}, {address: 10.0.1.2, labels: {rank: iron}, locality: eu/d}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: tiered, namespace: shop}
spec:
  host: tiered.shop.svc.cluster.local
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 3, interval: 5s, baseEjectionTime: 30s}
    loadBalancer: {simple: ROUND_ROBIN, localityLbSetting: {failoverPriority: [rank, topology.kubernetes.io/zone]}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings-canary-clients, namespace: shop}
spec:
  host: ratings.shop.svc.cluster.local
  workloadSelector: {matchLabels: {track: canary}}
  trafficPolicy: {connectionPool: {tcp: {maxConnections: 3}}}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: narrow, namespace: shop}
spec:
  workloadSelector: {labels: {scope: narrow}}
  egress: [{hosts: [./ratings.shop.svc.cluster.local]}]
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: strict-ratings, namespace: shop}
spec:
  selector: {matchLabels: {app: ratings}}
  mtls: {mode: STRICT}
  portLevelMtls: {8080: {mode: PERMISSIVE}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-batch, namespace: shop}
spec:
  selector: {matchLabels: {guard: "yes"}}
  action: DENY
  rules: [{from: [{source: {namespaces: [batch]}}]}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: shop}
spec:
  selector: {matchLabels: {auth: jwt}}
  jwtRules: [{issuer: "https://issuer.example.com", jwks: '{"keys":[]}'}]
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: logs, namespace: shop}
spec:
  selector: {matchLabels: {logs: "yes"}}
  accessLogging: [{providers: [{name: envoy}]}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge, namespace: shop}
spec:
  selector: {istio: ingressgateway, edge: public}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
`

// trafficDistributionInput is a service that prefers the nearest endpoints, with
// endpoints whose labels name their topology (as proxies' labels may).
const trafficDistributionInput = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: shop, annotations: {networking.istio.io/traffic-distribution: PreferSameNode}}
spec:
  hosts: [ratings.shop.svc.cluster.local]
  ports: [{number: 9080, name: grpc, protocol: GRPC}]
  resolution: STATIC
  endpoints:
  - {address: 10.0.0.1, locality: us-east/a, labels: {kubernetes.io/hostname: node-1}}
  - {address: 10.0.0.2, locality: us-east/a, labels: {kubernetes.io/hostname: node-2, topology.istio.io/subzone: s2}}
  - {address: 10.0.0.3, labels: {topology.kubernetes.io/region: eu, topology.istio.io/network: net-2}}
  - {address: 10.0.0.4, locality: us-east/a}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: collector, namespace: shop, annotations: {navarch.io/internal-traffic-policy: Local}}
spec:
  hosts: [collector.shop.svc.cluster.local]
  ports: [{number: 4317, name: grpc, protocol: GRPC}]
  resolution: STATIC
  workloadSelector: {labels: {app: collector}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: collector-1, namespace: shop, annotations: {navarch.io/node: node-1}}
spec: {address: 10.0.1.1, labels: {app: collector}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: collector-2, namespace: shop, annotations: {navarch.io/node: node-2}}
spec: {address: 10.0.1.2, labels: {app: collector}}
`

// TestClassProxyBuildsWhatTheProxyWould checks that leaving out the labels no
// configuration depends on (classProxy) never changes what a proxy is sent: for every
// input, namespace and kind of proxy, and for label sets made of every label map of
// the input with labels nothing selects by added, a build for the class's proxy
// equals a build for the proxy, resource for resource, inbound listeners of gRPC
// servers included.
func TestClassProxyBuildsWhatTheProxyWould(t *testing.T) {
	inputs := map[string]string{"every-selector": everySelectorInput, "sharing": sharingInput,
		"selected-rules": selectedRulesInput, "networks": networksInput, "locality": localityInput,
		"traffic-distribution": trafficDistributionInput, "envoyfilter": envoyFilterInput(t) + envoyFilterProxyMatch}
	for _, f := range corpus.Files(t) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		inputs[strings.TrimSuffix(filepath.Base(f), ".yaml")] = string(data)
	}
	projected := 0
	for name, input := range inputs {
		t.Run(name, func(t *testing.T) {
			rs, _, err := api.Decode(name, []byte(input), "")
			if err != nil {
				t.Fatal(err)
			}
			namespaces := map[string]bool{"other": true}
			var entries []store.Entry
			labelSets := []map[string]string{nil}
			for _, r := range rs {
				entries = append(entries, store.Entry{Space: store.ConfigSpace, Resource: r})
				namespaces[r.Meta.Namespace] = true
				labelSets = append(labelSets, stringMaps(r.Spec.ProtoReflect())...)
			}
			snap := registry.NewSnapshot(entries, 1, "cluster.local")
			for ns := range namespaces {
				for _, labels := range labelSets {
					// Labels nothing selects by, under the input's own.
					withNoise := map[string]string{"pod-template-hash": "7d4f", "app": "noise-" + ns}
					maps.Copy(withNoise, labels)
					for _, kind := range []struct{ typ, gen string }{{TypeSidecar, GeneratorGRPC}, {TypeSidecar, ""}, {TypeRouter, ""}} {
						p := grpcProxy(ns, withNoise)
						p.Type, p.Generator, p.ServiceAccount = kind.typ, kind.gen, "sa-"+ns
						p.Locality = "us-east/a" // failover by labels applies only to a client with a locality
						p.NodeName = "node-1"
						if kind.gen == "" { // an Envoy's metadata, of which EnvoyFilters may match some
							p.IstioVersion = "1.24.1"
							p.Metadata = map[string]string{"POD_NAME": "web-7d4f"}
							maps.Copy(p.Metadata, labels)
						}
						rep := p.classProxy(snap)
						if rep == p {
							continue
						}
						projected++
						what := fmt.Sprintf("%s %s/%s proxy labelled %v (class labels %v)", ns, kind.typ, kind.gen, sortedLabels(p.Labels), sortedLabels(rep.Labels))
						want, _ := profileFor(p).build(newContext(snap, p, "cluster.local", "istio-system"))
						got, _ := profileFor(rep).build(newContext(snap, rep, "cluster.local", "istio-system"))
						compareTypeSets(t, what, want, got)
						if kind.gen == GeneratorGRPC {
							for _, port := range []int{8080, 9080, 18080} {
								name := fmt.Sprintf("%s10.0.0.1:%d", InboundListenerPrefix, port)
								w, _ := inboundListener(&Context{Snapshot: snap, Proxy: p, TrustDomain: "cluster.local", RootNamespace: "istio-system"}, name)
								g, _ := inboundListener(&Context{Snapshot: snap, Proxy: rep, TrustDomain: "cluster.local", RootNamespace: "istio-system"}, name)
								if !proto.Equal(w, g) {
									t.Errorf("%s: inbound listener %s differs", what, name)
								}
							}
						}
					}
				}
			}
		})
	}
	t.Logf("%d proxies had labels left out of their class", projected)
	if projected == 0 {
		t.Fatal("no proxy had a label left out of its class: the test checked nothing")
	}
}

// envoyFilterProxyMatch is an EnvoyFilter that matches proxies by Istio version
// and metadata.
const envoyFilterProxyMatch = `
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: edge-only, namespace: shop}
spec:
  configPatches:
  - applyTo: CLUSTER
    match: {proxy: {proxyVersion: '^1\.2[0-9]\..*', metadata: {app: web}}}
    patch: {operation: MERGE, value: {connect_timeout: 7s}}
`

// compareTypeSets fails unless got holds exactly the resources of want.
func compareTypeSets(t *testing.T, what string, want, got map[string]*TypeSet) {
	t.Helper()
	for typ, ws := range want {
		gs := got[typ]
		if gs == nil {
			t.Errorf("%s: no %s", what, typ)
			continue
		}
		if w, g := ws.Names(), gs.Names(); !slicesEqual(w, g) {
			t.Errorf("%s: %s: class builds %v, the proxy's %v", what, shortType(typ), g, w)
			continue
		}
		for name, w := range ws.ByName {
			if g := gs.ByName[name]; !proto.Equal(g.Body, w.Body) {
				t.Errorf("%s: %s %s differs from the proxy's own build", what, shortType(typ), name)
			}
		}
	}
}

func slicesEqual(a, b []string) bool { return strings.Join(a, "\x00") == strings.Join(b, "\x00") }

// stringMaps returns every map<string, string> in m, recursively: the label maps of
// selectors, sourceLabels and workloads, among others.
func stringMaps(m protoreflect.Message) []map[string]string {
	var out []map[string]string
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsMap() && fd.MapKey().Kind() == protoreflect.StringKind && fd.MapValue().Kind() == protoreflect.StringKind:
			got := map[string]string{}
			v.Map().Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
				got[k.String()] = v.String()
				return true
			})
			out = append(out, got)
		case fd.IsMap() && fd.MapValue().Kind() == protoreflect.MessageKind:
			v.Map().Range(func(_ protoreflect.MapKey, v protoreflect.Value) bool {
				out = append(out, stringMaps(v.Message())...)
				return true
			})
		case fd.IsList() && fd.Kind() == protoreflect.MessageKind:
			for i := 0; i < v.List().Len(); i++ {
				out = append(out, stringMaps(v.List().Get(i).Message())...)
			}
		case !fd.IsList() && !fd.IsMap() && fd.Kind() == protoreflect.MessageKind:
			out = append(out, stringMaps(v.Message())...)
		}
		return true
	})
	sort.SliceStable(out, func(i, j int) bool { return len(out[i]) < len(out[j]) })
	return out
}
