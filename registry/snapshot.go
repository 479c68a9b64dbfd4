package registry

import (
	"cmp"
	"fmt"
	"maps"
	"net"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"
	meshconfig "istio.io/api/mesh/v1alpha1"
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
	// Reasons are what changed since the View's snapshot before this one, by
	// Istio's push trigger names (ChangeReason), sorted.
	Reasons []string
	// Domain is the DNS suffix short host names resolve under ("cluster.local").
	Domain string

	services  []*Service
	byHost    map[string][]*Service
	endpoints map[*Service][]*Workload
	// merged holds, for the oldest of several services of one host and namespace,
	// the service proxies see in its place (mergeSameHost).
	merged map[*Service]*Service
	// serves holds, for a merged service, the ports each of its workloads serves
	// when that is not all of them (EndpointsOn).
	serves    map[*Service]map[*Workload]map[uint32]bool
	workloads []*Workload
	config    map[*api.Kind][]*api.Resource
	groups    map[string]*api.Resource // WorkloadGroups by namespace/name, see WorkloadGroup
	routes    []*HostRoutes
	rules     *ruleIndex
	gateways  map[string][]Gateway   // by network
	gwScale   uint32                 // see GatewayScale
	issuers   map[string]Issuer      // see WithIssuers
	mesh      *meshconfig.MeshConfig // see MeshConfig
	// vsExportTo and drExportTo are the mesh config's exportTo of VirtualServices
	// and DestinationRules that set none (applyExportDefaults).
	vsExportTo, drExportTo []string
	// labelsAt holds, by "namespace/address", the labels of the first endpoint at
	// that address among the namespace's services (see WorkloadLabelsAt);
	// labelsAtHash changes when it does.
	labelsAt     map[string]map[string]string
	labelsAtHash uint64
	// inlineAt holds, by "namespace/address", the services of no selector that list
	// an endpoint at that address, with the endpoint (see InlineServicesAt); in
	// labelsAtHash too.
	inlineAt map[string][]AddressTarget
	// selectedBy holds the label keys configuration selects by (SelectsBy);
	// selectedByHash changes when they do.
	selectedBy     map[string]bool
	entryLabels    map[string]bool // label keys of WorkloadEntries
	selectedByHash uint64
	// proxyMetadata are the node metadata keys EnvoyFilters match proxies by, and
	// proxyVersion whether some EnvoyFilter matches their Istio version.
	proxyMetadata map[string]bool
	proxyVersion  bool
	// bindsProxyAddress is whether some Sidecar has an ingress listener without a
	// bind address (BindsProxyAddress).
	bindsProxyAddress bool
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
		merged:    map[*Service]*Service{},
		serves:    map[*Service]map[*Workload]map[uint32]bool{},
		labelsAt:  map[string]map[string]string{},
		inlineAt:  map[string][]AddressTarget{},
		config:    map[*api.Kind][]*api.Resource{},
		groups:    map[string]*api.Resource{},
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
		// Configuration is what navarch apply writes, and the configuration kinds an
		// adapter mirrors from elsewhere (a Kubernetes cluster's Istio resources);
		// ServiceEntries and WorkloadEntries of registry spaces are inventory.
		if e.Space == store.ConfigSpace || (r.Kind != api.ServiceEntry && r.Kind != api.WorkloadEntry) {
			s.config[r.Kind] = append(s.config[r.Kind], r)
		}
		if g := r.Meta.Namespace + "/" + r.Meta.Name; r.Kind == api.WorkloadGroup && (s.groups[g] == nil || e.Space == store.ConfigSpace) {
			s.groups[g] = r // what navarch apply wrote before what a source mirrors
		}
		if r.Kind == api.MeshConfig && r.Meta.Name == api.MeshConfigName && r.Meta.Namespace == api.MeshConfigNamespace &&
			(s.mesh == nil || e.Space == store.ConfigSpace) {
			s.mesh = r.Spec.(*meshconfig.MeshConfig) // what navarch apply wrote before what a source mirrors
		}
	}
	for _, rs := range s.config {
		sort.Slice(rs, func(i, j int) bool { return Older(rs[i], rs[j]) })
	}
	s.applyExportDefaults()
	s.allocateAddresses()
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

// MeshConfig returns the mesh config (api.MeshConfig istio-system/istio: the one
// navarch apply wrote, else one a source mirrors), nil when there is none.
func (s *Snapshot) MeshConfig() *meshconfig.MeshConfig { return s.mesh }

// applyExportDefaults gives the services, VirtualServices and DestinationRules that
// set no exportTo the mesh config's defaults (defaultServiceExportTo and the others),
// as Istio does: without them, everything is exported to every namespace.
func (s *Snapshot) applyExportDefaults() {
	m := s.MeshConfig()
	if d := m.GetDefaultServiceExportTo(); len(d) > 0 {
		for _, svc := range s.services {
			if len(svc.ExportTo) == 0 {
				svc.ExportTo = d
			}
		}
	}
	s.vsExportTo, s.drExportTo = m.GetDefaultVirtualServiceExportTo(), m.GetDefaultDestinationRuleExportTo()
}

// Older orders resources by creation, then namespace and name, as Istio does when
// two resources compete for the same host (or two EnvoyFilters of one priority).
func Older(a, b *api.Resource) bool {
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
	byNamespace := map[string]*labelIndex{}
	for _, w := range s.workloads {
		if w.Origin.Kind == api.WorkloadEntry {
			x := byNamespace[w.Namespace]
			if x == nil {
				x = &labelIndex{byLabel: map[label][]*Workload{}}
				byNamespace[w.Namespace] = x
			}
			x.add(w)
		}
	}
	for _, svc := range s.services {
		s.byHost[svc.Hostname] = append(s.byHost[svc.Hostname], svc)
		if svc.Selector == nil {
			s.endpoints[svc] = inline[svc]
			continue
		}
		if x := byNamespace[svc.Namespace]; x != nil {
			if ws := x.selected(svc.Selector); len(ws) > 0 {
				s.endpoints[svc] = ws
			}
		}
	}
	s.mergeSameHost()
	h := xxhash.New()
	for _, svc := range s.services {
		s.indexGateways(svc)
		for _, w := range s.endpoints[svc] {
			k := svc.Namespace + "/" + w.Address
			if svc.Selector == nil && !slices.ContainsFunc(s.inlineAt[k], func(t AddressTarget) bool { return t.Service == svc }) {
				s.inlineAt[k] = append(s.inlineAt[k], AddressTarget{Service: svc, Workload: w})
				h.WriteString("@" + k + "\x00" + svc.Hostname)
				for _, p := range svc.Ports {
					fmt.Fprintf(h, "\x00%d>%d", p.Number, w.PortFor(p))
				}
				h.WriteString("\n")
			}
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
	s.sortGateways()
	s.indexSelectorKeys()
	for _, r := range s.config[api.VirtualService] {
		s.routes = append(s.routes, &HostRoutes{Resource: r, Hosts: s.resolveAll(r.Spec.(*networking.VirtualService).Hosts, r.Meta.Namespace)})
	}
	s.rules = newRuleIndex(s.config[api.DestinationRule], s.Domain, s.drExportTo)
}

// labelIndex is one namespace's WorkloadEntries, indexed by label so that matching
// a selector looks only at the workloads carrying its rarest label: a selector per
// service checked against every workload of the namespace made indexing quadratic
// (1,000 services of 3 VMs each: 3 million matches on every change of the store).
type labelIndex struct {
	all     []*Workload
	byLabel map[label][]*Workload
}

type label struct{ key, value string }

// add indexes w; workloads keep the order they are added in.
func (x *labelIndex) add(w *Workload) {
	x.all = append(x.all, w)
	for k, v := range w.Labels {
		l := label{k, v}
		x.byLabel[l] = append(x.byLabel[l], w)
	}
}

// selected returns the workloads whose labels include all of selector's, in the
// order they were added; an empty selector selects them all.
func (x *labelIndex) selected(selector map[string]string) []*Workload {
	candidates := x.all
	for k, v := range selector {
		ws := x.byLabel[label{k, v}]
		if len(ws) == 0 {
			return nil
		}
		if len(ws) < len(candidates) {
			candidates = ws
		}
	}
	var out []*Workload
	for _, w := range candidates {
		if w.Matches(selector) {
			out = append(out, w)
		}
	}
	return out
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

// AddressTarget is a service that lists an endpoint inline and that endpoint.
type AddressTarget struct {
	Service  *Service
	Workload *Workload
}

// InlineServicesAt returns the services of namespace ns without a selector (a
// ServiceEntry's own endpoints, a registry's instances) that list an endpoint at
// address ip, each with the first such endpoint, in the snapshot's order: the
// services istiod finds a sidecar at that address to serve by its IP, which no
// label of the sidecar's can select.
func (s *Snapshot) InlineServicesAt(ns, ip string) []AddressTarget { return s.inlineAt[ns+"/"+ip] }

// WorkloadLabelsVersion changes whenever what WorkloadLabelsAt or InlineServicesAt
// answers does.
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
		cluster, _ := KubernetesCluster(w.Source)
		gw := Gateway{Network: network, Cluster: cluster, Address: w.Address, Port: w.PortFor(port)}
		if net.ParseIP(w.Address) != nil && w.Healthy && !slices.Contains(s.gateways[network], gw) {
			s.gateways[network] = append(s.gateways[network], gw) // hosts of one entry share endpoints
		}
	}
}

// sortGateways puts each network's gateways in istiod's order (by address, then
// port) and computes GatewayScale.
func (s *Snapshot) sortGateways() {
	counts := map[[2]string]uint32{}
	for network, gws := range s.gateways {
		slices.SortFunc(gws, func(a, b Gateway) int {
			return cmp.Or(strings.Compare(a.Address, b.Address), cmp.Compare(a.Port, b.Port))
		})
		counts[[2]string{network, "*"}] = uint32(len(gws))
		for _, gw := range gws {
			counts[[2]string{network, gw.Cluster}]++
		}
	}
	for _, n := range counts {
		if s.gwScale == 0 {
			s.gwScale = n
		}
		s.gwScale = s.gwScale / gcd(s.gwScale, n) * n
	}
}

func gcd(a, b uint32) uint32 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// Gateways returns the gateways into a network, in a stable order.
func (s *Snapshot) Gateways(network string) []Gateway { return s.gateways[network] }

// GatewaysFor returns the gateways by which a workload of network and Kubernetes
// cluster is reached: those of its network serving its cluster if there are any,
// else all of its network's, as istiod picks them.
func (s *Snapshot) GatewaysFor(network, cluster string) []Gateway {
	gws := s.gateways[network]
	if cluster == "" {
		return gws
	}
	var same []Gateway
	for _, gw := range gws {
		if gw.Cluster == cluster {
			same = append(same, gw)
		}
	}
	if len(same) == 0 {
		return gws
	}
	return same
}

// GatewayScale is what istiod multiplies every endpoint's weight by once any
// network has gateways (0 when none has): the least common multiple of the number
// of gateways into each network (and into each network's cluster), so that an
// endpoint's weight splits evenly over however many gateways reach it.
func (s *Snapshot) GatewayScale() uint32 { return s.gwScale }

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

// WorkloadGroup returns the WorkloadGroup ns/name, nil when there is none: the one
// navarch apply wrote when a source mirrors one of the same name too, as a node
// reads a registering workload's group (store.Layered).
func (s *Snapshot) WorkloadGroup(ns, name string) *api.Resource { return s.groups[ns+"/"+name] }

// Config returns every resource of kind k, oldest first.
func (s *Snapshot) Config(k *api.Kind) []*api.Resource { return s.config[k] }

// Endpoints returns the workloads behind a service, in a stable order.
func (s *Snapshot) Endpoints(svc *Service) []*Workload { return s.endpoints[svc] }

// EndpointsOn returns the workloads behind a service that serve its port number:
// Endpoints, but for a service merged from several (mergeSameHost) only those whose
// own services have the port.
func (s *Snapshot) EndpointsOn(svc *Service, port uint32) []*Workload {
	all, serves := s.endpoints[svc], s.serves[svc]
	if serves == nil {
		return all
	}
	var out []*Workload
	for _, w := range all {
		if ports := serves[w]; ports == nil || ports[port] {
			out = append(out, w)
		}
	}
	return out
}

// Service returns the service with host name host that a proxy in namespace ns uses:
// one defined in ns if there is one, otherwise the oldest visible to ns; merged with
// the others of its host and namespace (mergeSameHost).
func (s *Snapshot) Service(host, ns string) *Service {
	var found *Service
	for _, svc := range s.byHost[host] {
		if !svc.VisibleTo(ns) {
			continue
		}
		if svc.Namespace == ns {
			found = svc
			break
		}
		if found == nil {
			found = svc
		}
	}
	if m := s.merged[found]; m != nil {
		return m
	}
	return found
}

// mergeSameHost makes one service, for proxies, of the services that define one host
// in one namespace from one source (several ServiceEntries, say one per port or per
// group of endpoints), as Istio does: the oldest, with the ports of the later ones it
// lacks when they resolve, label, select and export alike, and the endpoints of all
// of them, oldest first, each on the ports of its own service (EndpointsOn; a later
// DNS_ROUND_ROBIN service's not when it repeats a port: Envoy takes one address per
// such cluster). Snapshot.Services still lists each as defined.
func (s *Snapshot) mergeSameHost() {
	type key struct{ ns, host, source string }
	groups := map[key][]*Service{}
	for _, svc := range s.services { // by host, oldest first
		k := key{svc.Namespace, svc.Hostname, svc.Source}
		groups[k] = append(groups[k], svc)
	}
	for _, g := range groups {
		if len(g) < 2 {
			continue
		}
		first := g[0]
		m := *first
		m.Ports = slices.Clone(first.Ports)
		var eps []*Workload
		served := map[*Workload]map[uint32]bool{}
		ports := map[uint32]bool{}
		for i, svc := range g {
			if i > 0 && mergeable(first, svc) {
				for _, p := range svc.Ports {
					if !slices.ContainsFunc(m.Ports, func(have Port) bool { return have.Number == p.Number }) {
						m.Ports = append(m.Ports, p)
					}
				}
			}
			if svc.Resolution == ResolutionDNSRoundRobin && slices.ContainsFunc(svc.Ports, func(p Port) bool { return ports[p.Number] }) {
				continue
			}
			for _, p := range svc.Ports {
				ports[p.Number] = true
			}
			for _, w := range s.endpoints[svc] {
				if served[w] == nil {
					served[w] = map[uint32]bool{}
					eps = append(eps, w)
				}
				for _, p := range svc.Ports {
					served[w][p.Number] = true
				}
			}
		}
		slices.SortStableFunc(m.Ports, func(a, b Port) int { return cmp.Compare(a.Number, b.Number) })
		s.merged[first] = &m
		s.endpoints[&m] = eps
		for w, on := range served {
			if slices.ContainsFunc(m.Ports, func(p Port) bool { return !on[p.Number] }) {
				if s.serves[&m] == nil {
					s.serves[&m] = map[*Workload]map[uint32]bool{}
				}
				s.serves[&m][w] = on
			}
		}
	}
}

// mergeable reports whether b's ports join a's, as Istio decides for two services of
// one host and namespace.
func mergeable(a, b *Service) bool {
	set := func(l []string) []string { return slices.Compact(slices.Sorted(slices.Values(l))) }
	return a.Resolution == b.Resolution && maps.Equal(a.Labels, b.Labels) && maps.Equal(a.Selector, b.Selector) &&
		slices.Equal(set(a.ExportTo), set(b.ExportTo))
}

// VirtualServices returns the VirtualServices (hosts resolved) visible from namespace
// ns, oldest first.
func (s *Snapshot) VirtualServices(ns string) []*HostRoutes {
	return visible(s.routes, ns, func(r *api.Resource) []string {
		return orDefault(r.Spec.(*networking.VirtualService).ExportTo, s.vsExportTo)
	})
}

func orDefault(exportTo, def []string) []string {
	if len(exportTo) == 0 {
		return def
	}
	return exportTo
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
