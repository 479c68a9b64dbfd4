package kubernetes

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/navarch/navarch/adapters/mirror"
	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/registry"
)

// Labels and annotations Istio reads from Kubernetes objects.
const (
	// AnnotationExportTo on a Service limits the namespaces that see it, as a
	// ServiceEntry's exportTo ("." for its own, "*" for all).
	AnnotationExportTo = "networking.istio.io/exportTo"
	// LabelLocality on a pod overrides its node's: "region.zone.subzone".
	LabelLocality = "istio-locality"
	// LabelNetwork on a pod names its network; on a Service, it makes the Service's
	// external addresses its network's gateways (Istio's east-west gateway).
	LabelNetwork = "topology.istio.io/network"
	// LabelGatewayPort on a network's gateway Service is the port that carries other
	// networks' traffic in, when it is not registry.GatewayPort (15443).
	LabelGatewayPort = "networking.istio.io/gatewayPort"
	// AnnotationNodeSelector on a network's gateway Service of type NodePort selects
	// the nodes (a JSON map of labels) whose external IPs are its gateways.
	AnnotationNodeSelector = "traffic.istio.io/nodeSelector"
	// Node labels that give a pod's locality.
	LabelRegion  = registry.LabelRegion
	LabelZone    = registry.LabelZone
	LabelSubzone = registry.LabelSubzone
)

// inventory is the cluster as the adapter last read it.
type inventory struct {
	services []*corev1.Service
	pods     []*corev1.Pod
	nodes    map[string]*corev1.Node
	// slices are the EndpointSlices not kept by Kubernetes' EndpointSlice controller:
	// those of Services without a selector.
	slices []*discoveryv1.EndpointSlice
	// namespaces are the cluster's namespaces, by name (their names and labels).
	namespaces map[string]*corev1.Namespace
	// gatewayAddrs are the addresses of network gateways' load balancers known by
	// host name, by host name (gatewayResolver).
	gatewayAddrs map[string][]string
}

// translator turns an inventory into ServiceEntries and WorkloadEntries. It is a pure
// function of its input: equal inventories give equal resources.
type translator struct {
	domain  string
	network string // of pods that name none; empty: systemNamespace's label
	// systemNamespace is the namespace whose network label is the cluster's network
	// when network is empty.
	systemNamespace string
	// selectors choose the namespaces followed (any one matching); none: all.
	selectors []labels.Selector
}

// follows returns whether the objects of a namespace are followed: with no
// selectors, those of every namespace; otherwise those of a namespace that exists
// and whose labels match one of the selectors.
func (t translator) follows(namespaces map[string]*corev1.Namespace) func(ns string) bool {
	if len(t.selectors) == 0 {
		return func(string) bool { return true }
	}
	known := map[string]bool{}
	return func(name string) bool {
		ok, done := known[name]
		if !done {
			if ns := namespaces[name]; ns != nil {
				set := labels.Set(ns.Labels)
				ok = slices.ContainsFunc(t.selectors, func(sel labels.Selector) bool { return sel.Matches(set) })
			}
			known[name] = ok
		}
		return ok
	}
}

// translate returns a ServiceEntry per Service and a WorkloadEntry per pod that a
// Service selects; a Service without a selector lists the endpoints of its
// EndpointSlices in its ServiceEntry. Only the objects of followed namespaces are
// read. Resources that fail validation are left out and reported.
func (t translator) translate(inv inventory) ([]*api.Resource, []mirror.Skipped) {
	if t.network == "" {
		if ns := inv.namespaces[t.systemNamespace]; ns != nil {
			t.network = ns.Labels[LabelNetwork]
		}
	}
	follows := t.follows(inv.namespaces)
	var out []*api.Resource
	var skips []mirror.Skipped
	keep := func(object string, r *api.Resource) {
		if err := api.Validate(r); err != nil {
			skips = append(skips, mirror.Skipped{Object: object, Err: err})
			return
		}
		out = append(out, r)
	}
	bySvc := map[string][]*discoveryv1.EndpointSlice{} // by namespace/service
	for _, sl := range sorted(inv.slices) {
		if !follows(sl.Namespace) {
			continue
		}
		if svc := sl.Labels[discoveryv1.LabelServiceName]; svc != "" {
			bySvc[sl.Namespace+"/"+svc] = append(bySvc[sl.Namespace+"/"+svc], sl)
		}
	}
	sel := selectorIndex{}
	nodeAware := map[*corev1.Service]bool{} // whose pods' entries name their nodes
	for _, s := range sorted(inv.services) {
		if !follows(s.Namespace) {
			continue
		}
		r := t.serviceEntry(s, bySvc[s.Namespace+"/"+s.Name], inv.nodes, inv.namespaces[s.Namespace])
		if r == nil {
			continue
		}
		keep("service "+s.Namespace+"/"+s.Name, r)
		if ann := r.Meta.Annotations; ann[registry.InternalTrafficPolicyAnnotation] != "" ||
			ann[registry.TrafficDistributionAnnotation] == string(registry.PreferSameNode) {
			nodeAware[s] = true
		}
		if gw := t.networkGateway(s, inv.gatewayAddrs, inv.nodes); gw != nil {
			keep("service "+s.Namespace+"/"+s.Name+" (network gateway)", gw)
		}
		if len(s.Spec.Selector) > 0 && s.Spec.Type != corev1.ServiceTypeExternalName {
			sel.add(s)
		}
	}
	for _, p := range sorted(inv.pods) {
		if !running(p) || !follows(p.Namespace) {
			continue
		}
		if selecting := sel.selecting(p); len(selecting) > 0 {
			named := slices.ContainsFunc(selecting, func(s *corev1.Service) bool { return nodeAware[s] })
			keep("pod "+p.Namespace+"/"+p.Name, t.workloadEntry(p, selecting, inv.nodes[p.Spec.NodeName], named))
		}
	}
	return out, skips
}

func sorted[T interface {
	GetNamespace() string
	GetName() string
}](objs []T) []T {
	out := append([]T(nil), objs...)
	sort.Slice(out, func(i, j int) bool {
		if a, b := out[i].GetNamespace(), out[j].GetNamespace(); a != b {
			return a < b
		}
		return out[i].GetName() < out[j].GetName()
	})
	return out
}

// selectorIndex finds the Services that select a pod without trying every Service
// of its namespace: each Service is filed under one label of its selector (the
// least key), and a pod looks up only its own labels.
type selectorIndex struct {
	byLabel map[string][]indexed // "<namespace>/<key>=<value>"
	n       int
}

type indexed struct {
	svc   *corev1.Service
	order int // the order Services were added in
}

func (x *selectorIndex) add(s *corev1.Service) {
	if x.byLabel == nil {
		x.byLabel = map[string][]indexed{}
	}
	k := slices.Min(slices.Collect(maps.Keys(s.Spec.Selector)))
	key := s.Namespace + "/" + k + "=" + s.Spec.Selector[k]
	x.byLabel[key] = append(x.byLabel[key], indexed{svc: s, order: x.n})
	x.n++
}

// selecting returns the Services that select the pod, in the order they were added.
func (x *selectorIndex) selecting(p *corev1.Pod) []*corev1.Service {
	var found []indexed
	for k, v := range p.Labels {
		for _, c := range x.byLabel[p.Namespace+"/"+k+"="+v] {
			if selects(c.svc.Spec.Selector, p.Labels) {
				found = append(found, c)
			}
		}
	}
	slices.SortFunc(found, func(a, b indexed) int { return a.order - b.order })
	out := make([]*corev1.Service, len(found))
	for i, c := range found {
		out[i] = c.svc
	}
	return out
}

// selects reports whether a Service's selector matches a pod's labels.
func selects(selector, labels map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// running reports whether a pod has an address and may still serve: pods that have
// finished (Succeeded, Failed) are gone from the Service as kube-proxy has it.
func running(p *corev1.Pod) bool {
	return p.Status.PodIP != "" && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed
}

// ready reports whether a pod gets traffic: Ready and not terminating.
func ready(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// serviceEntry returns the ServiceEntry of a Service: its host in the cluster's
// domain, its cluster IPs, its ports with the protocol Istio gives them, and a
// workloadSelector equal to its selector; for an ExternalName Service, DNS
// resolution of the external name; for a Service without a selector, the ready
// endpoints of its EndpointSlices; its traffic distribution (in namespace ns) as
// Istio's annotation. nil for a Service of no type navarch routes.
func (t translator) serviceEntry(s *corev1.Service, slices []*discoveryv1.EndpointSlice, nodes map[string]*corev1.Node, ns *corev1.Namespace) *api.Resource {
	se := &networking.ServiceEntry{
		Hosts:      []string{s.Name + "." + s.Namespace + ".svc." + t.domain},
		Location:   networking.ServiceEntry_MESH_INTERNAL,
		Resolution: networking.ServiceEntry_STATIC,
	}
	for _, p := range s.Spec.Ports {
		sp := &networking.ServicePort{Number: uint32(p.Port), Name: portName(p), Protocol: protocol(p)}
		if p.TargetPort.Type == intstr.Int && p.TargetPort.IntVal != 0 && p.TargetPort.IntVal != p.Port {
			sp.TargetPort = uint32(p.TargetPort.IntVal)
		}
		se.Ports = append(se.Ports, sp)
	}
	switch {
	case s.Spec.Type == corev1.ServiceTypeExternalName:
		se.Location = networking.ServiceEntry_MESH_EXTERNAL
		se.Resolution = networking.ServiceEntry_DNS
		se.Endpoints = []*networking.WorkloadEntry{{Address: s.Spec.ExternalName}}
	case len(s.Spec.Selector) > 0:
		se.WorkloadSelector = &networking.WorkloadSelector{Labels: s.Spec.Selector}
		se.Addresses = clusterIPs(s)
	default:
		se.Addresses = clusterIPs(s)
		se.Endpoints = sliceEndpoints(s, slices, nodes)
	}
	if headless(s) && se.WorkloadSelector != nil {
		// A headless Service's clients pick their pod (a StatefulSet's peers, by
		// their names): resolution NONE, as istiod has it, so that sidecars send each
		// connection where it was going; proxyless clients still balance over the
		// pods. (A ServiceEntry of resolution NONE cannot list endpoints, so a
		// headless Service without a selector stays STATIC.)
		se.Resolution = networking.ServiceEntry_NONE
	}
	if v := s.Annotations[AnnotationExportTo]; v != "" {
		for _, ns := range strings.Split(v, ",") {
			if ns = strings.TrimSpace(ns); ns != "" {
				se.ExportTo = append(se.ExportTo, ns)
			}
		}
	}
	// A Service's network label makes an Istio east-west gateway of it, reached at
	// its load balancer's address; on this entry navarch would take the pods'
	// addresses for the gateway's, which other networks cannot reach, so the label is
	// not copied: networkGateway makes the gateway's entry.
	labels := s.Labels
	if _, ok := labels[LabelNetwork]; ok {
		labels = maps.Clone(labels)
		delete(labels, LabelNetwork)
	}
	var annotations map[string]string
	annotate := func(k, v string) {
		if annotations == nil {
			annotations = map[string]string{}
		}
		annotations[k] = v
	}
	if d := trafficDistribution(s, ns); d != "" {
		annotate(registry.TrafficDistributionAnnotation, string(d))
	}
	if p := s.Spec.InternalTrafficPolicy; p != nil && *p == corev1.ServiceInternalTrafficPolicyLocal && se.WorkloadSelector != nil {
		// Pods' entries name their nodes; endpoints listed inline cannot.
		annotate(registry.InternalTrafficPolicyAnnotation, "Local")
	}
	return &api.Resource{
		Kind: api.ServiceEntry,
		Meta: api.ObjectMeta{Name: s.Name, Namespace: s.Namespace, Labels: labels, Annotations: annotations},
		Spec: se,
	}
}

// trafficDistribution returns a Service's preference for nearby endpoints, as
// istiod reads it: its spec.trafficDistribution when it names one Istio knows
// (PreferClose, PreferSameZone, PreferSameNode), else Istio's annotation on it,
// else that annotation on its namespace ns. An unknown annotation value is no
// preference.
func trafficDistribution(s *corev1.Service, ns *corev1.Namespace) registry.TrafficDistribution {
	if v := s.Spec.TrafficDistribution; v != nil {
		if d, _ := registry.ParseTrafficDistribution(*v); d != "" {
			return d
		}
	}
	v, ok := s.Annotations[registry.TrafficDistributionAnnotation]
	if !ok && ns != nil {
		v = ns.Annotations[registry.TrafficDistributionAnnotation]
	}
	d, _ := registry.ParseTrafficDistribution(v)
	return d
}

// networkGateway returns, for a Service labelled with a network (Istio's east-west
// gateway, installed with its network's name), a ServiceEntry that makes the
// Service's external addresses (its load balancer's IPs, or the addresses its host
// name has in resolved, and its external IPs) the gateways into that network on its
// gateway port: the label LabelGatewayPort names
// it, else registry.GatewayPort if the Service has that port. nil for any other
// Service, or one without an external IP yet. The entry is named
// <service>.network-gateway (a Service's name has no dot, so no Service's entry
// can take it), its host network-gateway.<service host>, and it is exported to its
// own namespace only: no proxy dials it, the registry reads its endpoints as the
// network's gateways. A NodePort Service annotated with a node selector
// (AnnotationNodeSelector, as Istio reads it) has the external IPs of the nodes
// the selector matches as its gateways instead, on the gateway port's node port.
func (t translator) networkGateway(s *corev1.Service, resolved map[string][]string, nodes map[string]*corev1.Node) *api.Resource {
	network := s.Labels[LabelNetwork]
	if network == "" {
		return nil
	}
	var port uint32
	if v := s.Labels[LabelGatewayPort]; v != "" {
		n, err := strconv.ParseUint(v, 10, 16)
		if err != nil || n == 0 {
			return nil
		}
		port = uint32(n)
	} else if slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return p.Port == registry.GatewayPort }) {
		port = registry.GatewayPort
	} else {
		return nil
	}
	var addrs []string
	if selector, ok := nodePortGateway(s); ok {
		i := slices.IndexFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return uint32(p.Port) == port })
		if i < 0 || s.Spec.Ports[i].NodePort == 0 {
			return nil
		}
		port = uint32(s.Spec.Ports[i].NodePort)
		for _, n := range nodes {
			if a := externalIP(n); a != "" && registry.LabelsMatch(n.Labels, selector) {
				addrs = append(addrs, a)
			}
		}
	} else {
		for _, in := range s.Status.LoadBalancer.Ingress {
			if in.IP != "" {
				addrs = append(addrs, in.IP)
			} else {
				addrs = append(addrs, resolved[in.Hostname]...)
			}
		}
		addrs = append(addrs, s.Spec.ExternalIPs...)
	}
	slices.Sort(addrs)
	addrs = slices.Compact(addrs)
	if len(addrs) == 0 {
		return nil
	}
	se := &networking.ServiceEntry{
		Hosts:      []string{"network-gateway." + s.Name + "." + s.Namespace + ".svc." + t.domain},
		Ports:      []*networking.ServicePort{{Number: registry.GatewayPort, Name: "tls", Protocol: "TLS"}},
		Location:   networking.ServiceEntry_MESH_INTERNAL,
		Resolution: networking.ServiceEntry_STATIC,
		ExportTo:   []string{"."},
	}
	for _, a := range addrs {
		se.Endpoints = append(se.Endpoints, &networking.WorkloadEntry{Address: a, Ports: map[string]uint32{"tls": port}})
	}
	return &api.Resource{
		Kind: api.ServiceEntry,
		Meta: api.ObjectMeta{Name: s.Name + ".network-gateway", Namespace: s.Namespace,
			Labels: map[string]string{LabelNetwork: network}},
		Spec: se,
	}
}

// nodePortGateway returns the node selector of a NodePort network gateway: a
// NodePort Service with AnnotationNodeSelector, a JSON map of node labels. A value
// that is no such map selects every node, as in Istio.
func nodePortGateway(s *corev1.Service) (map[string]string, bool) {
	v, ok := s.Annotations[AnnotationNodeSelector]
	if !ok || s.Spec.Type != corev1.ServiceTypeNodePort {
		return nil, false
	}
	var selector map[string]string
	_ = json.Unmarshal([]byte(v), &selector)
	return selector, true
}

// externalIP returns a node's first external IP, "" for none.
func externalIP(n *corev1.Node) string {
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeExternalIP && a.Address != "" {
			return a.Address
		}
	}
	return ""
}

// headless reports whether a Service has no cluster IP (clusterIP: None).
func headless(s *corev1.Service) bool {
	return s.Spec.ClusterIP == corev1.ClusterIPNone || (len(s.Spec.ClusterIPs) > 0 && s.Spec.ClusterIPs[0] == corev1.ClusterIPNone)
}

func clusterIPs(s *corev1.Service) []string {
	var out []string
	for _, ip := range s.Spec.ClusterIPs {
		if ip != "" && ip != corev1.ClusterIPNone {
			out = append(out, ip)
		}
	}
	return out
}

// sliceEndpoints returns the endpoints of a Service's EndpointSlices that are not
// known to be unready, each at the first of its addresses (the others are the same
// endpoint's, as EndpointSlice consumers must treat them), with the slice's port of
// each Service port's name and its node's locality. An endpoint listed twice is
// listed once. Slices of FQDN addresses are left out.
func sliceEndpoints(s *corev1.Service, slices []*discoveryv1.EndpointSlice, nodes map[string]*corev1.Node) []*networking.WorkloadEntry {
	var out []*networking.WorkloadEntry
	seen := map[string]bool{}
	for _, sl := range slices {
		if sl.AddressType == discoveryv1.AddressTypeFQDN {
			continue
		}
		ports := map[string]uint32{}
		for _, sp := range s.Spec.Ports {
			for _, p := range sl.Ports {
				if p.Name != nil && *p.Name == sp.Name && p.Port != nil {
					ports[portName(sp)] = uint32(*p.Port)
				}
			}
		}
		for _, ep := range sl.Endpoints {
			if len(ep.Addresses) == 0 || (ep.Conditions.Ready != nil && !*ep.Conditions.Ready) {
				continue
			}
			key := fmt.Sprint(ep.Addresses[0], ports)
			if seen[key] {
				continue
			}
			seen[key] = true
			we := &networking.WorkloadEntry{Address: ep.Addresses[0]}
			if len(ports) > 0 {
				we.Ports = ports
			}
			if ep.NodeName != nil {
				we.Locality = nodeLocality(nodes[*ep.NodeName])
			}
			if we.Locality == "" && ep.Zone != nil {
				we.Locality = "/" + *ep.Zone
			}
			out = append(out, we)
		}
	}
	return out
}

// portName is a Service port's name, or "port-<number>" for the one port of a
// Service that need not name it (a ServiceEntry's ports are always named).
func portName(p corev1.ServicePort) string {
	if p.Name != "" {
		return p.Name
	}
	return fmt.Sprintf("port-%d", p.Port)
}

// protocol is the Istio protocol of a Service port, as istiod decides it: the
// port's appProtocol, else a UDP port's UDP, else the prefix of its name
// ("grpc-api" is gRPC), else none (an Envoy sidecar detects HTTP on it, as Istio's).
func protocol(p corev1.ServicePort) string {
	if p.AppProtocol != nil {
		if proto := protocolNamed(*p.AppProtocol); proto != "" {
			return proto
		}
	}
	if p.Protocol == corev1.ProtocolUDP {
		return "UDP"
	}
	name := strings.ToLower(p.Name)
	if name == "grpc-web" || strings.HasPrefix(name, "grpc-web-") {
		return "GRPC-WEB"
	}
	prefix, _, _ := strings.Cut(name, "-")
	return protocolNamed(prefix)
}

// protocolNamed maps an appProtocol or port name prefix to Istio's protocol name.
func protocolNamed(s string) string {
	switch s = strings.ToLower(s); s {
	case "http", "http2", "https", "grpc", "grpc-web", "tcp", "tls", "mongo", "mysql", "redis", "udp":
		return strings.ToUpper(s)
	case "kubernetes.io/h2c":
		return "HTTP2"
	case "kubernetes.io/ws":
		return "HTTP"
	case "kubernetes.io/wss":
		return "HTTPS"
	}
	return ""
}

// workloadEntry returns the WorkloadEntry of a pod some Services select: its
// address, labels, service account, locality and network, the container port each
// named target port of those Services resolves to, and its readiness as navarch's
// health annotation.
func (t translator) workloadEntry(p *corev1.Pod, selecting []*corev1.Service, node *corev1.Node, withNode bool) *api.Resource {
	we := &networking.WorkloadEntry{
		Address:        p.Status.PodIP,
		Labels:         p.Labels,
		ServiceAccount: p.Spec.ServiceAccountName,
		Locality:       locality(p, node),
		Network:        cmp.Or(p.Labels[LabelNetwork], t.network),
	}
	for _, s := range selecting {
		for _, sp := range s.Spec.Ports {
			if sp.TargetPort.Type != intstr.String {
				continue
			}
			name := portName(sp)
			if _, done := we.Ports[name]; done {
				continue // an earlier Service (by name) resolved a port of this name
			}
			if n := containerPort(p, sp.TargetPort.StrVal); n != 0 {
				if we.Ports == nil {
					we.Ports = map[string]uint32{}
				}
				we.Ports[name] = uint32(n)
			}
		}
	}
	r := &api.Resource{
		Kind: api.WorkloadEntry,
		Meta: api.ObjectMeta{Name: p.Name, Namespace: p.Namespace,
			Annotations: map[string]string{registry.WorkloadNameAnnotation: workloadName(p)}},
		Spec: we,
	}
	if withNode && p.Spec.NodeName != "" {
		r.Meta.Annotations[registry.NodeAnnotation] = p.Spec.NodeName
	}
	if p.Spec.Subdomain != "" { // as Kubernetes' DNS names the pod, and istiod
		r.Meta.Annotations[registry.PodDNSNameAnnotation] = cmp.Or(p.Spec.Hostname, p.Name) + "." + p.Spec.Subdomain
	}
	if !ready(p) && !publishesNotReady(selecting) {
		r.Meta.Annotations[registry.HealthAnnotation] = "unhealthy"
	}
	return r
}

// publishesNotReady reports whether every Service selecting a pod publishes its
// address whether it is ready or not (spec.publishNotReadyAddresses, as a
// StatefulSet's peers find each other before they are ready): then the pod gets
// traffic unready, as istiod sends it. A pod's health is one for all its Services,
// so a Service that does not publish unready pods keeps it out of all.
func publishesNotReady(selecting []*corev1.Service) bool {
	for _, s := range selecting {
		if !s.Spec.PublishNotReadyAddresses {
			return false
		}
	}
	return len(selecting) > 0
}

// containerPort returns the number of the pod's container port of that name, or 0.
func containerPort(p *corev1.Pod, name string) int32 {
	for _, c := range p.Spec.Containers {
		for _, cp := range c.Ports {
			if cp.Name == name {
				return cp.ContainerPort
			}
		}
	}
	return 0
}

// locality is a pod's locality as "region/zone/subzone": its istio-locality label
// ("region.zone.subzone"), else its node's topology labels.
func locality(p *corev1.Pod, node *corev1.Node) string {
	if l := p.Labels[LabelLocality]; l != "" {
		return strings.ReplaceAll(l, ".", "/")
	}
	return nodeLocality(node)
}

// nodeLocality is the locality of a node's topology labels, "region/zone/subzone".
func nodeLocality(node *corev1.Node) string {
	if node == nil {
		return ""
	}
	parts := []string{node.Labels[LabelRegion], node.Labels[LabelZone], node.Labels[LabelSubzone]}
	for len(parts) > 0 && parts[len(parts)-1] == "" {
		parts = parts[:len(parts)-1]
	}
	return strings.Join(parts, "/")
}

// cronJobName matches the name of a Job a CronJob made: the CronJob's, a dash and a
// timestamp.
var cronJobName = regexp.MustCompile(`(.+)-\d{8,10}$`)

// workloadName is the workload a pod is an instance of, as Istio's telemetry names
// it (GetWorkloadMetaFromPod): the service.istio.io/workload-name label, else, for
// a pod its controller named, the Deployment of its ReplicaSet (the ReplicaSet's
// name less the pod template hash; Argo Rollouts' likewise), the DeploymentConfig
// of its ReplicationController, the CronJob of its Job, or the controller itself;
// else the pod.
func workloadName(p *corev1.Pod) string {
	if n, ok := p.Labels["service.istio.io/workload-name"]; ok {
		return n
	}
	if p.GenerateName == "" {
		return p.Name
	}
	for _, ref := range p.OwnerReferences {
		if ref.Controller == nil || !*ref.Controller {
			continue
		}
		switch hash := cmp.Or(p.Labels["pod-template-hash"], p.Labels["rollouts-pod-template-hash"]); {
		case ref.Kind == "ReplicaSet" && hash != "" && strings.HasSuffix(ref.Name, hash):
			return strings.TrimSuffix(ref.Name, "-"+hash)
		case ref.Kind == "ReplicationController" && p.Labels["deploymentconfig"] != "":
			return p.Labels["deploymentconfig"]
		case ref.Kind == "Job":
			if m := cronJobName.FindStringSubmatch(ref.Name); m != nil {
				return m[1]
			}
		}
		return cmp.Or(ref.Name, p.Name)
	}
	return p.Name
}
