package api

import (
	"strings"

	networking "istio.io/api/networking/v1alpha3"
)

// unixPrefix marks an address that is a unix domain socket path.
const unixPrefix = "unix://"

func validateGateway(p *problems, g *networking.Gateway) {
	// spec.selector is not checked: Istio accepts any labels there (they select
	// the gateway workloads that carry exactly them).
	if len(g.Servers) == 0 {
		p.add("spec.servers", "required: a Gateway needs at least one server")
	}
	portNames := map[string]int{}
	for i, s := range g.Servers {
		sp := index("spec.servers", i)
		if s == nil {
			p.add(sp, "must not be null")
			continue
		}
		validateServer(p, sp, s)
		if s.Port == nil || s.Port.Name == "" {
			continue
		}
		if first, dup := portNames[s.Port.Name]; dup {
			p.add(field(sp, "port.name"), "duplicate port name %q, also spec.servers[%d]; port names must be unique across servers", s.Port.Name, first)
		} else {
			portNames[s.Port.Name] = i
		}
	}
}

func validateServer(p *problems, path string, s *networking.Server) {
	if len(s.Hosts) == 0 {
		p.add(field(path, "hosts"), "required: a server needs at least one host")
	}
	for i, h := range s.Hosts {
		validateNamespacedHost(p, index(field(path, "hosts"), i), h, true)
	}
	portOK := validateServerPort(p, field(path, "port"), s.Port, s.Bind)
	if strings.HasPrefix(s.Bind, unixPrefix) {
		if reason := unixPathError(strings.TrimPrefix(s.Bind, unixPrefix)); reason != "" {
			p.add(field(path, "bind"), "%s", reason)
		}
	} else if s.Bind != "" && !isIP(s.Bind) {
		p.add(field(path, "bind"), "must be an IP address or unix:// socket path, got %q", s.Bind)
	}
	validateServerTLS(p, field(path, "tls"), s.Tls)
	if !portOK {
		return
	}
	proto := parseProtocol(s.Port.Protocol)
	switch {
	case proto.tls() && s.Tls == nil:
		p.add(field(path, "tls"), "required for %s servers", s.Port.Protocol)
	case !proto.tls() && s.Tls != nil && proto.http():
		// A plain HTTP server may only redirect to HTTPS.
		if s.Tls.Mode != networking.ServerTLSSettings_PASSTHROUGH && s.Tls.Mode != networking.ServerTLSSettings_AUTO_PASSTHROUGH ||
			s.Tls.CaCertificates != "" || s.Tls.PrivateKey != "" || s.Tls.ServerCertificate != "" {
			p.add(field(path, "tls"), "an HTTP server can only set httpsRedirect; use protocol HTTPS to terminate TLS")
		}
	case !proto.tls() && s.Tls != nil:
		p.add(field(path, "tls"), "must not be set for a %s server; TLS settings need protocol HTTPS or TLS", s.Port.Protocol)
	}
}

// validateServerPort checks a Gateway server's port and reports whether it is valid.
func validateServerPort(p *problems, path string, port *networking.Port, bind string) bool {
	if port == nil {
		p.add(path, "required")
		return false
	}
	before := p.count()
	if parseProtocol(port.Protocol) == protoUnknown {
		p.add(field(path, "protocol"), "unknown protocol %q; supported: %s", port.Protocol, knownProtocols)
	}
	if !strings.HasPrefix(bind, unixPrefix) {
		validatePort(p, field(path, "number"), port.Number)
	} else if port.Number != 0 {
		p.add(field(path, "number"), "must be 0 for a unix socket bind, got %d", port.Number)
	}
	//lint:ignore SA1019 deprecated; Istio rejects it on gateways
	if port.TargetPort != 0 {
		p.add(field(path, "targetPort"), "has no effect on a Gateway; remove it")
	}
	if port.Name == "" {
		p.add(field(path, "name"), "required")
	}
	return p.count() == before
}

func validateServerTLS(p *problems, path string, t *networking.ServerTLSSettings) {
	if t == nil {
		return
	}
	hasCredential := t.CredentialName != "" || len(t.CredentialNames) > 0
	hasCerts := len(t.TlsCertificates) > 0
	// One source of the server's certificates, as Istio counts them.
	sources := 0
	for _, given := range []bool{t.CredentialName != "", len(t.CredentialNames) > 0, t.ServerCertificate != "" && t.PrivateKey != "", hasCerts} {
		if given {
			sources++
		}
	}
	if sources > 1 && t.Mode != networking.ServerTLSSettings_ISTIO_MUTUAL {
		p.add(path, "only one of credentialName, credentialNames, serverCertificate/privateKey and tlsCertificates may be set")
	}
	switch t.Mode {
	case networking.ServerTLSSettings_ISTIO_MUTUAL:
		for _, f := range []named[string]{{"serverCertificate", t.ServerCertificate}, {"privateKey", t.PrivateKey},
			{"caCertificates", t.CaCertificates}, {"credentialName", t.CredentialName}} {
			if f.value != "" {
				p.add(field(path, f.name), "must not be set with ISTIO_MUTUAL, which uses the mesh's certificates")
			}
		}
		return
	case networking.ServerTLSSettings_SIMPLE, networking.ServerTLSSettings_MUTUAL, networking.ServerTLSSettings_OPTIONAL_MUTUAL:
		if hasCredential {
			break
		}
		mode := t.Mode.String()
		if t.Mode != networking.ServerTLSSettings_SIMPLE && t.CaCertificates == "" {
			p.add(field(path, "caCertificates"), "required for %s TLS unless credentialName is set", mode)
		}
		if !hasCerts {
			if t.ServerCertificate == "" {
				p.add(field(path, "serverCertificate"), "required for %s TLS unless credentialName or tlsCertificates is set", mode)
			}
			if t.PrivateKey == "" {
				p.add(field(path, "privateKey"), "required for %s TLS unless credentialName or tlsCertificates is set", mode)
			}
			break
		}
		for i, c := range t.TlsCertificates {
			cp := index(field(path, "tlsCertificates"), i)
			if c.GetServerCertificate() == "" {
				p.add(field(cp, "serverCertificate"), "required for %s TLS", mode)
			}
			if c.GetPrivateKey() == "" {
				p.add(field(cp, "privateKey"), "required for %s TLS", mode)
			}
		}
	}
	for _, l := range []named[int]{{"credentialNames", len(t.CredentialNames)}, {"tlsCertificates", len(t.TlsCertificates)}} {
		if l.value > 2 { // Istio's CRDs: one RSA and one ECDSA certificate at most
			p.add(field(path, l.name), "must have at most 2 items, got %d", l.value)
		}
	}
	// With a credential, Istio checks no further for a mode that uses it; a caCrl
	// is then ignored, by istiod and by navarch (xds/gateway.go).
	terminates := t.Mode == networking.ServerTLSSettings_SIMPLE || t.Mode == networking.ServerTLSSettings_MUTUAL ||
		t.Mode == networking.ServerTLSSettings_OPTIONAL_MUTUAL
	if t.CaCrl != "" && !(hasCredential && terminates) {
		if t.CredentialName != "" {
			p.add(field(path, "caCrl"), "must not be set with credentialName; put the CRL in the credential")
		}
		if t.Mode == networking.ServerTLSSettings_SIMPLE {
			p.add(field(path, "caCrl"), "must not be set with SIMPLE TLS, which does not verify clients")
		}
	}
}

// validateNamespacedHost checks a "namespace/host" entry of a Gateway server or a
// Sidecar egress listener. Gateways also accept a bare host and an IP address.
func validateNamespacedHost(p *problems, path, entry string, gateway bool) {
	ns, host, qualified := strings.Cut(entry, "/")
	if !qualified {
		if !gateway {
			p.add(path, "%q must be of the form namespace/host", entry)
			return
		}
		host = entry
	} else {
		switch {
		case ns == "" || host == "":
			p.add(path, "%q must be of the form namespace/host, with neither empty", entry)
			return
		case ns == "*" || ns == "." || ns == "~" && !gateway:
		case !dnsLabel(ns, true):
			p.add(path, "invalid namespace %q in %q: want \"*\", \".\" or a namespace name", ns, entry)
		}
	}
	if host != "*" && !strings.Contains(host, ".") {
		p.add(path, "short host names are not allowed here, want a fully qualified name, got %q", host)
	}
	if reason := hostError(host); reason != "" && !(gateway && isIP(host)) {
		p.add(path, "invalid host %q: %s", host, reason)
	}
	if partialWildcard(host) {
		p.add(path, "partial wildcard %q is not allowed; a wildcard must be \"*\" or a leading \"*.\"", host)
	}
}
