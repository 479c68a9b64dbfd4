package xds

import (
	"fmt"
	"maps"
	"math"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	meshconfig "istio.io/api/mesh/v1alpha1"

	"github.com/navarch/navarch/registry"
)

// Proxy types, as Istio names them in node ids.
const (
	TypeSidecar  = "sidecar"
	TypeRouter   = "router"
	TypeWaypoint = "waypoint"
	TypeZtunnel  = "ztunnel"
)

// GeneratorGRPC is the GENERATOR metadata value of proxyless gRPC clients.
const GeneratorGRPC = "grpc"

// Proxy is a connected proxy as it identified itself: Istio's node id
// (type~ip~name.namespace~namespace.svc.cluster.local) and node metadata.
type Proxy struct {
	// ID is the full node id.
	ID   string
	Type string
	IP   string
	// Name is the third part of the id, "name.namespace" for Kubernetes pods.
	Name      string
	Namespace string
	// Labels are the proxy's labels: those it sent (LABELS metadata), or, when it
	// sent none, those of the workload registered at its address in its namespace,
	// as istiod gives a proxy its pod's or WorkloadEntry's. (istiod prefers the
	// workload's even over labels sent; navarch keeps what a proxy says, since
	// several workloads may share an address, a VM's or loopback, and only the proxy
	// knows which it is.)
	Labels map[string]string
	// BootstrapLabels are the labels the proxy sent.
	BootstrapLabels map[string]string
	ServiceAccount  string
	// Generator selects the kind of configuration the proxy gets: GeneratorGRPC for
	// proxyless gRPC; empty for Envoy.
	Generator    string
	IstioVersion string
	// UserAgent is the xDS client and its version, as the node says them ("gRPC Go
	// 1.75.0", "envoy 1.36.2"); status output only.
	UserAgent string
	// IstioProxy is whether the Envoy is istio-proxy, Istio's build of Envoy with
	// its own extensions (metadata exchange, Istio's stats, ALPN override), as
	// istio-agent says by sending ISTIO_VERSION; a plain Envoy (navarch bootstrap)
	// gets none of them, which it would refuse (istiometrics.go).
	IstioProxy bool
	// ServiceCluster is the cluster of the Envoy node (istio-agent's service
	// cluster, "<app>.<namespace>"): the service OpenTelemetry and Datadog tracers
	// name spans by, as in Istio.
	ServiceCluster string
	// SemanticServiceName is, on a class proxy where a tracer names spans by
	// OpenTelemetry's semantic conventions, the name semanticServiceName gives
	// the proxies of the class; otelServiceAnnotation, workloadName and
	// appContainers are what it comes from besides labels and the node id: the
	// workload's resource.opentelemetry.io/service.name annotation (ANNOTATIONS),
	// WORKLOAD_NAME and APP_CONTAINERS.
	SemanticServiceName                                string
	otelServiceAnnotation, workloadName, appContainers string
	// NetworkView lists the networks whose endpoints the proxy asks to be sent
	// (REQUESTED_NETWORK_VIEW, comma-separated), sorted; empty: every network's.
	// Endpoints of no network are sent either way, as by istiod.
	NetworkView []string
	// MeshID is the mesh the proxy says it is in (MESH_ID), which Istio's span tags
	// name (tracing.go).
	MeshID string
	// DNSCapture says istio-agent's DNS proxy answers the workload's queries
	// (DNS_CAPTURE metadata, Istio's ISTIO_META_DNS_CAPTURE): the proxy knows
	// ServiceEntry hosts without addresses by those allocated to them
	// (registry.Service.AutoAddresses), as istiod's auto-allocation.
	DNSCapture bool
	// Metadata are the string values of an Envoy's node metadata, which
	// EnvoyFilters may match (envoyfilter.go); none for proxyless gRPC.
	Metadata map[string]string
	// ClusterID is the Kubernetes cluster the proxy runs in (CLUSTER_ID metadata,
	// Istio's ISTIO_META_CLUSTER_ID): of a cluster-local service it gets only that
	// cluster's endpoints (clusterlocal.go).
	ClusterID string
	// Network is the network the proxy is in (NETWORK metadata, Istio's
	// ISTIO_META_NETWORK); endpoints in other networks are reached through their
	// gateways.
	Network string
	// Locality is where the proxy runs, "region/zone/sub-zone" (its node's locality):
	// it chooses the priorities and weights of locality load balancing (locality.go).
	Locality string
	// NodeName is the node the proxy runs on (NODE_NAME metadata, as Istio's
	// injector sets it from a pod's spec.nodeName): node-local services send it
	// only their endpoints on that node, and PreferSameNode puts them first.
	NodeName string
	// InterceptionNone is a proxy whose traffic is not redirected to it
	// (INTERCEPTION_MODE NONE, a VM without iptables): its listeners bind ports of
	// their own, as in Istio (sidecar.go).
	InterceptionNone bool
	// InterceptionTPROXY is a proxy whose traffic iptables hands over with TPROXY
	// (INTERCEPTION_MODE TPROXY) instead of REDIRECT: its virtual listeners are
	// transparent, and its inbound one keeps the client's source address on the
	// connection to the application (original_src), as in Istio (sidecar.go).
	InterceptionTPROXY bool
	// InboundExactBalance and OutboundExactBalance ask for Envoy's exact connection
	// balance on the proxy's inbound, and outbound, listeners (the
	// INBOUND_LISTENER_EXACT_BALANCE and OUTBOUND_LISTENER_EXACT_BALANCE metadata),
	// as istiod sets it: its worker threads then take connections one by one.
	InboundExactBalance, OutboundExactBalance bool
	// AcceptHTTP10 is a proxy whose connection managers take HTTP/1.0 (HTTP10
	// metadata "1", Istio's ISTIO_META_HTTP10), as istiod configures them.
	AcceptHTTP10 bool
	// IdleTimeout is the proxy's IDLE_TIMEOUT metadata (a Go duration; nil for none
	// or one that does not parse, as istiod takes it): the idle timeout of its TCP
	// proxies where a DestinationRule sets none, and of its HTTP connection
	// managers' connections.
	IdleTimeout *durationpb.Duration
	// Unprivileged is a proxy that cannot bind ports below 1024 (UNPRIVILEGED_POD).
	Unprivileged bool
	// HTTPProxyPort is the port of 127.0.0.1 on which the proxy is its application's
	// HTTP proxy (HTTP_PROXY_PORT metadata, Istio's ISTIO_META_HTTP_PROXY_PORT;
	// else the mesh config's proxyHttpPort), 0 for none (httpproxy.go).
	HTTPProxyPort uint32
	// SelfDiscovery is an Envoy whose bootstrap has a local cluster for zone-aware
	// load balancing (ENABLE_SELF_DISCOVERY metadata, Istio's
	// ISTIO_META_ENABLE_SELF_DISCOVERY): it is sent its own service's endpoints as
	// "local_cluster" (endpoints.go).
	SelfDiscovery bool
	// IPFamilies is "4", "6" or "46": the IP versions of the proxy's addresses
	// (INSTANCE_IPS metadata, else its node id's), which choose how an Envoy
	// resolves DNS clusters (DnsLookupFamily), as in Istio.
	IPFamilies string
	// UnicastIP is the first of the proxy's addresses (as IPFamilies) that is a
	// global unicast one (not loopback, link-local or unspecified), "" for none: a
	// Sidecar ingress listener that binds its port without saying where binds it
	// there, as in Istio (sidecar_inbound.go).
	UnicastIP string
	// ProxyConfig is the proxy's own ProxyConfig (PROXY_CONFIG metadata), of what
	// navarch translates (parseProxyConfig); nil: the mesh config's defaultConfig
	// (proxyconfig.go).
	ProxyConfig *meshconfig.ProxyConfig
	// AddressServices are the services of the proxy's namespace that list an
	// endpoint at its address inline (registry.Snapshot.InlineServicesAt), by host,
	// each with the ports that endpoint serves the service's ports on (service
	// port -> workload port): an Envoy sidecar's inbound side serves them, as
	// istiod finds a sidecar's services by its IP (sidecar_inbound.go). Only Envoy
	// sidecars have them; set by withAddressWorkload.
	AddressServices map[string]map[uint32]uint32
	// AutoRegisterGroup names the WorkloadGroup of the proxy's namespace it asks to
	// be registered in while connected (AUTO_REGISTER_GROUP metadata, Istio's
	// ISTIO_META_AUTO_REGISTER_GROUP; see Registrar).
	AutoRegisterGroup string
}

// userAgent is the node's xDS client name and version: its user_agent_version, or
// the major.minor.patch of its build version (Envoy's).
func userAgent(node *core.Node) string {
	version := node.GetUserAgentVersion()
	if b := node.GetUserAgentBuildVersion().GetVersion(); version == "" && b != nil {
		version = fmt.Sprintf("%d.%d.%d", b.GetMajorNumber(), b.GetMinorNumber(), b.GetPatch())
	}
	return strings.TrimSpace(node.GetUserAgentName() + " " + version)
}

// ParseProxy reads a proxy's identity from its xDS node, as istiod does: the id must
// have four '~'-separated parts and a known type; metadata NAMESPACE (or the id's
// domain) gives the namespace.
func ParseProxy(node *core.Node) (*Proxy, error) {
	if node == nil || node.Id == "" {
		return nil, fmt.Errorf("node id is missing")
	}
	parts := strings.Split(node.Id, "~")
	if len(parts) != 4 {
		return nil, fmt.Errorf("node id %q: want type~ip~name~domain", node.Id)
	}
	p := &Proxy{ID: node.Id, Type: parts[0], IP: parts[1], Name: parts[2]}
	switch p.Type {
	case TypeSidecar, TypeRouter, TypeWaypoint, TypeZtunnel:
	default:
		return nil, fmt.Errorf("node id %q: invalid node type %q (want sidecar, router, waypoint or ztunnel)", node.Id, p.Type)
	}
	if net.ParseIP(p.IP) == nil {
		return nil, fmt.Errorf("node id %q: invalid IP %q", node.Id, p.IP)
	}
	md := node.GetMetadata().GetFields()
	p.Namespace = str(md, "NAMESPACE")
	if p.Namespace == "" {
		// name.namespace, or the domain's first label.
		if _, ns, ok := strings.Cut(p.Name, "."); ok {
			p.Namespace = ns
		} else if ns, _, _ := strings.Cut(parts[3], "."); ns != "" {
			p.Namespace = ns
		}
	}
	if p.Namespace == "" {
		p.Namespace = "default"
	}
	p.ServiceAccount = str(md, "SERVICE_ACCOUNT")
	p.Generator = str(md, "GENERATOR")
	p.IstioVersion = str(md, "ISTIO_VERSION")
	p.UserAgent = userAgent(node)
	p.IstioProxy = p.IstioVersion != "" && p.Generator != GeneratorGRPC
	p.ClusterID = str(md, "CLUSTER_ID")
	p.MeshID = str(md, "MESH_ID")
	p.ServiceCluster = node.GetCluster()
	p.otelServiceAnnotation = md["ANNOTATIONS"].GetStructValue().GetFields()["resource.opentelemetry.io/service.name"].GetStringValue()
	p.workloadName, p.appContainers = str(md, "WORKLOAD_NAME"), str(md, "APP_CONTAINERS")
	p.Network = str(md, "NETWORK")
	if v := str(md, "REQUESTED_NETWORK_VIEW"); v != "" {
		p.NetworkView = slices.Compact(slices.Sorted(slices.Values(strings.Split(v, ","))))
	}
	p.AutoRegisterGroup = str(md, "AUTO_REGISTER_GROUP")
	p.NodeName = str(md, "NODE_NAME")
	p.InterceptionNone = str(md, "INTERCEPTION_MODE") == "NONE"
	p.InterceptionTPROXY = str(md, "INTERCEPTION_MODE") == "TPROXY"
	p.InboundExactBalance, _ = strconv.ParseBool(str(md, "INBOUND_LISTENER_EXACT_BALANCE"))
	p.OutboundExactBalance, _ = strconv.ParseBool(str(md, "OUTBOUND_LISTENER_EXACT_BALANCE"))
	p.AcceptHTTP10 = str(md, "HTTP10") == "1"
	if d, err := time.ParseDuration(str(md, "IDLE_TIMEOUT")); err == nil {
		p.IdleTimeout = durationpb.New(d)
	}
	p.Unprivileged, _ = strconv.ParseBool(str(md, "UNPRIVILEGED_POD"))
	p.DNSCapture, _ = strconv.ParseBool(str(md, "DNS_CAPTURE"))
	p.SelfDiscovery, _ = strconv.ParseBool(str(md, "ENABLE_SELF_DISCOVERY"))
	if port, err := strconv.ParseUint(str(md, "HTTP_PROXY_PORT"), 10, 16); err == nil && port > 0 {
		p.HTTPProxyPort = uint32(port) // as istiod, a value that is not a port is ignored
	}
	p.IPFamilies, p.UnicastIP = ipFamilies(p.IP, str(md, "INSTANCE_IPS"))
	if v := md["PROXY_CONFIG"]; v != nil {
		pc, err := parseProxyConfig(v)
		if err != nil {
			return nil, fmt.Errorf("node %q: %w", node.Id, err)
		}
		p.ProxyConfig = pc
	}
	if l := node.GetLocality(); l != nil {
		p.Locality = localityString(l)
	}
	if l := md["LABELS"].GetStructValue(); l != nil {
		p.Labels = make(map[string]string, len(l.Fields))
		for k, v := range l.Fields {
			p.Labels[k] = v.GetStringValue()
		}
	}
	p.BootstrapLabels = p.Labels
	if p.Generator != GeneratorGRPC {
		p.Metadata = make(map[string]string, len(md))
		for k, v := range md {
			if s, ok := v.GetKind().(*structpb.Value_StringValue); ok {
				p.Metadata[k] = s.StringValue
			}
		}
	}
	return p, nil
}

// wildcard is the address a proxy's listeners of every address bind, loopback its
// own loopback address and inboundBind the address its inbound side connects to
// the workload from (which istio-init's rules let out): IPv4's, or IPv6's for an
// IPv6-only proxy (IPFamilies "6"), as in Istio.
func (p *Proxy) wildcard() string    { return p.byFamily(anyAddress, "::") }
func (p *Proxy) loopback() string    { return p.byFamily("127.0.0.1", "::1") }
func (p *Proxy) inboundBind() string { return p.byFamily("127.0.0.6", "::6") }

// transparent is what a proxy's virtual listeners set Transparent to: true under
// TPROXY, where the connections they take keep their original addresses, else
// unset, as istiod leaves it.
func (p *Proxy) transparent() *wrapperspb.BoolValue {
	if p.InterceptionTPROXY {
		return wrapperspb.Bool(true)
	}
	return nil
}

func (p *Proxy) byFamily(v4, v6 string) string {
	if p.IPFamilies == "6" {
		return v6
	}
	return v4
}

// otherFamily is what a dual-stack proxy's outbound listener at one of its own
// default addresses (wildcard, the wildcard of its IPv4 side; defaultLoopback, the
// loopback a listener of its own binds when its Sidecar names no address) also
// binds, as istiod gives it: the other IP version's, [::] or [::1]. Other listeners
// (a service's address, a Sidecar's bind) and other proxies' have none.
func (p *Proxy) otherFamily(wildcard, defaultLoopback bool) []string {
	switch {
	case p.IPFamilies != "46":
		return nil
	case wildcard:
		return []string{"::"}
	case defaultLoopback:
		return []string{"::1"}
	}
	return nil
}

// listenerIP is the address of a listener at ip, where anyAddress stands for the
// proxy's wildcard (the token the listener builders compare with).
func (ctx *Context) listenerIP(ip string) string {
	if ip == anyAddress {
		return ctx.Proxy.wildcard()
	}
	return ip
}

// ipFamilies is "4", "6" or "46" for the IP versions of the addresses in ips
// (comma-separated), or of ip when ips has none, and the first of them that is a
// global unicast address.
func ipFamilies(ip, ips string) (families, unicast string) {
	addrs := []string{ip}
	if ips != "" {
		addrs = strings.Split(ips, ",")
	}
	v4, v6 := false, false
	for _, a := range addrs {
		if addr, err := netip.ParseAddr(strings.TrimSpace(a)); err == nil {
			is4 := addr.Unmap().Is4()
			v4, v6 = v4 || is4, v6 || !is4
			if unicast == "" && addr.IsGlobalUnicast() {
				unicast = addr.String()
			}
		}
	}
	switch {
	case v4 && v6:
		return "46", unicast
	case v6:
		return "6", unicast
	}
	return "4", unicast
}

// withAddressWorkload returns the proxy as what snap registers at its address makes
// it: with the labels snap gives it (see Labels: its bootstrap's, or, without any,
// those of the workload at its address in its namespace), and, for an Envoy
// sidecar or gateway, the services listing an endpoint there (AddressServices). It
// is p itself when those are what p has.
func (p *Proxy) withAddressWorkload(snap *registry.Snapshot) *Proxy {
	labels, ok := snap.WorkloadLabelsAt(p.Namespace, p.IP)
	if !ok || len(p.BootstrapLabels) > 0 {
		labels = p.BootstrapLabels
	}
	var services map[string]map[uint32]uint32
	if (p.Type == TypeSidecar || p.Type == TypeRouter) && p.Generator != GeneratorGRPC {
		for _, t := range snap.InlineServicesAt(p.Namespace, p.IP) {
			ports := make(map[uint32]uint32, len(t.Service.Ports))
			for _, port := range t.Service.Ports {
				ports[port.Number] = t.Workload.PortFor(port)
			}
			if services == nil {
				services = map[string]map[uint32]uint32{}
			}
			services[t.Service.Hostname] = ports
		}
	}
	sameServices := maps.EqualFunc(services, p.AddressServices, func(a, b map[uint32]uint32) bool { return maps.Equal(a, b) })
	if maps.Equal(labels, p.Labels) && sameServices {
		return p
	}
	cp := *p
	cp.Labels, cp.AddressServices = labels, services
	return &cp
}

func str(md map[string]*structpb.Value, key string) string {
	return md[key].GetStringValue()
}

// classProxy returns the proxy as its class represents it under snap: with only the
// labels its configuration can depend on, so that workloads told apart by labels
// nothing looks at (app: ratings, app: reviews, pod-template-hash) share one class
// and one build. Those are the labels some configuration selects by
// (Snapshot.SelectsBy, Istio's own under istio.io/ included) and, for Envoy, the
// label keys of WorkloadEntries too (a sidecar's inbound ports come from the
// WorkloadEntries whose labels its own include). Its service account is left out
// too: no resource of a build depends on it (a stream's secrets go by the identity
// it authenticated with), and in Kubernetes nearly every workload has its own; and so
// is its node, unless some service is node-local or prefers the same node. It is p
// itself when nothing is left out. An Envoy's Istio version and metadata are left
// out but for what some EnvoyFilter matches, and, of the version, the span of
// releases it is in (versionClass); its service cluster is left out unless a
// tracer names spans by it.
func (p *Proxy) classProxy(snap *registry.Snapshot) *Proxy {
	envoy := p.Generator != GeneratorGRPC
	var kept map[string]string
	for k, v := range p.Labels {
		if !snap.SelectsBy(k) && !(envoy && snap.WorkloadEntriesLabelledBy(k)) {
			continue
		}
		if kept == nil {
			kept = make(map[string]string, len(p.Labels))
		}
		kept[k] = v
	}
	// The node matters where a service is node-local or prefers the same node,
	// which counts as selecting by the node's label.
	node := p.NodeName
	if !snap.SelectsBy(registry.LabelHostname) {
		node = ""
	}
	// Metadata and the Istio version matter where an EnvoyFilter matches them.
	var metadata map[string]string
	for k, v := range p.Metadata {
		if snap.MatchesProxyMetadata(k) {
			if metadata == nil {
				metadata = map[string]string{}
			}
			metadata[k] = v
		}
	}
	// Otherwise only what some setting of istio-proxy's releases sets apart.
	version := p.IstioVersion
	if !snap.MatchesProxyVersion() {
		version = p.versionClass()
	}
	// The service cluster matters where a tracer names spans by it, and the name
	// OpenTelemetry's semantic conventions give where a tracer takes those.
	cluster, semantic := p.ServiceCluster, ""
	byCluster, bySemantics := tracersNameService(snap)
	if !byCluster {
		cluster = ""
	}
	if bySemantics && p.Generator != GeneratorGRPC {
		semantic = p.semanticServiceName()
	}
	// The address matters where a Sidecar ingress listener may bind it.
	unicast := p.UnicastIP
	if !snap.BindsProxyAddress() {
		unicast = ""
	}
	if len(kept) == len(p.Labels) && p.ServiceAccount == "" && node == p.NodeName &&
		len(metadata) == len(p.Metadata) && version == p.IstioVersion && unicast == p.UnicastIP && cluster == p.ServiceCluster &&
		semantic == p.SemanticServiceName {
		return p
	}
	cp := *p
	if len(kept) < len(p.Labels) {
		cp.Labels = kept
	}
	cp.ServiceAccount, cp.NodeName, cp.Metadata, cp.IstioVersion, cp.UnicastIP = "", node, metadata, version, unicast
	cp.ServiceCluster, cp.SemanticServiceName = cluster, semantic
	cp.otelServiceAnnotation, cp.workloadName, cp.appContainers = "", "", ""
	return &cp
}

// classKey identifies the proxies that get identical configuration: same type,
// generator, namespace, network (and network view), locality, Kubernetes cluster and mesh, DNS capture, interception mode, connection balance, HTTP/1.0 and idle timeout, IP versions and unicast address, labels and identity, the services listing an endpoint at its address (and on which ports), whether it is istio-proxy, its service cluster where tracers name spans by it, and the Istio
// version (its release's, versionClass, unless EnvoyFilters match it) and metadata EnvoyFilters match (of the proxy as classProxy makes it). Proxies of one class share one set of built resources.
type classKey string

func (p *Proxy) classKey() classKey {
	var b strings.Builder
	fmt.Fprintf(&b, "%s|%s|%s|%s|%s|%s|%s|%t|%t|%t|%t|%t|%v|%t|%s|%s|%d|%t|%s|%t|%s|%t|", p.Type, p.Generator, p.Namespace, p.Network, p.Locality, p.NodeName, p.ServiceAccount,
		p.InterceptionNone, p.InterceptionTPROXY, p.InboundExactBalance, p.OutboundExactBalance, p.AcceptHTTP10, p.IdleTimeout.AsDuration(), p.Unprivileged, p.IPFamilies, p.UnicastIP, p.HTTPProxyPort, p.SelfDiscovery, p.ClusterID, p.IstioProxy, p.MeshID, p.DNSCapture)
	for _, k := range registry.SortedKeys(p.Labels) {
		fmt.Fprintf(&b, "%s=%s,", k, p.Labels[k])
	}
	if p.ProxyConfig != nil {
		pc, _ := deterministic.Marshal(p.ProxyConfig) // of a message navarch built: cannot fail
		fmt.Fprintf(&b, "|pc=%x", pc)
	}
	if len(p.AddressServices) > 0 {
		b.WriteString("|at=")
		for _, host := range registry.SortedKeys(p.AddressServices) {
			fmt.Fprintf(&b, "%s:", host)
			ports := p.AddressServices[host]
			for _, n := range slices.Sorted(maps.Keys(ports)) {
				fmt.Fprintf(&b, "%d>%d,", n, ports[n])
			}
			b.WriteString(";")
		}
	}
	if len(p.NetworkView) > 0 {
		fmt.Fprintf(&b, "|view=%s", strings.Join(p.NetworkView, ","))
	}
	if p.ServiceCluster != "" || p.SemanticServiceName != "" {
		fmt.Fprintf(&b, "|sc=%s|%s", p.ServiceCluster, p.SemanticServiceName)
	}
	if p.IstioVersion != "" || len(p.Metadata) > 0 {
		fmt.Fprintf(&b, "|%s|", p.IstioVersion)
		for _, k := range registry.SortedKeys(p.Metadata) {
			fmt.Fprintf(&b, "%s=%s,", k, p.Metadata[k])
		}
	}
	return classKey(b.String())
}

// sortedLabels returns labels as "k=v" pairs in order, for logs and debug output.
func sortedLabels(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// istioVersion is an Istio release as istiod reads ISTIO_VERSION: its first
// "major.minor[.patch]" ("release-" taken off the front); a missing patch, or a
// version that cannot be read (a plain Envoy sends none), is the newest there is.
type istioVersion struct{ major, minor, patch int }

func parseIstioVersion(v string) istioVersion {
	newest := istioVersion{math.MaxUint16, math.MaxUint16, math.MaxUint16}
	v = strings.TrimPrefix(v, "release-")
	// digits reads the digits at the front of v (at most five), and the rest.
	digits := func(v string) (n int, rest string, ok bool) {
		i := 0
		for i < len(v) && i < 5 && v[i] >= '0' && v[i] <= '9' {
			n = n*10 + int(v[i]-'0')
			i++
		}
		return n, v[i:], i > 0
	}
	if v == "" || v[0] == '0' { // istiod's pattern: a major of [1-9]+
		return newest
	}
	major, rest, ok := digits(v)
	if !ok || !strings.HasPrefix(rest, ".") {
		return newest
	}
	minor, rest, ok := digits(rest[1:])
	if !ok {
		return newest
	}
	patch := math.MaxUint16
	if p, _, ok := digits(strings.TrimPrefix(rest, ".")); ok && strings.HasPrefix(rest, ".") {
		patch = p
	}
	return istioVersion{major, minor, patch}
}

// istioAtLeast reports whether the proxy runs Istio release major.minor or later,
// as istiod gates settings older istio-proxies would refuse or misread. Proxies
// that are not istio-proxy count as the newest.
func (p *Proxy) istioAtLeast(major, minor int) bool {
	v := parseIstioVersion(p.IstioVersion)
	return v.major > major || v.major == major && v.minor >= minor
}

// versionGates are the releases from which istiod configures an istio-proxy
// differently (tracing.go), newest first.
var versionGates = [][2]int{{1, 30}, {1, 29}, {1, 28}}

// versionClass is the proxy's Istio version as far as the configuration it gets
// depends on it: "" from the newest gate on, else the oldest release of its span
// between gates ("1.29.0" for any 1.29, "1.27.0" for anything before 1.28), so that
// istio-proxies told apart by patch releases share one class.
func (p *Proxy) versionClass() string {
	if p.IstioVersion == "" || p.Generator == GeneratorGRPC { // the gates are Envoy's
		return ""
	}
	for i, g := range versionGates {
		if p.istioAtLeast(g[0], g[1]) {
			if i == 0 {
				return ""
			}
			return fmt.Sprintf("%d.%d.0", g[0], g[1])
		}
	}
	last := versionGates[len(versionGates)-1]
	return fmt.Sprintf("%d.%d.0", last[0], last[1]-1)
}
