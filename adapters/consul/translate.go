package consul

import (
	"fmt"
	"sort"
	"strings"

	capi "github.com/hashicorp/consul/api"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/navarch/navarch/adapters/mirror"
	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/registry"
)

// protocols maps the protocols Consul's service-defaults config entries name (and
// instances put in ServiceMeta "protocol") to Istio's port protocols.
var protocols = map[string]string{"http": "HTTP", "http2": "HTTP2", "grpc": "GRPC", "tcp": "TCP"}

// defaultProtocol is the protocol of an instance that names none, or one Istio has no
// equivalent for, when Consul's config entries give none either.
const defaultProtocol = "HTTP"

// protocolDefaults are the protocols Consul's config entries give services, as
// Istio names them: a service's service-defaults Protocol, else the proxy-defaults
// "global" entry's Config "protocol". Protocols Istio has no equivalent for are left
// out.
type protocolDefaults struct {
	services map[string]string // by Consul service name
	global   string
}

// defaultsOf reads the protocolDefaults of config entries, by kind.
func defaultsOf(config map[string][]capi.ConfigEntry) protocolDefaults {
	d := protocolDefaults{services: map[string]string{}}
	for _, e := range config[capi.ServiceDefaults] {
		if sd, ok := e.(*capi.ServiceConfigEntry); ok {
			if p, ok := protocols[strings.ToLower(sd.Protocol)]; ok {
				d.services[sd.Name] = p
			}
		}
	}
	for _, e := range config[capi.ProxyDefaults] {
		if pd, ok := e.(*capi.ProxyConfigEntry); ok && pd.Name == capi.ProxyConfigGlobal {
			if v, ok := pd.Config["protocol"].(string); ok {
				d.global = protocols[strings.ToLower(v)]
			}
		}
	}
	return d
}

// of returns the protocol the config entries give a service, or defaultProtocol.
func (d protocolDefaults) of(service string) string {
	if p := d.services[service]; p != "" {
		return p
	}
	if d.global != "" {
		return d.global
	}
	return defaultProtocol
}

// translator turns one datacenter's catalog into ServiceEntries and WorkloadEntries.
// It is a pure function of its input: equal catalogs give equal resources.
type translator struct {
	dc             string
	primary        bool // publishes the short host names
	suffix         string
	namespace      string
	warningHealthy bool
	wan            bool // instances are reached at their WAN addresses
}

func newTranslator(cfg Config, dc string, primary bool) translator {
	return translator{dc: dc, primary: primary, suffix: cfg.Suffix, namespace: cfg.Namespace,
		warningHealthy: cfg.WarningHealthy, wan: cfg.TranslateWANAddrs && !primary}
}

// taggedWAN is the tag of a WAN address, on a node or a service instance.
const taggedWAN = "wan"

// address returns where an instance is reached: its service address, else its
// node's. For a datacenter reached over the WAN (TranslateWANAddrs), as Consul's
// DNS translates them: the service address tagged "wan" (and its port, if tagged
// with one), else the service address, else the node's address tagged "wan", else
// the node's.
func (t translator) address(e *capi.ServiceEntry) (string, int) {
	addr, port := e.Service.Address, e.Service.Port
	if t.wan {
		if w, ok := e.Service.TaggedAddresses[taggedWAN]; ok {
			if w.Address != "" {
				addr = w.Address
			}
			if w.Port != 0 {
				port = w.Port
			}
		}
		if addr == "" {
			addr = e.Node.TaggedAddresses[taggedWAN]
		}
	}
	if addr == "" {
		addr = e.Node.Address
	}
	return addr, port
}

// catalog translates every service; resources that fail validation are left out (a
// Sync with one invalid resource would write nothing) and reported.
func (t translator) catalog(services map[string][]*capi.ServiceEntry, defaults protocolDefaults) ([]*api.Resource, []mirror.Skipped) {
	var out []*api.Resource
	var skips []mirror.Skipped
	for _, name := range sortedKeys(services) {
		for _, r := range t.service(name, services[name], defaults.of(name)) {
			if err := api.Validate(r); err != nil {
				skips = append(skips, mirror.Skipped{Object: "service " + name, Err: err})
				continue
			}
			out = append(out, r)
		}
	}
	return out, skips
}

// service returns the resources of one Consul service, whose instances that name no
// protocol speak protocol: a ServiceEntry per host and a WorkloadEntry per instance. Consul's own service ("consul", the servers' RPC port),
// Connect proxies and gateways, and instances without a port are left out: none of
// them is something a mesh client dials.
func (t translator) service(name string, entries []*capi.ServiceEntry, protocol string) []*api.Resource {
	if name == "consul" {
		return nil
	}
	insts := instances(entries)
	if len(insts) == 0 {
		return nil
	}
	ports := servicePorts(insts, protocol)
	svc, dc := dnsLabel(name), dnsLabel(t.dc)
	selector := map[string]string{LabelService: svc, LabelDatacenter: dc}
	hosts := []string{svc + ".service." + dc + "." + t.suffix}
	if t.primary {
		hosts = append(hosts, svc+".service."+t.suffix)
	}
	var out []*api.Resource
	for _, h := range hosts {
		out = append(out, &api.Resource{
			Kind: api.ServiceEntry,
			Meta: api.ObjectMeta{Name: resourceName(h), Namespace: t.namespace},
			Spec: &networking.ServiceEntry{
				Hosts:            []string{h},
				Location:         networking.ServiceEntry_MESH_INTERNAL,
				Resolution:       networking.ServiceEntry_STATIC,
				Ports:            ports,
				WorkloadSelector: &networking.WorkloadSelector{Labels: selector},
			},
		})
	}
	for _, e := range insts {
		out = append(out, t.workload(svc, dc, e, ports))
	}
	return out
}

// instances returns the entries that are plain services with a port, sorted by node
// and service ID.
func instances(entries []*capi.ServiceEntry) []*capi.ServiceEntry {
	var out []*capi.ServiceEntry
	for _, e := range entries {
		if e == nil || e.Service == nil || e.Node == nil || e.Service.Kind != capi.ServiceKindTypical ||
			e.Service.Port <= 0 || e.Service.Port > 65535 {
			continue
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Node.Node != b.Node.Node {
			return a.Node.Node < b.Node.Node
		}
		return a.Service.ID < b.Service.ID
	})
	return out
}

// protocolOf is the Istio protocol of an instance: its ServiceMeta "protocol", else
// fallback.
func protocolOf(e *capi.ServiceEntry, fallback string) string {
	if p, ok := protocols[strings.ToLower(e.Service.Meta["protocol"])]; ok {
		return p
	}
	return fallback
}

// servicePorts returns a port for each distinct port the instances listen on, named
// "<protocol>-<port>"; the protocol of a port is that of the first instance (by node
// and ID) listening on it, fallback for one that names none.
func servicePorts(insts []*capi.ServiceEntry, fallback string) []*networking.ServicePort {
	byNumber := map[int]string{}
	for _, e := range insts {
		if _, ok := byNumber[e.Service.Port]; !ok {
			byNumber[e.Service.Port] = protocolOf(e, fallback)
		}
	}
	ports := make([]*networking.ServicePort, 0, len(byNumber))
	for n, proto := range byNumber {
		ports = append(ports, &networking.ServicePort{
			Number: uint32(n), Protocol: proto, Name: fmt.Sprintf("%s-%d", strings.ToLower(proto), n),
		})
	}
	sort.Slice(ports, func(i, j int) bool { return ports[i].Number < ports[j].Number })
	return ports
}

// workload returns the WorkloadEntry of one instance. Every service port leads to the
// instance's own port: Consul instances of one service may listen on different ports
// (Nomad allocates them dynamically), and a client dialling any of the service's
// ports reaches each instance where it listens.
func (t translator) workload(svc, dc string, e *capi.ServiceEntry, ports []*networking.ServicePort) *api.Resource {
	addr, port := t.address(e)
	pm := make(map[string]uint32, len(ports))
	for _, p := range ports {
		pm[p.Name] = uint32(port)
	}
	labels := instanceLabels(e.Service.Tags, e.Service.Meta)
	labels[LabelService], labels[LabelDatacenter] = svc, dc
	// Istio's telemetry names the workload by the Consul service it is an instance of.
	ann := map[string]string{AnnotationNode: e.Node.Node, AnnotationServiceID: e.Service.ID, registry.WorkloadNameAnnotation: svc}
	if !t.healthy(e.Checks) {
		ann[registry.HealthAnnotation] = "unhealthy"
	}
	we := &networking.WorkloadEntry{Address: addr, Ports: pm, Labels: labels, Locality: t.dc}
	if w := e.Service.Weights.Passing; w > 1 {
		we.Weight = uint32(w)
	}
	return &api.Resource{
		Kind: api.WorkloadEntry,
		Meta: api.ObjectMeta{
			Name:        resourceName(svc, dc, dnsLabel(e.Node.Node), dnsLabel(e.Service.ID)),
			Namespace:   t.namespace,
			Annotations: ann,
		},
		Spec: we,
	}
}

// healthy reports whether an instance gets traffic: every check (the node's and the
// instance's) passes, or warns when warnings count as healthy. Maintenance mode is a
// critical check. An instance without checks is healthy, as Consul's DNS has it.
func (t translator) healthy(checks capi.HealthChecks) bool {
	for _, c := range checks {
		switch c.Status {
		case capi.HealthPassing:
		case capi.HealthWarning:
			if !t.warningHealthy {
				return false
			}
		default:
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
