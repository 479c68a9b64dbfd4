package xds

import (
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/registry"
	"github.com/navarch/navarch/store"
)

// TestStatNamePatterns expands Istio's placeholders: a Kubernetes Service is
// %SERVICE% <name>.<namespace> and %SERVICE_NAME% <name>, any other service (a
// ServiceEntry, also one a Kubernetes cluster's Istio configuration holds) its host;
// %TARGET_PORT% stays as written where no target port is given.
func TestStatNamePatterns(t *testing.T) {
	const pattern = "%SERVICE%/%SERVICE_NAME%/%SERVICE_FQDN%/%SERVICE_PORT%/%SERVICE_PORT_NAME%/%SUBSET_NAME%/%TARGET_PORT%"
	kube := &registry.Service{Hostname: "reviews.shop.svc.cluster.local", Namespace: "shop", Source: "kubernetes.east"}
	entry := &registry.Service{Hostname: "reviews.shop.svc.cluster.local", Namespace: "shop", Source: "kubernetes.east.config"}
	for _, c := range []struct {
		n    statName
		want string
	}{
		{statName{svc: kube, host: kube.Hostname, subset: "v1", port: 9080, portName: "http", target: "0"},
			"reviews.shop/reviews/reviews.shop.svc.cluster.local/9080/http/v1/0"},
		{statName{svc: entry, host: entry.Hostname, port: 9080, target: "8080"},
			"reviews.shop.svc.cluster.local/reviews.shop.svc.cluster.local/reviews.shop.svc.cluster.local/9080///8080"},
		{statName{port: 0, portName: virtualInbound},
			"///0/virtualInbound//%TARGET_PORT%"},
	} {
		if got := c.n.expand(pattern); got != c.want {
			t.Errorf("%+v: %q, want %q", c.n, got, c.want)
		}
	}
}

// TestStatNamesInWhatEnvoyGets: under the mesh's outboundClusterStatName and
// inboundClusterStatName a sidecar's service clusters, their TCP proxies and its
// inbound cluster are named by the patterns (a Kubernetes Service by its name and
// namespace, the inbound cluster with the workload's port as target), the rest by
// their names, delimited; without the patterns, every one by its name.
func TestStatNamesInWhatEnvoyGets(t *testing.T) {
	docs := map[store.Space][]string{
		store.ConfigSpace: {`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: shop}
spec:
  hosts: [db.example.com]
  addresses: [10.8.0.1]
  ports: [{number: 5432, name: tcp-pg, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.9}]
`, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: shop}
spec:
  hosts: [web.shop.svc.cluster.local]
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: 8080}]
  resolution: STATIC
  workloadSelector: {labels: {app: web}}
`},
		store.RegistrySpace("kubernetes.east"): {`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: cache, namespace: shop}
spec:
  hosts: [cache.shop.svc.cluster.local]
  addresses: [10.8.0.2]
  ports: [{number: 6379, name: tcp-redis, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.8}]
`},
	}
	const mesh = `{outboundClusterStatName: "out:%SERVICE%:%SERVICE_PORT%:%SUBSET_NAME%", inboundClusterStatName: "in:%SERVICE%:%SERVICE_PORT%:%TARGET_PORT%"}`
	for _, c := range []struct {
		mesh string
		want map[string]string // cluster or listener: alt stat name or TCP stat prefix
	}{
		{"", map[string]string{
			"outbound|5432||db.example.com": "outbound|5432||db.example.com;", "10.8.0.1_5432": "outbound|5432||db.example.com",
			"outbound|6379||cache.shop.svc.cluster.local": "outbound|6379||cache.shop.svc.cluster.local;",
			"10.8.0.2_6379":  "outbound|6379||cache.shop.svc.cluster.local",
			"inbound|8080||": "inbound|8080||;", passthroughCluster: "PassthroughCluster;", inboundPassthroughCluster: "PassthroughCluster;",
		}},
		{mesh, map[string]string{
			"outbound|5432||db.example.com": "out:db.example.com:5432:;", "10.8.0.1_5432": "out:db.example.com:5432:",
			"outbound|6379||cache.shop.svc.cluster.local": "out:cache.shop:6379:;", "10.8.0.2_6379": "out:cache.shop:6379:",
			"inbound|8080||": "in:web.shop.svc.cluster.local:80:8080;", passthroughCluster: "PassthroughCluster;", inboundPassthroughCluster: "PassthroughCluster;",
		}},
	} {
		var entries []store.Entry
		add := func(space store.Space, doc string) {
			rs, _, err := api.Decode("doc", []byte(doc), "")
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rs {
				entries = append(entries, store.Entry{Space: space, Resource: r})
			}
		}
		for space, ds := range docs {
			for _, d := range ds {
				add(space, d)
			}
		}
		if c.mesh != "" {
			add(store.ConfigSpace, meshDoc(c.mesh))
		}
		sets := envoySidecar(t, registry.NewSnapshot(entries, 1, "cluster.local"), "shop", map[string]string{"app": "web"})
		for name, want := range c.want {
			var got string
			if r := sets[ClusterType].ByName[name]; r != nil {
				var cl clusterv3.Cluster
				resourceOf(t, sets, ClusterType, name, &cl)
				got = cl.AltStatName
			} else {
				var l listenerv3.Listener
				resourceOf(t, sets, ListenerType, name, &l)
				var tp tcpv3.TcpProxy
				if err := l.FilterChains[0].Filters[0].GetTypedConfig().UnmarshalTo(&tp); err != nil {
					t.Fatal(err)
				}
				got = tp.StatPrefix
			}
			if got != want {
				t.Errorf("mesh %q: %s is named %q, want %q", c.mesh, name, got, want)
			}
		}
	}
}
