package node

import (
	"time"

	"github.com/navarch/navarch/client"
	"github.com/navarch/navarch/registry"
)

// registryListing turns a snapshot into the registry's debug and CLI view.
func registryListing(snap *registry.Snapshot) client.RegistryListing {
	out := client.RegistryListing{Revision: snap.Revision, Services: []client.ServiceListing{}}
	for _, svc := range snap.Services() {
		s := client.ServiceListing{
			Host: svc.Hostname, Namespace: svc.Namespace, Source: svc.Source, Origin: svc.Origin.String(),
			Resolution: svc.Resolution.String(), Endpoints: []client.EndpointListing{},
		}
		for _, p := range svc.Ports {
			s.Ports = append(s.Ports, client.PortListing{Name: p.Name, Number: p.Number, Protocol: p.Protocol, TargetPort: p.TargetPort})
		}
		for _, w := range snap.Endpoints(svc) {
			s.Endpoints = append(s.Endpoints, client.EndpointListing{
				Name: w.Name, Namespace: w.Namespace, Address: w.Address, Ports: w.Ports, Labels: w.Labels,
				Locality: w.Locality, Network: w.Network, Weight: w.Weight, ServiceAccount: w.ServiceAccount,
				Healthy: w.Healthy, Source: w.Source,
			})
		}
		out.Services = append(out.Services, s)
	}
	for src, t := range snap.Stale {
		if out.Stale == nil {
			out.Stale = map[string]string{}
		}
		out.Stale[src] = t.UTC().Format(time.RFC3339)
	}
	return out
}
