package bench

import (
	"sync"

	"github.com/cespare/xxhash/v2"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// facts is what a simulated proxy needs to know about one resource: the names of
// the resources it refers to (routes for a listener, clusters for a route, an
// endpoint assignment for an EDS cluster), and the largest endpoint weight in an
// endpoint assignment, which the churn scenario uses as a change's sequence number.
type facts struct {
	name      string
	routes    []string
	clusters  []string
	endpoints []string
	maxWeight uint32
}

// factCache parses each distinct resource once for all proxies.
type factCache struct {
	m sync.Map // uint64 (hash of type and bytes) -> *facts
}

func (c *factCache) get(a *anypb.Any) (*facts, error) {
	key := xxhash.Sum64String(a.TypeUrl) ^ xxhash.Sum64(a.Value)
	if f, ok := c.m.Load(key); ok {
		return f.(*facts), nil
	}
	f, err := parseFacts(a)
	if err != nil {
		return nil, err
	}
	c.m.Store(key, f)
	return f, nil
}

func parseFacts(a *anypb.Any) (*facts, error) {
	f := &facts{}
	switch a.TypeUrl {
	case resourcev3.ListenerType:
		var l listenerv3.Listener
		if err := proto.Unmarshal(a.Value, &l); err != nil {
			return nil, err
		}
		f.name = l.Name
		if api := l.GetApiListener().GetApiListener(); api != nil {
			var h hcmv3.HttpConnectionManager
			if err := api.UnmarshalTo(&h); err == nil {
				if r := h.GetRds().GetRouteConfigName(); r != "" {
					f.routes = append(f.routes, r)
				}
			}
		}
		for _, fc := range l.FilterChains {
			for _, flt := range fc.Filters {
				var h hcmv3.HttpConnectionManager
				if flt.GetTypedConfig() != nil && flt.GetTypedConfig().UnmarshalTo(&h) == nil {
					if r := h.GetRds().GetRouteConfigName(); r != "" {
						f.routes = append(f.routes, r)
					}
				}
			}
		}
	case resourcev3.RouteType:
		var rc routev3.RouteConfiguration
		if err := proto.Unmarshal(a.Value, &rc); err != nil {
			return nil, err
		}
		f.name = rc.Name
		seen := map[string]bool{}
		for _, vh := range rc.VirtualHosts {
			for _, r := range vh.Routes {
				ra := r.GetRoute()
				if c := ra.GetCluster(); c != "" && !seen[c] {
					seen[c] = true
					f.clusters = append(f.clusters, c)
				}
				for _, wc := range ra.GetWeightedClusters().GetClusters() {
					if !seen[wc.Name] {
						seen[wc.Name] = true
						f.clusters = append(f.clusters, wc.Name)
					}
				}
			}
		}
	case resourcev3.ClusterType:
		var c clusterv3.Cluster
		if err := proto.Unmarshal(a.Value, &c); err != nil {
			return nil, err
		}
		f.name = c.Name
		if c.GetType() == clusterv3.Cluster_EDS {
			n := c.GetEdsClusterConfig().GetServiceName()
			if n == "" {
				n = c.Name
			}
			f.endpoints = []string{n}
		}
	case resourcev3.EndpointType:
		var cla endpointv3.ClusterLoadAssignment
		if err := proto.Unmarshal(a.Value, &cla); err != nil {
			return nil, err
		}
		f.name = cla.ClusterName
		for _, loc := range cla.Endpoints {
			for _, e := range loc.LbEndpoints {
				f.maxWeight = max(f.maxWeight, e.GetLoadBalancingWeight().GetValue())
			}
		}
	}
	return f, nil
}
