package analyze

import (
	"slices"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"
	telemetry "istio.io/api/telemetry/v1alpha1"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/registry"
)

// selectorOf returns the labels a policy selects its workloads by (nil: every
// workload of its namespace) and whether a selector in the root namespace reaches
// workloads of every namespace, as it does for authorization and request
// authentication.
func selectorOf(r *api.Resource) (labels map[string]string, meshWide bool) {
	switch s := r.Spec.(type) {
	case *networking.Sidecar:
		return s.GetWorkloadSelector().GetLabels(), false
	case *security.AuthorizationPolicy:
		return s.GetSelector().GetMatchLabels(), true
	case *security.RequestAuthentication:
		return s.GetSelector().GetMatchLabels(), true
	case *security.PeerAuthentication:
		return s.GetSelector().GetMatchLabels(), false
	case *telemetry.Telemetry:
		return s.GetSelector().GetMatchLabels(), false
	}
	return nil, false
}

// selectors checks the policies that select workloads by label: a selector that
// matches no workload the registry knows (IST0127), more than one Sidecar or
// Telemetry without a selector in a namespace (IST0111, IST0160), and a workload
// that more than one Sidecar or Telemetry selects (IST0110, IST0159). Proxies take
// the oldest of rivals, so the others change nothing.
func (a *analysis) selectors() {
	for _, k := range []*api.Kind{api.Sidecar, api.AuthorizationPolicy, api.RequestAuthentication, api.PeerAuthentication, api.Telemetry} {
		for _, r := range a.snap.Config(k) {
			sel, meshWide := selectorOf(r)
			if len(sel) == 0 {
				continue
			}
			everywhere := meshWide && r.Meta.Namespace == rootNamespace
			if !a.selectsWorkload(sel, r.Meta.Namespace, everywhere) && !a.selectsGateway(sel) {
				a.report(r, "IST0127", Warning, "No matching workloads for this resource with the following labels: %s", selectorString(sel))
			}
		}
	}
	a.rivals(api.Sidecar, "IST0111", "IST0110", "Sidecars")
	a.rivals(api.Telemetry, "IST0160", "IST0159", "Telemetries")
}

// selectsGateway reports whether a selector selects the proxies some Gateway
// selects: gateway proxies are often not registered workloads (an Envoy deployment
// outside Kubernetes), and a policy for them is not to be reported as selecting
// nothing. A Gateway selects proxies by its selector, in any namespace.
func (a *analysis) selectsGateway(sel map[string]string) bool {
	for _, g := range a.snap.Config(api.Gateway) {
		if gs := g.Spec.(*networking.Gateway).Selector; len(gs) > 0 && registry.LabelsMatch(gs, sel) {
			return true
		}
	}
	return false
}

func (a *analysis) selectsWorkload(sel map[string]string, ns string, everywhere bool) bool {
	workloads := a.workloads[ns]
	if everywhere {
		workloads = a.snap.Workloads()
	}
	for _, w := range workloads {
		if w.Matches(sel) {
			return true
		}
	}
	return false
}

// rivals reports the resources of kind k that compete for the same proxies within a
// namespace: several without a selector (code noSelector) or several selecting one
// workload (code sameWorkload). plural names the kind in the message.
func (a *analysis) rivals(k *api.Kind, noSelector, sameWorkload, plural string) {
	unselected := map[string][]*api.Resource{}
	var namespaces []string
	selecting := map[*registry.Workload][]*api.Resource{}
	for _, r := range a.snap.Config(k) {
		sel, _ := selectorOf(r)
		if len(sel) == 0 {
			if unselected[r.Meta.Namespace] == nil {
				namespaces = append(namespaces, r.Meta.Namespace)
			}
			unselected[r.Meta.Namespace] = append(unselected[r.Meta.Namespace], r)
			continue
		}
		for _, w := range a.workloads[r.Meta.Namespace] {
			if w.Matches(sel) {
				selecting[w] = append(selecting[w], r)
			}
		}
	}
	shortNames := func(rs []*api.Resource) string {
		out := make([]string, 0, len(rs))
		for _, r := range rs {
			out = append(out, r.Meta.Name)
		}
		slices.Sort(out)
		return strings.Join(out, " ")
	}
	for _, ns := range namespaces {
		if rs := unselected[ns]; len(rs) > 1 {
			for _, r := range rs {
				a.report(r, noSelector, Error, "The %s [%s] in namespace %q have no workload selector, which can lead to undefined behavior.",
					plural, shortNames(rs), ns)
			}
		}
	}
	for _, w := range a.snap.Workloads() {
		if rs := selecting[w]; len(rs) > 1 {
			for _, r := range rs {
				a.report(r, sameWorkload, Error, "The %s [%s] in namespace %q select the same workload pod %q, which can lead to undefined behavior.",
					plural, shortNames(rs), w.Namespace, w.Name)
			}
		}
	}
}
