package xds

import (
	"sort"
	"strings"

	"github.com/navarch/navarch/registry"
)

// Cluster-local services, as in Istio: a proxy in a Kubernetes cluster (its
// CLUSTER_ID metadata, Istio's ISTIO_META_CLUSTER_ID) gets, for a cluster-local
// host, only the endpoints of its own cluster, where one service of several
// clusters otherwise has the endpoints of all (docs/kubernetes.md, Several
// clusters). Cluster-local are, as Istio has them by default, the Kubernetes API
// (kubernetes.default.svc.<domain>) and every service of kube-system
// (*.kube-system.svc.<domain>), and whatever hosts the mesh config's
// serviceSettings mark clusterLocal: true (false takes a host, or a default, out);
// the most specific pattern that matches a host decides. Endpoints of no
// Kubernetes cluster (WorkloadEntries, Consul, VMs) are kept. A proxy that names no
// cluster, or one no endpoint of the registry is in (istio-agent says
// "Kubernetes" unless told otherwise; navarch's clusters are named by
// --kube-cluster-id), gets every endpoint: it cannot be told which is its own.

// clusterLocalHosts says which hosts are cluster-local.
type clusterLocalHosts struct {
	exact map[string]bool
	wild  []wildHost // longest suffix first
}

type wildHost struct {
	pattern string // "*.kube-system.svc.cluster.local"
	local   bool
}

// clusterLocal returns the cluster-local hosts of the snapshot's mesh config.
func clusterLocal(ctx *Context) *clusterLocalHosts {
	return derived(ctx, "cluster-local", func() *clusterLocalHosts {
		defaults := []string{"*.kube-system.svc." + ctx.Snapshot.Domain, "kubernetes.default.svc." + ctx.Snapshot.Domain}
		c := &clusterLocalHosts{exact: map[string]bool{}}
		set := map[string]bool{}
		for _, s := range ctx.Mesh.GetServiceSettings() {
			local := s.GetSettings().GetClusterLocal()
			for _, h := range s.GetHosts() {
				if !local { // takes a default out when it names it, or falls under it
					for i, d := range defaults {
						if d != "" && (h == d || (strings.HasPrefix(d, "*") && strings.HasSuffix(h, d[1:]))) {
							defaults[i] = ""
						}
					}
				}
				set[h] = local
			}
		}
		for _, d := range defaults {
			if _, given := set[d]; d != "" && !given {
				set[d] = true
			}
		}
		for h, local := range set {
			if strings.HasPrefix(h, "*") {
				c.wild = append(c.wild, wildHost{h, local})
			} else {
				c.exact[h] = local
			}
		}
		sort.Slice(c.wild, func(i, j int) bool {
			if len(c.wild[i].pattern) != len(c.wild[j].pattern) {
				return len(c.wild[i].pattern) > len(c.wild[j].pattern)
			}
			return c.wild[i].pattern < c.wild[j].pattern
		})
		return c
	})
}

// local reports whether host is cluster-local.
func (c *clusterLocalHosts) local(host string) bool {
	if v, ok := c.exact[host]; ok {
		return v
	}
	for _, w := range c.wild {
		if registry.HostMatches(w.pattern, host) {
			return w.local
		}
	}
	return false
}

// workloadCluster is the Kubernetes cluster a workload runs in ("" for none): its
// source's, the cluster's own or its Istio configuration's (a WorkloadEntry kept
// there is of that cluster, as in Istio).
func workloadCluster(w *registry.Workload) string {
	id, _ := registry.KubernetesCluster(w.Source)
	return id
}

// inCluster returns the workloads of wls in cluster, and those of no cluster.
func inCluster(wls []*registry.Workload, cluster string) []*registry.Workload {
	var out []*registry.Workload
	for _, w := range wls {
		if c := workloadCluster(w); c == "" || c == cluster {
			out = append(out, w)
		}
	}
	return out
}

// ownCluster reports whether the proxy's endpoints of svc are its own cluster's
// only: svc is cluster-local and the proxy is in a cluster the registry has
// endpoints of.
func ownCluster(ctx *Context, svc string) bool {
	id := ctx.Proxy.ClusterID
	if id == "" || !clusterLocal(ctx).local(svc) {
		return false
	}
	return derived(ctx, "known-cluster", func() bool {
		for _, w := range ctx.Snapshot.Workloads() {
			if workloadCluster(w) == id {
				return true
			}
		}
		return false
	})
}
