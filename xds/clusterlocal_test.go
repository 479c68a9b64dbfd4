package xds

import (
	"slices"
	"testing"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/registry"
	"github.com/navarch/navarch/store"
)

// TestClusterLocalServices: of a cluster-local service (the Kubernetes API, kube-system's,
// or a host the mesh config's serviceSettings mark so) a proxy gets only its own
// cluster's endpoints (and those of no cluster); of any other, every cluster's;
// a proxy that names no cluster, or one the registry has no endpoints in, every
// endpoint.
func TestClusterLocalServices(t *testing.T) {
	service := func(name, ns string) string {
		return `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ` + name + `, namespace: ` + ns + `}
spec:
  hosts: [` + name + `.` + ns + `.svc.cluster.local]
  ports: [{number: 443, name: https, protocol: HTTPS}]
  resolution: STATIC
  workloadSelector: {labels: {app: ` + name + `}}
`
	}
	workload := func(name, ns, app, addr string) string {
		return `
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ` + name + `, namespace: ` + ns + `}
spec: {address: ` + addr + `, labels: {app: ` + app + `}}
`
	}
	snapshot := func(mesh string) *registry.Snapshot {
		var entries []store.Entry
		add := func(space store.Space, docs ...string) {
			for _, d := range docs {
				rs, _, err := api.Decode("doc", []byte(d), "")
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range rs {
					entries = append(entries, store.Entry{Space: space, Resource: r})
				}
			}
		}
		add(store.ConfigSpace, service("kubernetes", "default"), service("kube-dns", "kube-system"), service("shop", "shop"),
			workload("vm", "shop", "shop", "10.9.0.1"))
		if mesh != "" {
			add(store.ConfigSpace, meshDoc(mesh))
		}
		for _, c := range []struct{ cluster, prefix string }{{"east", "10.1.0."}, {"west", "10.2.0."}} {
			add(store.RegistrySpace(registry.KubernetesSource(c.cluster)), workload("api", "default", "kubernetes", c.prefix+"1"),
				workload("dns", "kube-system", "kube-dns", c.prefix+"2"), workload("shop", "shop", "shop", c.prefix+"3"))
		}
		// A WorkloadEntry of east's Istio configuration is east's.
		add(store.RegistrySpace(registry.KubernetesConfigSource("east")), workload("api-vm", "default", "kubernetes", "10.1.0.9"))
		return registry.NewSnapshot(entries, 1, "cluster.local")
	}
	addresses := func(snap *registry.Snapshot, cluster, host string) []string {
		p := grpcProxy("shop", nil)
		p.Generator, p.ClusterID = "", cluster
		sets, err := sidecarProfile().build(newContext(snap, p, "cluster.local", "istio-system"))
		if err != nil {
			t.Fatal(err)
		}
		var cla endpointv3.ClusterLoadAssignment
		resourceOf(t, sets, EndpointType, "outbound|443||"+host, &cla)
		var out []string
		for _, l := range cla.Endpoints {
			for _, e := range l.LbEndpoints {
				out = append(out, e.GetEndpoint().GetAddress().GetSocketAddress().GetAddress())
			}
		}
		slices.Sort(out)
		return out
	}
	api, dns, shop := "kubernetes.default.svc.cluster.local", "kube-dns.kube-system.svc.cluster.local", "shop.shop.svc.cluster.local"
	for _, c := range []struct {
		name, mesh, cluster, host string
		want                      []string
	}{
		{"the Kubernetes API", "", "east", api, []string{"10.1.0.1", "10.1.0.9"}},
		{"the Kubernetes API from the other cluster", "", "west", api, []string{"10.2.0.1"}},
		{"kube-system", "", "west", dns, []string{"10.2.0.2"}},
		{"a service of the mesh", "", "east", shop, []string{"10.1.0.3", "10.2.0.3", "10.9.0.1"}},
		{"marked cluster-local", `{serviceSettings: [{settings: {clusterLocal: true}, hosts: ["*.shop.svc.cluster.local"]}]}`, "east", shop, []string{"10.1.0.3", "10.9.0.1"}},
		{"kube-system taken out", `{serviceSettings: [{settings: {clusterLocal: false}, hosts: ["kube-dns.kube-system.svc.cluster.local"]}]}`, "east", dns, []string{"10.1.0.2", "10.2.0.2"}},
		{"a proxy of no cluster", "", "", api, []string{"10.1.0.1", "10.1.0.9", "10.2.0.1"}},
		{"a proxy of a cluster the registry has nothing of", "", "Kubernetes", api, []string{"10.1.0.1", "10.1.0.9", "10.2.0.1"}},
	} {
		if got := addresses(snapshot(c.mesh), c.cluster, c.host); !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
