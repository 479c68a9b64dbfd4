package analyze

import (
	networking "istio.io/api/networking/v1alpha3"

	"github.com/navarch/navarch/api"
)

// schemaWarnings reports what validation warns of in each resource (IST0133) and
// the VirtualService rules and matches no request reaches (IST0130, IST0131), as
// istioctl analyze's schema analyzer reports the webhook's warnings. navarch's
// apply prints the same warnings when the resource is written; analysis keeps
// them in view afterwards.
func (a *analysis) schemaWarnings() {
	for _, k := range api.Kinds() {
		for _, r := range a.snap.Config(k) {
			for _, w := range api.SchemaWarnings(r) {
				a.report(r, "IST0133", Warning, "Schema validation warning: %s", w.Reason)
			}
			vs, ok := r.Spec.(*networking.VirtualService)
			if !ok {
				continue
			}
			for _, f := range api.UnreachableRules(vs) {
				if f.Match != "" {
					a.report(r, "IST0131", Info, "VirtualService rule %v match %v is not used (duplicate/overlapping match in rule %v).", f.Rule, f.Match, f.Earlier)
				} else {
					a.report(r, "IST0130", Warning, "VirtualService rule %v not used (%s).", f.Rule, f.Reason)
				}
			}
		}
	}
}
