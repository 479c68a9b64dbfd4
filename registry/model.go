package registry

import (
	"sort"
	"strings"

	"github.com/navarch/navarch/api"
)

// SourceServiceEntry is the Source of services and workloads a user configured.
const SourceServiceEntry = "serviceentry"

// KubernetesSource is the Source of the services and workloads of Kubernetes
// cluster id, KubernetesConfigSource that of the cluster's Istio configuration (its
// ServiceEntries and WorkloadEntries), as the Kubernetes adapter writes them.
func KubernetesSource(id string) string { return "kubernetes." + id }

// KubernetesConfigSource: see KubernetesSource.
func KubernetesConfigSource(id string) string { return KubernetesSource(id) + ".config" }

// KubernetesCluster returns the Kubernetes cluster of source ("" if it is none's)
// and whether source is the cluster's Istio configuration.
func KubernetesCluster(source string) (id string, config bool) {
	id, ok := strings.CutPrefix(source, "kubernetes.")
	if !ok {
		return "", false
	}
	if id, ok := strings.CutSuffix(id, ".config"); ok {
		return id, true
	}
	return id, false
}

// Resolution says how a service's endpoints are found.
type Resolution int

// Resolutions, as ServiceEntry names them.
const (
	ResolutionStatic Resolution = iota
	ResolutionDNS
	ResolutionDNSRoundRobin
	ResolutionNone
)

func (r Resolution) String() string {
	return [...]string{"STATIC", "DNS", "DNS_ROUND_ROBIN", "NONE"}[r]
}

// Service is one host name of the mesh with its ports.
type Service struct {
	// Hostname is the fully qualified name clients use, e.g. "reviews.default.svc.cluster.local".
	Hostname string
	// Namespace is the namespace of the resource that defines the service.
	Namespace string
	// Ports are the service's ports, sorted by number.
	Ports []Port
	// Addresses are the virtual IPs or CIDRs of the service, if any.
	Addresses []string
	// AutoAddresses are an IPv4 and an IPv6 address allocated to a ServiceEntry
	// host without Addresses (autoalloc.go), which proxies with DNS capture know it
	// by, as Istio's auto-allocated addresses.
	AutoAddresses []string
	Resolution    Resolution
	MeshExternal  bool
	// ExportTo lists the namespaces that see the service ("*" for all, "." for its own).
	// Empty means all.
	ExportTo []string
	// Selector selects the WorkloadEntries behind the service (workloadSelector); nil
	// when the service lists its endpoints inline.
	Selector map[string]string
	// Labels are the labels of the resource that defines the service.
	Labels map[string]string
	// SubjectAltNames are identities the service's servers may present besides their
	// workloads' own (ServiceEntry subjectAltNames), checked under mTLS.
	SubjectAltNames []string
	// Source is where the service came from: SourceServiceEntry or a registry source.
	Source string
	// Origin is the resource that defines the service.
	Origin api.Key
	// Created orders services that define the same host: the oldest wins.
	Created string
	// TrafficDistribution is the service's preference for nearby endpoints
	// (TrafficDistributionAnnotation); empty for none.
	TrafficDistribution TrafficDistribution
	// NodeLocal restricts each client to the endpoints on its own node
	// (InternalTrafficPolicyAnnotation: a Kubernetes Service's
	// internalTrafficPolicy Local).
	NodeLocal bool
}

// InternalTrafficPolicyAnnotation "Local" on a ServiceEntry sends each client only
// to the endpoints on its own node (NodeAnnotation, and the proxy's NODE_NAME), as
// a Kubernetes Service's spec.internalTrafficPolicy Local does in Istio; a client
// with no node, or none of whose node's endpoints is there, gets none. The
// Kubernetes adapter sets it.
const InternalTrafficPolicyAnnotation = "navarch.io/internal-traffic-policy"

// NodeAnnotation on a WorkloadEntry names the node the workload runs on (a pod's
// spec.nodeName; the Kubernetes adapter sets it), for node-local services and
// PreferSameNode.
const NodeAnnotation = "navarch.io/node"

// PodDNSNameAnnotation on a WorkloadEntry is the name a Kubernetes pod has under
// the headless services that select it, "<hostname>.<subdomain>" (the pod's
// spec.hostname, else its name, and its spec.subdomain; a StatefulSet's pods have
// them): istio-agent's DNS proxy answers for
// "<hostname>.<subdomain>.<namespace>.svc.<domain>" (nametable.go). The Kubernetes
// adapter sets it.
const PodDNSNameAnnotation = "navarch.io/pod-dns-name"

// WorkloadNameAnnotation on a WorkloadEntry names the workload it is an instance
// of, as Istio's telemetry names it (a pod's Deployment; the Kubernetes and Consul
// adapters set it). Istio's own ways take precedence: the auto-registration group
// annotation of a VM's entry, then the service.istio.io/workload-name label; else
// the entry's name.
const WorkloadNameAnnotation = "navarch.io/workload-name"

// TrafficDistributionAnnotation on a ServiceEntry says which of its endpoints its
// clients prefer, as Istio reads it (and as a Kubernetes Service's
// spec.trafficDistribution): PreferClose or PreferSameZone, the clients' own
// network, region and zone first; PreferSameNode, then their sub-zone and node too.
// Locality load balancing in a DestinationRule (localityLbSetting) takes precedence.
const TrafficDistributionAnnotation = "networking.istio.io/traffic-distribution"

// TrafficDistribution is a service's preference for nearby endpoints.
type TrafficDistribution string

// The preferences Istio knows; PreferClose is PreferSameZone's older name.
const (
	PreferSameZone TrafficDistribution = "PreferSameZone"
	PreferSameNode TrafficDistribution = "PreferSameNode"
)

// ParseTrafficDistribution reads a traffic distribution annotation's value, case
// insensitively as Istio does; an empty or unknown value is no preference (Istio
// warns and routes to any endpoint).
func ParseTrafficDistribution(v string) (TrafficDistribution, bool) {
	switch strings.ToLower(v) {
	case "":
		return "", true
	case "preferclose", "prefersamezone":
		return PreferSameZone, true
	case "prefersamenode":
		return PreferSameNode, true
	}
	return "", false
}

// FailoverPriority returns the labels that order a service's endpoints for a
// client under preference d, as Istio's failoverPriority, and nil for none.
// Locality and network count as their topology labels on both sides.
func (d TrafficDistribution) FailoverPriority() []string {
	switch d {
	case PreferSameZone:
		return []string{NetworkLabel, LabelRegion, LabelZone}
	case PreferSameNode:
		return []string{NetworkLabel, LabelRegion, LabelZone, LabelSubzone, LabelHostname}
	}
	return nil
}

// Topology labels, as Kubernetes and Istio name them.
const (
	LabelRegion   = "topology.kubernetes.io/region"
	LabelZone     = "topology.kubernetes.io/zone"
	LabelSubzone  = "topology.istio.io/subzone"
	LabelHostname = "kubernetes.io/hostname"
)

// NetworkLabel on a ServiceEntry makes its endpoints the gateways into that
// network (Istio's label for the same): proxies in other networks reach the
// network's endpoints through them, on GatewayPort.
const NetworkLabel = "topology.istio.io/network"

// GatewayPort is the service port of a network gateway that carries traffic into
// its network (mTLS, routed by SNI: an AUTO_PASSTHROUGH Gateway server).
const GatewayPort = 15443

// Gateway is one way into a network: a gateway instance's address and port, and
// the Kubernetes cluster it serves ("" for a ServiceEntry's: any of its network).
type Gateway struct {
	Network string
	Cluster string
	Address string
	Port    uint32
}

// SameNetwork reports whether endpoints in network b are reachable directly from
// network a: an unset network is everyone's.
func SameNetwork(a, b string) bool { return a == "" || b == "" || a == b }

// Port is one port of a service.
type Port struct {
	Name       string
	Number     uint32
	Protocol   string
	TargetPort uint32
}

// IsKubernetesService reports whether s is a Kubernetes Service: its source is a
// cluster's, not that cluster's Istio configuration's.
func (s *Service) IsKubernetesService() bool {
	id, config := KubernetesCluster(s.Source)
	return id != "" && !config
}

// Port returns the service's port numbered n.
func (s *Service) Port(n uint32) (Port, bool) {
	for _, p := range s.Ports {
		if p.Number == n {
			return p, true
		}
	}
	return Port{}, false
}

// VisibleTo reports whether a proxy in namespace ns sees the service.
func (s *Service) VisibleTo(ns string) bool {
	if len(s.ExportTo) == 0 {
		return true
	}
	for _, e := range s.ExportTo {
		if e == "*" || e == ns || (e == "." && ns == s.Namespace) {
			return true
		}
	}
	return false
}

// Workload is one instance that serves services: a WorkloadEntry, an inline
// ServiceEntry endpoint, or an instance an adapter found.
type Workload struct {
	// Name identifies the workload within its namespace and source.
	Name      string
	Namespace string
	// Address is an IP, a host name (DNS services) or "unix://path".
	Address string
	// Ports maps service port names to the port the workload listens on.
	Ports  map[string]uint32
	Labels map[string]string
	// Locality is "region/zone/subzone" (any suffix may be missing).
	Locality string
	Network  string
	// Weight is the workload's load-balancing weight; 0 means 1.
	Weight         uint32
	ServiceAccount string
	// Healthy is false when the source reports the workload failing its checks.
	Healthy bool
	// Node is the node the workload runs on (NodeAnnotation), if known.
	Node string
	// DNSName is a pod's "<hostname>.<subdomain>" (PodDNSNameAnnotation), if it
	// has one.
	DNSName string
	// WorkloadName is the workload this is an instance of, as Istio's telemetry
	// names it: a pod's Deployment, a VM's WorkloadGroup, "<ServiceEntry>-<index>"
	// for a ServiceEntry's inline endpoints (WorkloadNameAnnotation).
	WorkloadName string
	Source       string
	Origin       api.Key
}

// TLSModeLabel is the label Istio's injector puts on workloads with a proxy that
// takes Istio's mTLS ("istio"), or "disabled" on those that refuse it.
const TLSModeLabel = "security.istio.io/tlsMode"

// MeshTLS reports whether the workload has a proxy that takes Istio's mTLS, as
// istiod reads it: its TLSModeLabel says "istio", or, for a workload that is not a
// Kubernetes pod (a WorkloadEntry, a ServiceEntry's endpoint), it has no such label
// and names a service account.
func (w *Workload) MeshTLS() bool {
	if mode, ok := w.Labels[TLSModeLabel]; ok {
		return mode == "istio"
	}
	cluster, _ := KubernetesCluster(w.Source)
	return cluster == "" && w.ServiceAccount != ""
}

// PortFor returns the port the workload serves service port p on.
func (w *Workload) PortFor(p Port) uint32 {
	if n, ok := w.Ports[p.Name]; ok && n != 0 {
		return n
	}
	if p.TargetPort != 0 {
		return p.TargetPort
	}
	return p.Number
}

// Matches reports whether the workload's labels include every label of selector.
func (w *Workload) Matches(selector map[string]string) bool {
	return LabelsMatch(w.Labels, selector)
}

// LabelsMatch reports whether labels include every key/value of selector.
func LabelsMatch(labels, selector map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// ResolveHost turns a host as written in a resource in namespace ns into the fully
// qualified name Istio would use: a name without dots is a short Kubernetes-style name
// ("reviews" in "default" is "reviews.default.svc.<domain>"); anything else, wildcards
// and IPs included, stays as written.
func ResolveHost(host, ns, domain string) string {
	if host == "" || strings.Contains(host, ".") || strings.Contains(host, "*") || strings.Contains(host, ":") {
		return host
	}
	return host + "." + ns + ".svc." + domain
}

// HostMatches reports whether name (a concrete host) matches pattern, which may start
// with "*." (or be "*").
func HostMatches(pattern, name string) bool {
	if pattern == "*" {
		return true
	}
	if suffix, ok := strings.CutPrefix(pattern, "*"); ok {
		return strings.HasSuffix(name, suffix) && len(name) > len(suffix)
	}
	return pattern == name
}

// SortedKeys returns the keys of m in order.
func SortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
