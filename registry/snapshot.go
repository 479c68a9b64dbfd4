package registry

import (
	"net"
	"slices"
	"sort"
	"time"

	"github.com/cespare/xxhash/v2"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/store"
)

// Snapshot is the registry and configuration at one store revision. It is immutable.
type Snapshot struct {
	// Revision is the store revision the snapshot reflects.
	Revision int64
	// ChangedAt is when the View first saw a change that this snapshot is the first to
	// include; zero for a snapshot with no new changes. Push latency is measured from it.
	ChangedAt time.Time
	// Domain is the DNS suffix short host names resolve under ("cluster.local").
	Domain string

	services  []*Service
	byHost    map[string][]*Service
	endpoints map[*Service][]*Workload
	workloads []*Workload
	config    map[*api.Kind][]*api.Resource
	routes    []*HostRoutes
	rules     []*HostRoutes
	gateways  map[string][]Gateway // by network
	issuers   map[string]Issuer    // see WithIssuers
	// labelsAt holds, by "namespace/address", the labels of the first endpoint at
	// that address among the namespace's services (see WorkloadLabelsAt);
	// labelsAtHash changes when it does.
	labelsAt     map[string]map[string]string
	labelsAtHash uint64
}

// Issuer is what OpenID discovery found for a JWT issuer: the URI of its key set, or
// why there is none.
type Issuer struct {
	JWKSURI string
	Err     string
}

// WithIssuers returns a copy of the snapshot that also carries what discovery found for
// JWT issuers (RequestAuthentication rules that name an issuer but no key set). issuers
// must not change afterwards. The copy shares everything else with s.
func (s *Snapshot) WithIssuers(issuers map[string]Issuer) *Snapshot {
	cp := *s
	cp.issuers = issuers
	return &cp
}

// Issuer returns what discovery found for a JWT issuer; ok is false when the snapshot
// has nothing on it (not discovered yet, or no discovery).
func (s *Snapshot) Issuer(iss string) (Issuer, bool) {
	d, ok := s.issuers[iss]
	return d, ok
}

// HostRoutes is a VirtualService or DestinationRule with its hosts resolved to fully
// qualified names.
type HostRoutes struct {
	Resource *api.Resource
	Hosts    []string
}

// NewSnapshot indexes entries (in any order) into a snapshot at revision rev. Views
// call it; tests and tools use it to translate resources without a store.
func NewSnapshot(entries []store.Entry, rev int64, domain string) *Snapshot {
	s := &Snapshot{
		Revision:  rev,
		Domain:    domain,
		byHost:    map[string][]*Service{},
		endpoints: map[*Service][]*Workload{},
		labelsAt:  map[string]map[string]string{},
		config:    map[*api.Kind][]*api.Resource{},
		gateways:  map[string][]Gateway{},
	}
	var inline = map[*Service][]*Workload{}
	for _, e := range entries {
		r := e.Resource
		source := SourceServiceEntry
		if e.Space != store.ConfigSpace {
			source = e.Space.Source()
		}
		switch r.Kind {
		case api.ServiceEntry:
			svcs, wls := servicesFrom(r, source, domain)
			for _, svc := range svcs {
				s.services = append(s.services, svc)
				inline[svc] = wls
			}
			s.workloads = append(s.workloads, wls...)
		case api.WorkloadEntry:
			s.workloads = append(s.workloads, workloadFromEntry(r, source))
		}
		if e.Space == store.ConfigSpace {
			s.config[r.Kind] = append(s.config[r.Kind], r)
		}
	}
	for _, rs := range s.config {
		sort.Slice(rs, func(i, j int) bool { return older(rs[i], rs[j]) })
	}
	sort.Slice(s.services, func(i, j int) bool {
		a, b := s.services[i], s.services[j]
		if a.Hostname != b.Hostname {
			return a.Hostname < b.Hostname
		}
		if a.Created != b.Created {
			return a.Created < b.Created
		}
		return a.Origin.String() < b.Origin.String()
	})
	sort.Slice(s.workloads, func(i, j int) bool {
		a, b := s.workloads[i], s.workloads[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.Source < b.Source
	})
	s.index(inline)
	return s
}

// older orders resources by creation, then namespace and name, as Istio does when two
// resources compete for the same host.
func older(a, b *api.Resource) bool {
	ta, tb := a.Meta.CreationTimestamp, b.Meta.CreationTimestamp
	if ta != nil && tb != nil && !ta.Equal(*tb) {
		return ta.Before(*tb)
	}
	if a.Meta.Namespace != b.Meta.Namespace {
		return a.Meta.Namespace < b.Meta.Namespace
	}
	return a.Meta.Name < b.Meta.Name
}

func (s *Snapshot) index(inline map[*Service][]*Workload) {
	byNamespace := map[string][]*Workload{}
	for _, w := range s.workloads {
		if w.Origin.Kind == api.WorkloadEntry {
			byNamespace[w.Namespace] = append(byNamespace[w.Namespace], w)
		}
	}
	for _, svc := range s.services {
		s.byHost[svc.Hostname] = append(s.byHost[svc.Hostname], svc)
		if svc.Selector == nil {
			s.endpoints[svc] = inline[svc]
			continue
		}
		for _, w := range byNamespace[svc.Namespace] {
			if w.Matches(svc.Selector) {
				s.endpoints[svc] = append(s.endpoints[svc], w)
			}
		}
	}
	h := xxhash.New()
	for _, svc := range s.services {
		s.indexGateways(svc)
		for _, w := range s.endpoints[svc] {
			k := svc.Namespace + "/" + w.Address
			if _, ok := s.labelsAt[k]; ok {
				continue
			}
			s.labelsAt[k] = w.Labels
			h.WriteString(k)
			for _, lk := range SortedKeys(w.Labels) {
				h.WriteString("\x00" + lk + "=" + w.Labels[lk])
			}
			h.WriteString("\n")
		}
	}
	s.labelsAtHash = h.Sum64()
	for _, r := range s.config[api.VirtualService] {
		s.routes = append(s.routes, &HostRoutes{Resource: r, Hosts: s.resolveAll(r.Spec.(*networking.VirtualService).Hosts, r.Meta.Namespace)})
	}
	for _, r := range s.config[api.DestinationRule] {
		host := r.Spec.(*networking.DestinationRule).Host
		s.rules = append(s.rules, &HostRoutes{Resource: r, Hosts: []string{ResolveHost(host, r.Meta.Namespace, s.Domain)}})
	}
}

// WorkloadLabelsAt returns the labels of the workload at address ip in namespace ns:
// the first endpoint at that address among the namespace's services (in order of
// host name), as istiod gives a proxy the labels of the service instance at its IP
// in its namespace. ok is false when there is none, or it has no labels (istiod then
// keeps the proxy's own).
func (s *Snapshot) WorkloadLabelsAt(ns, ip string) (labels map[string]string, ok bool) {
	labels = s.labelsAt[ns+"/"+ip]
	return labels, len(labels) > 0
}

// WorkloadLabelsVersion changes whenever what WorkloadLabelsAt answers does.
func (s *Snapshot) WorkloadLabelsVersion() uint64 { return s.labelsAtHash }

// indexGateways records the endpoints of a service labelled with a network, on its
// GatewayPort, as that network's gateways.
func (s *Snapshot) indexGateways(svc *Service) {
	network := svc.Labels[NetworkLabel]
	port, ok := svc.Port(GatewayPort)
	if network == "" || !ok {
		return
	}
	for _, w := range s.endpoints[svc] {
		gw := Gateway{Network: network, Address: w.Address, Port: w.PortFor(port), Locality: w.Locality}
		if net.ParseIP(w.Address) != nil && w.Healthy && !slices.Contains(s.gateways[network], gw) {
			s.gateways[network] = append(s.gateways[network], gw) // hosts of one entry share endpoints
		}
	}
}

// Gateways returns the gateways into a network, in a stable order.
func (s *Snapshot) Gateways(network string) []Gateway { return s.gateways[network] }

func (s *Snapshot) resolveAll(hosts []string, ns string) []string {
	out := make([]string, len(hosts))
	for i, h := range hosts {
		out[i] = ResolveHost(h, ns, s.Domain)
	}
	return out
}

// Services returns every service, sorted by host name (oldest first for equal hosts).
func (s *Snapshot) Services() []*Service { return s.services }

// Workloads returns every workload, sorted by namespace and name.
func (s *Snapshot) Workloads() []*Workload { return s.workloads }

// Config returns every resource of kind k, oldest first.
func (s *Snapshot) Config(k *api.Kind) []*api.Resource { return s.config[k] }

// Endpoints returns the workloads behind a service, in a stable order.
func (s *Snapshot) Endpoints(svc *Service) []*Workload { return s.endpoints[svc] }

// Service returns the service with host name host that a proxy in namespace ns uses:
// one defined in ns if there is one, otherwise the oldest visible to ns.
func (s *Snapshot) Service(host, ns string) *Service {
	var found *Service
	for _, svc := range s.byHost[host] {
		if !svc.VisibleTo(ns) {
			continue
		}
		if svc.Namespace == ns {
			return svc
		}
		if found == nil {
			found = svc
		}
	}
	return found
}

// VirtualServices returns the VirtualServices (hosts resolved) visible from namespace
// ns, oldest first.
func (s *Snapshot) VirtualServices(ns string) []*HostRoutes {
	return visible(s.routes, ns, func(r *api.Resource) []string {
		return r.Spec.(*networking.VirtualService).ExportTo
	})
}

// DestinationRule returns the DestinationRule that applies to host for a proxy with
// labels in namespace ns: one in ns whose workloadSelector selects the proxy first,
// then one in ns without a selector, then one in the service's namespace svcNS, then
// the oldest visible one; exact hosts win over wildcards, longer wildcards over
// shorter. A DestinationRule with a workloadSelector applies only to the workloads of
// its namespace it selects.
func (s *Snapshot) DestinationRule(host, ns, svcNS string, labels map[string]string) *api.Resource {
	var best *HostRoutes
	bestScore := -1
	for _, dr := range visible(s.rules, ns, func(r *api.Resource) []string {
		return r.Spec.(*networking.DestinationRule).ExportTo
	}) {
		pattern := dr.Hosts[0]
		if !HostMatches(pattern, host) {
			continue
		}
		score := len(pattern) * 8
		if pattern == host {
			score = 1 << 20
		}
		if sel := dr.Resource.Spec.(*networking.DestinationRule).WorkloadSelector; sel != nil {
			if dr.Resource.Meta.Namespace != ns || !LabelsMatch(labels, sel.MatchLabels) {
				continue
			}
			score += 4
		}
		switch dr.Resource.Meta.Namespace {
		case ns:
			score += 2
		case svcNS:
			score++
		}
		if score > bestScore {
			best, bestScore = dr, score
		}
	}
	if best == nil {
		return nil
	}
	return best.Resource
}

func visible(rs []*HostRoutes, ns string, exportTo func(*api.Resource) []string) []*HostRoutes {
	out := make([]*HostRoutes, 0, len(rs))
	for _, r := range rs {
		to := exportTo(r.Resource)
		if len(to) == 0 {
			out = append(out, r)
			continue
		}
		for _, e := range to {
			if e == "*" || e == ns || (e == "." && ns == r.Resource.Meta.Namespace) {
				out = append(out, r)
				break
			}
		}
	}
	return out
}
