package analyze

import (
	"slices"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/registry"
)

// jwtClaimRoutes reports VirtualServices that route on JWT claims
// ("@request.auth.claims.group") through a Gateway whose proxies no
// RequestAuthentication applies to (IST0149): without one no token is validated,
// there are no claims, and the match never holds.
//
// As Istio's analyzer, it checks each registered workload the Gateway selects
// (Istio: each pod) for a RequestAuthentication of the mesh's root namespace or
// the workload's own that selects it. navarch's gateway proxies need not be
// registered, so where none is it still reports a Gateway no RequestAuthentication
// of any namespace could select: one whose selector is not among the Gateway's
// labels cannot apply to its proxies.
func (a *analysis) jwtClaimRoutes() {
	selectors := map[string][]map[string]string{}
	for _, r := range a.snap.Config(api.RequestAuthentication) {
		ra := r.Spec.(*security.RequestAuthentication)
		selectors[r.Meta.Namespace] = append(selectors[r.Meta.Namespace], ra.GetSelector().GetMatchLabels())
	}
	for _, r := range a.snap.Config(api.VirtualService) {
		vs := r.Spec.(*networking.VirtualService)
		key := claimRouteKey(vs)
		if key == "" {
			continue
		}
		for _, name := range vs.Gateways {
			if name == "mesh" {
				continue
			}
			ns, gwName, ok := strings.Cut(name, "/")
			if !ok {
				ns, gwName = r.Meta.Namespace, name
			}
			gw := a.gateway(ns, gwName)
			if gw == nil {
				continue // IST0101 reports it
			}
			sel := gw.Spec.(*networking.Gateway).Selector
			found := false
			for _, w := range a.snap.Workloads() {
				if !w.Matches(sel) {
					continue
				}
				found = true
				applies := func(s map[string]string) bool { return w.Matches(s) }
				if !slices.ContainsFunc(selectors[rootNamespace], applies) && !slices.ContainsFunc(selectors[w.Namespace], applies) {
					a.report(r, "IST0149", Error, "The virtual service uses the JWT claim based routing (key: %s) but found no request authentication for the gateway (%s) pod (%s). The request authentication must first be applied for the gateway pods to validate the JWT token and make the claims available for routing.",
						key, ns+"/"+gwName, w.Name)
				}
			}
			if found {
				continue
			}
			possible := false
			for _, ss := range selectors {
				possible = possible || slices.ContainsFunc(ss, func(s map[string]string) bool { return registry.LabelsMatch(sel, s) })
			}
			if !possible {
				a.report(r, "IST0149", Error, "The virtual service uses the JWT claim based routing (key: %s) but found no request authentication for the gateway (%s) proxies (%s). The request authentication must first be applied for the gateway pods to validate the JWT token and make the claims available for routing.",
					key, ns+"/"+gwName, selectorString(sel))
			}
		}
	}
}

// claimRouteKey returns the first header of vs's matches that is a JWT claim, or "".
func claimRouteKey(vs *networking.VirtualService) string {
	for _, h := range vs.Http {
		for _, m := range h.Match {
			for _, hs := range []map[string]*networking.StringMatch{m.Headers, m.WithoutHeaders} {
				keys := make([]string, 0, len(hs))
				for k := range hs {
					keys = append(keys, k)
				}
				slices.Sort(keys)
				for _, k := range keys {
					if api.IsJWTClaimHeader(k) {
						return k
					}
				}
			}
		}
	}
	return ""
}

// gateway returns the Gateway ns/name, or nil.
func (a *analysis) gateway(ns, name string) *api.Resource {
	for _, g := range a.snap.Config(api.Gateway) {
		if g.Meta.Namespace == ns && g.Meta.Name == name {
			return g
		}
	}
	return nil
}
