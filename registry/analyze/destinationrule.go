package analyze

import (
	"slices"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/registry"
)

// destinationRules checks each DestinationRule: that its host is a service the mesh
// knows (IST0174), that each subset selects some of the service's endpoints
// (IST0173), and that TLS it originates verifies the server (IST0128, IST0129).
func (a *analysis) destinationRules() {
	for _, r := range a.snap.Config(api.DestinationRule) {
		dr := r.Spec.(*networking.DestinationRule)
		a.destinationRuleTLS(r, dr)
		host := a.resolve(dr.Host, r.Meta.Namespace)
		svcs := a.servicesMatching(host, viewpoints(dr.ExportTo, r.Meta.Namespace))
		if len(svcs) == 0 {
			a.report(r, "IST0174", Warning, "The host %s defined in the DestinationRule does not match any services in the mesh.", dr.Host)
			continue
		}
		if strings.HasPrefix(host, "*") {
			continue // a subset of a wildcard rule may be meant for some of its services only
		}
		for _, ss := range dr.Subsets {
			if !a.subsetSelects(svcs, ss.Labels) {
				a.report(r, "IST0173", Error,
					"The Subset %s defined in the DestinationRule does not select any pods. Which may lead to 503 UH (NoHealthyUpstream).", ss.Name)
			}
		}
	}
}

// servicesMatching returns the services visible from one of the namespaces from that
// host (a name or a wildcard) covers, or whose wildcard host covers it.
func (a *analysis) servicesMatching(host string, from []string) []*registry.Service {
	candidates := a.wild
	if strings.HasPrefix(host, "*") {
		candidates = a.snap.Services() // a wildcard rule covers names of any kind
	} else {
		candidates = append(slices.Clip(a.byHost[host]), candidates...)
	}
	var out []*registry.Service
	for _, svc := range candidates {
		if !hostsOverlap(host, svc.Hostname) {
			continue
		}
		for _, ns := range from {
			if ns == "*" || svc.VisibleTo(ns) {
				out = append(out, svc)
				break
			}
		}
	}
	return out
}

// subsetSelects reports whether some endpoint of svcs has every label of a subset.
// A service without endpoints (a DNS name, an empty registration) has nothing to
// select from and is not held against the subset.
func (a *analysis) subsetSelects(svcs []*registry.Service, labels map[string]string) bool {
	for _, svc := range svcs {
		eps := a.snap.Endpoints(svc)
		if len(eps) == 0 {
			return true
		}
		for _, w := range eps {
			if w.Matches(labels) {
				return true
			}
		}
	}
	return false
}

// destinationRuleTLS reports TLS a DestinationRule originates (SIMPLE or MUTUAL)
// without CA certificates to check the server's against, at the rule's level
// (IST0128) or a port's (IST0129), as Istio does. A credentialName on a rule that
// selects its workloads (a gateway's egress) carries the CA with it.
func (a *analysis) destinationRuleTLS(r *api.Resource, dr *networking.DestinationRule) {
	unverified := func(tls *networking.ClientTLSSettings) bool {
		mode := tls.GetMode()
		if mode != networking.ClientTLSSettings_SIMPLE && mode != networking.ClientTLSSettings_MUTUAL {
			return false
		}
		return tls.GetCaCertificates() == "" && (tls.GetCredentialName() == "" || dr.WorkloadSelector == nil)
	}
	if tls := dr.GetTrafficPolicy().GetTls(); unverified(tls) {
		a.report(r, "IST0128", Warning,
			"DestinationRule %s/%s in namespace %s has TLS mode set to %s but no caCertificates are set to validate server identity for host: %s",
			r.Meta.Namespace, r.Meta.Name, r.Meta.Namespace, tls.GetMode(), dr.Host)
	}
	for _, p := range dr.GetTrafficPolicy().GetPortLevelSettings() {
		if tls := p.GetTls(); unverified(tls) {
			a.report(r, "IST0129", Warning,
				"DestinationRule %s/%s in namespace %s has TLS mode set to %s but no caCertificates are set to validate server identity for host: %s at port %s",
				r.Meta.Namespace, r.Meta.Name, r.Meta.Namespace, tls.GetMode(), dr.Host, p.GetPort().String())
		}
	}
}
