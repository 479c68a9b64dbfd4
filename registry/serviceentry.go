package registry

import (
	"cmp"
	"fmt"
	"sort"
	"time"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/navarch/navarch/api"
)

// HealthAnnotation on a WorkloadEntry carries the health its source reports:
// "healthy" (the default when absent) or "unhealthy". Adapters set it; Istio has no
// field for it.
const HealthAnnotation = "navarch.io/health"

// servicesFrom returns the services a ServiceEntry defines (one per host) and the
// workloads it lists inline.
func servicesFrom(r *api.Resource, source, domain string) ([]*Service, []*Workload) {
	se := r.Spec.(*networking.ServiceEntry)
	ports := make([]Port, 0, len(se.Ports))
	for _, p := range se.Ports {
		ports = append(ports, Port{Name: p.Name, Number: p.Number, Protocol: p.Protocol, TargetPort: p.TargetPort})
	}
	sort.Slice(ports, func(i, j int) bool { return ports[i].Number < ports[j].Number })
	var selector map[string]string
	if se.WorkloadSelector != nil {
		selector = se.WorkloadSelector.Labels
		if selector == nil {
			selector = map[string]string{}
		}
	}
	created := ""
	if t := r.Meta.CreationTimestamp; t != nil {
		created = t.UTC().Format(time.RFC3339)
	}
	distribution, _ := ParseTrafficDistribution(r.Meta.Annotations[TrafficDistributionAnnotation])
	nodeLocal := r.Meta.Annotations[InternalTrafficPolicyAnnotation] == "Local"
	svcs := make([]*Service, 0, len(se.Hosts))
	for _, h := range se.Hosts {
		svcs = append(svcs, &Service{
			Hostname:        ResolveHost(h, r.Meta.Namespace, domain),
			Namespace:       r.Meta.Namespace,
			Ports:           ports,
			Addresses:       se.Addresses,
			Resolution:      resolution(se.Resolution),
			MeshExternal:    se.Location == networking.ServiceEntry_MESH_EXTERNAL,
			ExportTo:        se.ExportTo,
			Selector:        selector,
			Labels:          r.Meta.Labels,
			Source:          source,
			SubjectAltNames: se.SubjectAltNames,
			Origin:          r.Key(),
			Created:         created,

			TrafficDistribution: distribution,
			NodeLocal:           nodeLocal,
		})
	}
	if selector != nil {
		return svcs, nil
	}
	wls := make([]*Workload, 0, len(se.Endpoints))
	for i, ep := range se.Endpoints {
		w := workloadFrom(ep, r.Meta.Namespace, fmt.Sprintf("%s#%d", r.Meta.Name, i), source, r.Key())
		w.WorkloadName = fmt.Sprintf("%s-%d", r.Meta.Name, i) // as istiod names it
		wls = append(wls, w)
	}
	return svcs, wls
}

func resolution(r networking.ServiceEntry_Resolution) Resolution {
	switch r {
	case networking.ServiceEntry_DNS:
		return ResolutionDNS
	case networking.ServiceEntry_DNS_ROUND_ROBIN:
		return ResolutionDNSRoundRobin
	case networking.ServiceEntry_NONE:
		return ResolutionNone
	}
	return ResolutionStatic
}

// workloadFromEntry returns the workload a WorkloadEntry resource describes.
func workloadFromEntry(r *api.Resource, source string) *Workload {
	w := workloadFrom(r.Spec.(*networking.WorkloadEntry), r.Meta.Namespace, r.Meta.Name, source, r.Key())
	if r.Meta.Annotations[HealthAnnotation] == "unhealthy" {
		w.Healthy = false
	}
	w.Node = r.Meta.Annotations[NodeAnnotation]
	w.DNSName = r.Meta.Annotations[PodDNSNameAnnotation]
	w.WorkloadName = workloadName(r.Meta)
	return w
}

// workloadName is the name of the workload a WorkloadEntry is an instance of, as
// Istio's WorkloadNameFromWorkloadEntry has it (WorkloadNameAnnotation).
func workloadName(m api.ObjectMeta) string {
	if g, ok := m.Annotations["istio.io/autoRegistrationGroup"]; ok {
		return g
	}
	if n, ok := m.Labels["service.istio.io/workload-name"]; ok {
		return n
	}
	return cmp.Or(m.Annotations[WorkloadNameAnnotation], m.Name)
}

func workloadFrom(we *networking.WorkloadEntry, ns, name, source string, origin api.Key) *Workload {
	return &Workload{
		Name:           name,
		Namespace:      ns,
		Address:        we.Address,
		Ports:          we.Ports,
		Labels:         we.Labels,
		Locality:       we.Locality,
		Network:        we.Network,
		Weight:         we.Weight,
		ServiceAccount: we.ServiceAccount,
		Healthy:        true,
		Source:         source,
		Origin:         origin,
	}
}
