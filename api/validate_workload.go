package api

import (
	"strings"

	networking "istio.io/api/networking/v1alpha3"
)

// validateWorkloadEntry checks a WorkloadEntry, or (template) the template of a
// WorkloadGroup, whose address each registering workload fills in. Of a template
// Istio checks only what its CRD's schema says (its ports), not its address or
// labels: those of the WorkloadEntry registration makes are checked then.
func validateWorkloadEntry(p *problems, path string, we *networking.WorkloadEntry, template bool) {
	ap := field(path, "address")
	switch addr := we.Address; {
	case template:
	case addr == "":
		if we.Network == "" {
			p.add(ap, "required unless network is set")
		}
	case strings.HasPrefix(addr, unixPrefix):
		if reason := unixPathError(strings.TrimPrefix(addr, unixPrefix)); reason != "" {
			p.add(ap, "%s", reason)
		}
		if len(we.Ports) > 0 {
			p.add(field(path, "ports"), "must not be set for a unix socket address %q", addr)
		}
	case !isIP(addr) && fqdnError(addr) != "":
		p.add(ap, "%q is not an IP address, a host name or a unix:// socket path", addr)
	}
	for _, name := range sortedKeys(we.Ports) {
		pp := mapKey(field(path, "ports"), name)
		if !dnsLabel(name, true) {
			p.add(pp, "%q is not a valid port name (a DNS-1123 label)", name)
		}
		validatePort(p, pp, we.Ports[name])
	}
	if !template {
		validateSpecLabels(p, field(path, "labels"), we.Labels)
	}
	// serviceAccount is not checked, as Istio does not check it; a join token is
	// refused for a group whose service account cannot be a SPIFFE identity.
}

func validateWorkloadGroup(p *problems, wg *networking.WorkloadGroup) {
	if wg.Template == nil {
		p.add("spec.template", "required")
	} else {
		validateWorkloadEntry(p, "spec.template", wg.Template, true)
	}
	if m := wg.Metadata; m != nil {
		validateSpecLabels(p, "spec.metadata.labels", m.Labels)
		// spec.metadata.annotations are not checked, as Istio does not check them.
	}
	validateProbe(p, "spec.probe", wg.Probe)
}

func validateProbe(p *problems, path string, probe *networking.ReadinessProbe) {
	if probe == nil {
		return
	}
	for _, n := range []named[int32]{{"initialDelaySeconds", probe.InitialDelaySeconds}, {"timeoutSeconds", probe.TimeoutSeconds},
		{"periodSeconds", probe.PeriodSeconds}, {"successThreshold", probe.SuccessThreshold}, {"failureThreshold", probe.FailureThreshold}} {
		validateNonNegative(p, field(path, n.name), n.value)
	}
	switch m := probe.HealthCheckMethod.(type) {
	case *networking.ReadinessProbe_HttpGet:
		hp := field(path, "httpGet")
		if m.HttpGet == nil {
			p.add(hp, "must not be null")
			return
		}
		validatePort(p, field(hp, "port"), m.HttpGet.Port)
		if s := m.HttpGet.Scheme; s != "" && s != "HTTP" && s != "HTTPS" {
			p.add(field(hp, "scheme"), "must be HTTP or HTTPS, got %q", s)
		}
		for i, h := range m.HttpGet.HttpHeaders {
			if h == nil || !probeHeaderName(h.Name) {
				p.add(index(field(hp, "httpHeaders"), i), "invalid header name %q: must be alphanumerics and '-'", h.GetName())
			}
		}
	case *networking.ReadinessProbe_TcpSocket:
		if m.TcpSocket == nil {
			p.add(field(path, "tcpSocket"), "must not be null")
			return
		}
		validatePort(p, field(path, "tcpSocket.port"), m.TcpSocket.Port)
	case *networking.ReadinessProbe_Exec:
		if len(m.Exec.GetCommand()) == 0 {
			p.add(field(path, "exec.command"), "required")
		}
		for i, c := range m.Exec.GetCommand() {
			if c == "" {
				p.add(index(field(path, "exec.command"), i), "must not be empty")
			}
		}
	case *networking.ReadinessProbe_Grpc:
		// In the API, but refused by Istio's validation: istio-agent has no gRPC
		// health check for VMs.
		p.add(field(path, "grpc"), "is not supported by Istio; use exec with a gRPC health client, or httpGet or tcpSocket")
	default:
		p.add(path, "one of httpGet, tcpSocket and exec is required")
	}
}

// probeHeaderName reports whether name is a header name Istio accepts in a probe:
// alphanumerics and '-'.
func probeHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !isAlnum(name[i], true) && name[i] != '-' {
			return false
		}
	}
	return true
}
