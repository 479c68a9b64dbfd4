package api

import (
	"math"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
)

func validateServiceEntry(p *problems, namespace string, se *networking.ServiceEntry) {
	if se.WorkloadSelector != nil {
		validateSelectorLabels(p, "spec.workloadSelector.labels", se.WorkloadSelector.Labels)
		if len(se.Endpoints) > 0 {
			p.add("spec", "must not set both workloadSelector and endpoints")
		}
	}
	validateServiceEntryHosts(p, se)
	cidr := false
	for i, a := range se.Addresses {
		cidr = cidr || strings.Contains(a, "/")
		if reason := ipOrCIDRError(a); reason != "" {
			p.add(index("spec.addresses", i), "%s", reason)
		}
	}
	if cidr && se.Resolution != networking.ServiceEntry_NONE && se.Resolution != networking.ServiceEntry_STATIC {
		p.add("spec.addresses", "CIDR blocks are only allowed with resolution NONE or STATIC, got %s", se.Resolution)
	}
	portNames := validateServicePorts(p, se.Ports)
	switch se.Resolution {
	case networking.ServiceEntry_NONE:
		if len(se.Endpoints) > 0 {
			p.add("spec.endpoints", "must not be set with resolution NONE")
		}
	case networking.ServiceEntry_STATIC:
		// Without endpoints or a workloadSelector the service simply has no
		// endpoints; Istio accepts it.
		for i, e := range se.Endpoints {
			validateEndpoint(p, index("spec.endpoints", i), e, portNames, false)
		}
		validateEndpointWeights(p, se.Endpoints)
	case networking.ServiceEntry_DNS, networking.ServiceEntry_DNS_ROUND_ROBIN:
		validateDNSServiceEntry(p, se, portNames)
	case networking.ServiceEntry_DYNAMIC_DNS:
		if len(se.Endpoints) > 0 {
			p.add("spec.endpoints", "must not be set with resolution DYNAMIC_DNS")
		}
	default:
		p.add("spec.resolution", "unsupported resolution %s", se.Resolution)
	}
	if se.Resolution != networking.ServiceEntry_NONE && len(se.Hosts) > 1 {
		for i, port := range se.Ports {
			if proto := parseProtocol(port.GetProtocol()); port != nil && !proto.http() && !proto.tls() {
				p.add(index("spec.ports", i), "a %s port cannot tell %d hosts apart; use resolution NONE, "+
					"an HTTP or TLS protocol, or one ServiceEntry per host", protocolName(port.Protocol), len(se.Hosts))
				break
			}
		}
	}
	validateExportTo(p, "spec.exportTo", namespace, se.ExportTo, true)
}

func protocolName(s string) string {
	if s == "" {
		return "TCP (protocol unset)"
	}
	return s
}

func validateServiceEntryHosts(p *problems, se *networking.ServiceEntry) {
	if len(se.Hosts) == 0 {
		p.add("spec.hosts", "required: a ServiceEntry needs at least one host")
	}
	for i, h := range se.Hosts {
		if h == "*" {
			p.add(index("spec.hosts", i), "\"*\" alone is not allowed; use a domain wildcard such as \"*.example.com\"")
			continue
		}
		validateHostField(p, index("spec.hosts", i), h)
	}
}

// validateServicePorts checks a ServiceEntry's ports and returns their names.
func validateServicePorts(p *problems, ports []*networking.ServicePort) map[string]bool {
	names := map[string]bool{}
	numbers := map[uint32]int{}
	for i, port := range ports {
		pp := index("spec.ports", i)
		if port == nil {
			p.add(pp, "must not be null")
			continue
		}
		if names[port.Name] {
			p.add(field(pp, "name"), "duplicate port name %q", port.Name)
		} else if !dnsLabel(port.Name, true) {
			p.add(field(pp, "name"), "%q is not a valid port name (a DNS-1123 label)", port.Name)
		}
		names[port.Name] = true
		if first, dup := numbers[port.Number]; dup {
			p.add(field(pp, "number"), "duplicate port %d, also spec.ports[%d]", port.Number, first)
		} else {
			numbers[port.Number] = i
		}
		validatePort(p, field(pp, "number"), port.Number)
		if port.TargetPort != 0 {
			validatePort(p, field(pp, "targetPort"), port.TargetPort)
		}
		validateProtocol(p, field(pp, "protocol"), port.Protocol)
	}
	return names
}

func validateDNSServiceEntry(p *problems, se *networking.ServiceEntry, portNames map[string]bool) {
	if len(se.Endpoints) == 0 {
		for i, h := range se.Hosts {
			if strings.Contains(h, "*") {
				p.add(index("spec.hosts", i), "wildcard host %q needs endpoints with resolution %s: there is nothing to resolve", h, se.Resolution)
			}
		}
	}
	if se.Resolution == networking.ServiceEntry_DNS_ROUND_ROBIN && len(se.Endpoints) > 1 {
		p.add("spec.endpoints", "at most one endpoint is allowed with resolution DNS_ROUND_ROBIN, got %d", len(se.Endpoints))
	}
	for i, e := range se.Endpoints {
		validateEndpoint(p, index("spec.endpoints", i), e, portNames, true)
	}
	validateEndpointWeights(p, se.Endpoints)
}

// validateEndpoint checks an endpoint of a ServiceEntry: an IP address or unix socket
// (STATIC), or a host name or IP address (DNS), whose ports name the entry's ports.
func validateEndpoint(p *problems, path string, e *networking.WorkloadEntry, portNames map[string]bool, dns bool) {
	if e == nil {
		p.add(path, "must not be null")
		return
	}
	ap := field(path, "address")
	switch {
	case e.Address == "" && dns:
		p.add(ap, "required with resolution DNS: a host name or an IP address to resolve")
	case e.Address == "":
		if e.Network == "" {
			p.add(ap, "required unless network is set")
		}
	case dns:
		if !isIP(e.Address) && fqdnError(e.Address) != "" {
			p.add(ap, "%q is not a host name or an IP address", e.Address)
		}
	case strings.HasPrefix(e.Address, unixPrefix):
		if reason := unixPathError(strings.TrimPrefix(e.Address, unixPrefix)); reason != "" {
			p.add(ap, "%s", reason)
		}
		if len(e.Ports) > 0 {
			p.add(field(path, "ports"), "must not be set for a unix socket endpoint")
		}
		if len(portNames) != 1 {
			p.add(ap, "a unix socket endpoint needs exactly one service port, the entry has %d", len(portNames))
		}
	case !isIP(e.Address):
		p.add(ap, "%q is not an IP address or unix:// socket path, as resolution STATIC requires", e.Address)
	}
	for _, name := range sortedKeys(e.Ports) {
		pp := mapKey(field(path, "ports"), name)
		if !portNames[name] {
			p.add(pp, "port %q is not one of the ServiceEntry's port names", name)
		}
		validatePort(p, pp, e.Ports[name])
	}
	validateSpecLabels(p, field(path, "labels"), e.Labels)
	// serviceAccount is not checked, as Istio does not check it.
}

// validateEndpointWeights checks that the weights of the endpoints fit Envoy's
// uint32 sum of load balancing weights.
func validateEndpointWeights(p *problems, endpoints []*networking.WorkloadEntry) {
	var total uint64
	for _, e := range endpoints {
		total += uint64(e.GetWeight())
	}
	if total > math.MaxUint32 {
		p.add("spec.endpoints", "the sum of endpoint weights must be at most %d, got %d", uint64(math.MaxUint32), total)
	}
}
