package api

import (
	"net"
	"strconv"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
)

func validateSidecar(p *problems, s *networking.Sidecar) {
	if s.WorkloadSelector != nil {
		validateSelectorLabels(p, "spec.workloadSelector.labels", s.WorkloadSelector.Labels)
	}
	if len(s.Egress) == 0 && len(s.Ingress) == 0 && s.OutboundTrafficPolicy == nil && s.InboundConnectionPool == nil {
		p.add("spec", "must set at least one of egress, ingress, outboundTrafficPolicy and inboundConnectionPool")
		return
	}
	ports := map[uint32]bool{}
	for i, in := range s.Ingress {
		validateIngressListener(p, index("spec.ingress", i), in, ports)
	}
	validateConnectionPool(p, "spec.inboundConnectionPool", s.InboundConnectionPool)
	validateEgressListeners(p, s.Egress)
	if tp := s.OutboundTrafficPolicy; tp != nil && tp.EgressProxy != nil {
		ep := "spec.outboundTrafficPolicy.egressProxy"
		switch {
		case tp.Mode != networking.OutboundTrafficPolicy_ALLOW_ANY:
			p.add(ep, "may only be set with mode ALLOW_ANY, got %s", tp.Mode)
		case tp.EgressProxy.Port == nil:
			p.add(field(ep, "port"), "required")
		default:
			if reason := fqdnError(tp.EgressProxy.Host); reason != "" {
				p.add(field(ep, "host"), "invalid host %q: %s", tp.EgressProxy.Host, reason)
			}
			validateDestination(p, ep, tp.EgressProxy)
		}
	}
}

func validateIngressListener(p *problems, path string, in *networking.IstioIngressListener, ports map[uint32]bool) {
	if in == nil {
		p.add(path, "must not be null")
		return
	}
	if in.Port == nil {
		p.add(field(path, "port"), "required for an ingress listener")
		return
	}
	pp := field(path, "port")
	//lint:ignore SA1019 deprecated; Istio rejects it on sidecars
	if in.Port.TargetPort != 0 {
		p.add(field(pp, "targetPort"), "has no effect on a Sidecar; remove it")
	}
	validateSidecarPort(p, pp, in.Port)
	validatePort(p, field(pp, "number"), in.Port.Number)
	if ports[in.Port.Number] {
		p.add(field(pp, "number"), "duplicate port %d; ingress listener ports must be unique", in.Port.Number)
	}
	ports[in.Port.Number] = true
	validateBindIP(p, field(path, "bind"), in.Bind)
	if in.DefaultEndpoint != "" {
		validateDefaultEndpoint(p, field(path, "defaultEndpoint"), in.DefaultEndpoint)
	}
	if t := in.Tls; t != nil {
		tp := field(path, "tls")
		switch {
		case len(t.SubjectAltNames) > 0:
			p.add(field(tp, "subjectAltNames"), "is not supported on sidecar ingress")
		case t.HttpsRedirect:
			p.add(field(tp, "httpsRedirect"), "is not supported on sidecar ingress")
		case t.CredentialName != "":
			p.add(field(tp, "credentialName"), "is not supported on sidecar ingress")
		case len(t.CredentialNames) > 0:
			p.add(field(tp, "credentialNames"), "is not supported on sidecar ingress")
		case len(t.TlsCertificates) > 0:
			p.add(field(tp, "tlsCertificates"), "is not supported on sidecar ingress")
		case t.Mode == networking.ServerTLSSettings_ISTIO_MUTUAL || t.Mode == networking.ServerTLSSettings_AUTO_PASSTHROUGH:
			p.add(field(tp, "mode"), "%s is not supported on sidecar ingress", t.Mode)
		}
		if !parseProtocol(in.Port.GetProtocol()).tls() {
			p.add(tp, "TLS settings need an HTTPS or TLS port, got protocol %q", in.Port.GetProtocol())
		}
		validateServerTLS(p, tp, t)
	}
	validateConnectionPool(p, field(path, "connectionPool"), in.ConnectionPool)
}

// validateDefaultEndpoint checks where a sidecar forwards inbound traffic:
// 127.0.0.1:PORT, 0.0.0.0:PORT, [::1]:PORT, [::]:PORT, :PORT or unix://path.
func validateDefaultEndpoint(p *problems, path, ep string) {
	if strings.HasPrefix(ep, unixPrefix) {
		if reason := unixPathError(strings.TrimPrefix(ep, unixPrefix)); reason != "" {
			p.add(path, "%s", reason)
		}
		return
	}
	host, port, err := net.SplitHostPort(ep)
	if err != nil {
		p.add(path, "%q must be 127.0.0.1:PORT, 0.0.0.0:PORT, [::1]:PORT, [::]:PORT or unix:///path", ep)
		return
	}
	switch host {
	case "", "127.0.0.1", "0.0.0.0", "::1", "::":
	default:
		p.add(path, "host %q of %q must be 127.0.0.1, 0.0.0.0, [::1] or [::]", host, ep)
	}
	n, err := strconv.ParseUint(port, 10, 32)
	if err != nil {
		p.add(path, "port %q of %q is not a number", port, ep)
		return
	}
	validatePort(p, path, uint32(n))
}

// validateEgressListeners checks egress listeners: at most one without a port, and it
// comes last; unique ports and unix sockets; hosts of the form namespace/host.
func validateEgressListeners(p *problems, egress []*networking.IstioEgressListener) {
	ports := map[uint32]bool{}
	sockets := map[string]bool{}
	portless := 0
	for i, e := range egress {
		path := index("spec.egress", i)
		if e == nil {
			p.add(path, "must not be null")
			continue
		}
		if e.Port != nil {
			validateEgressPort(p, path, e, ports, sockets)
		} else if portless++; portless > 1 {
			p.add(path, "only one egress listener may omit the port")
		} else if i != len(egress)-1 {
			p.add(path, "the egress listener without a port must be the last one")
		}
		if len(e.Hosts) == 0 {
			p.add(field(path, "hosts"), "required: an egress listener needs at least one namespace/host")
		}
		for j, h := range e.Hosts {
			validateNamespacedHost(p, index(field(path, "hosts"), j), h, false)
		}
	}
}

func validateEgressPort(p *problems, path string, e *networking.IstioEgressListener, ports map[uint32]bool, sockets map[string]bool) {
	pp := field(path, "port")
	//lint:ignore SA1019 deprecated; Istio rejects it on sidecars
	if e.Port.TargetPort != 0 {
		p.add(field(pp, "targetPort"), "has no effect on a Sidecar; remove it")
	}
	validateSidecarPort(p, pp, e.Port)
	if e.Port.Number != 0 {
		validatePort(p, field(pp, "number"), e.Port.Number)
		validateBindIP(p, field(path, "bind"), e.Bind)
		if ports[e.Port.Number] {
			p.add(field(pp, "number"), "duplicate port %d; egress listener ports must be unique", e.Port.Number)
		}
		ports[e.Port.Number] = true
		return
	}
	// Port 0: a unix domain socket listener.
	if !strings.HasPrefix(e.Bind, unixPrefix) {
		p.add(field(path, "bind"), "must be a unix:// socket path when the port number is 0, got %q", e.Bind)
	} else if reason := unixPathError(strings.TrimPrefix(e.Bind, unixPrefix)); reason != "" {
		p.add(field(path, "bind"), "%s", reason)
	}
	if e.CaptureMode != networking.CaptureMode_DEFAULT && e.CaptureMode != networking.CaptureMode_NONE {
		p.add(field(path, "captureMode"), "must be DEFAULT or NONE for a unix socket listener, got %s", e.CaptureMode)
	}
	if sockets[e.Bind] {
		p.add(field(path, "bind"), "duplicate unix socket %q", e.Bind)
	}
	sockets[e.Bind] = true
}

// validateSidecarPort checks the name (optional) and protocol of a sidecar port.
func validateSidecarPort(p *problems, path string, port *networking.SidecarPort) {
	if port.Name != "" && !dnsLabel(port.Name, true) {
		p.add(field(path, "name"), "%q is not a valid port name (a DNS-1123 label)", port.Name)
	}
	validateProtocol(p, field(path, "protocol"), port.Protocol)
}

func validateBindIP(p *problems, path, bind string) {
	if bind != "" && !isIP(bind) {
		p.add(path, "must be an IP address, got %q", bind)
	}
}
