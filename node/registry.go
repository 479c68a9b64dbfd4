package node

import (
	"time"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/client"
	"github.com/navarch/navarch/registry"
	"github.com/navarch/navarch/store"
)

// registryListing turns a snapshot and the sources' status into the registry's debug
// and CLI view.
func registryListing(snap *registry.Snapshot, sources map[string]store.SourceStatus) client.RegistryListing {
	out := client.RegistryListing{Revision: snap.Revision, Services: []client.ServiceListing{}}
	for _, name := range registry.SortedKeys(sources) {
		st := sources[name]
		sl := client.SourceListing{Source: name, Stale: st.Stale, Error: st.Error, Node: st.Node}
		if !st.LastSync.IsZero() {
			sl.LastSync = st.LastSync.UTC().Format(time.RFC3339)
		}
		out.Sources = append(out.Sources, sl)
	}
	selected := map[*registry.Workload]bool{}
	for _, svc := range snap.Services() {
		for _, w := range snap.Endpoints(svc) {
			selected[w] = true
		}
		out.Services = append(out.Services, serviceListing(snap, svc, sources))
	}
	for _, w := range snap.Workloads() {
		if !selected[w] && w.Origin.Kind == api.WorkloadEntry {
			out.Unselected = append(out.Unselected, endpointListing(w, sources))
		}
	}
	return out
}

// serviceListing is one service of registryListing, with its endpoints.
func serviceListing(snap *registry.Snapshot, svc *registry.Service, sources map[string]store.SourceStatus) client.ServiceListing {
	s := client.ServiceListing{
		Host: svc.Hostname, Namespace: svc.Namespace, Source: svc.Source, Origin: svc.Origin.String(),
		Resolution: svc.Resolution.String(), Endpoints: []client.EndpointListing{},
		Addresses: svc.Addresses, AutoAddresses: svc.AutoAddresses,
		Stale: sources[svc.Source].Stale, TrafficDistribution: string(svc.TrafficDistribution), NodeLocal: svc.NodeLocal,
	}
	for _, p := range svc.Ports {
		s.Ports = append(s.Ports, client.PortListing{Name: p.Name, Number: p.Number, Protocol: p.Protocol, TargetPort: p.TargetPort})
	}
	for _, w := range snap.Endpoints(svc) {
		s.Endpoints = append(s.Endpoints, endpointListing(w, sources))
	}
	return s
}

func endpointListing(w *registry.Workload, sources map[string]store.SourceStatus) client.EndpointListing {
	return client.EndpointListing{
		Name: w.Name, Namespace: w.Namespace, Address: w.Address, Ports: w.Ports, Labels: w.Labels,
		Locality: w.Locality, Network: w.Network, Weight: w.Weight, ServiceAccount: w.ServiceAccount,
		Node: w.Node, Healthy: w.Healthy, Source: w.Source, Stale: sources[w.Source].Stale,
	}
}
