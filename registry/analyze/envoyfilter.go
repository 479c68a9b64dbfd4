package analyze

import (
	"slices"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/navarch/navarch/api"
)

// envoyFilters checks the operations of EnvoyFilter patches: ADD or REMOVE where
// they are ignored (IST0153, IST0154), REPLACE where it is not supported (IST0152),
// and a patch relative to what other patches made (INSERT_BEFORE, INSERT_AFTER,
// REPLACE, REMOVE) in a filter without a priority (IST0151), whose order against
// other filters is only their creation time; IST0155 instead where an earlier filter
// patches the same named object for some proxy versions only, as an upgrade then
// changes which applies first. Filters are taken oldest first, as they apply.
func (a *analysis) envoyFilters() {
	var versioned []string // names of objects patched for some proxy versions only
	for _, r := range a.snap.Config(api.EnvoyFilter) {
		ef := r.Spec.(*networking.EnvoyFilter)
		for _, cp := range ef.ConfigPatches {
			if cp.GetPatch() == nil {
				break
			}
			name := patchedName(cp)
			routing := cp.ApplyTo == networking.EnvoyFilter_ROUTE_CONFIGURATION || cp.ApplyTo == networking.EnvoyFilter_HTTP_ROUTE
			relative := false
			switch cp.Patch.Operation {
			case networking.EnvoyFilter_Patch_ADD:
				if routing {
					a.report(r, "IST0153", Error, "The ADD operation will be ignored when applyTo is set to ROUTE_CONFIGURATION, or HTTP_ROUTE.")
				}
			case networking.EnvoyFilter_Patch_REMOVE:
				if routing {
					a.report(r, "IST0154", Error, "The REMOVE operation will be ignored when applyTo is set to ROUTE_CONFIGURATION, or HTTP_ROUTE.")
				} else {
					relative = true
				}
			case networking.EnvoyFilter_Patch_REPLACE:
				switch cp.ApplyTo {
				case networking.EnvoyFilter_NETWORK_FILTER, networking.EnvoyFilter_HTTP_FILTER, networking.EnvoyFilter_VIRTUAL_HOST:
					relative = true
				default:
					a.report(r, "IST0152", Error, "The REPLACE operation is only valid for HTTP_FILTER and NETWORK_FILTER.")
				}
			case networking.EnvoyFilter_Patch_INSERT_BEFORE, networking.EnvoyFilter_Patch_INSERT_AFTER:
				relative = true
			}
			if relative && ef.Priority == 0 {
				if slices.Contains(versioned, name) {
					a.report(r, "IST0155", Warning, "This EnvoyFilter does not have a priority and has a relative patch operation (NSTERT_BEFORE/AFTER, REPLACE, MERGE, DELETE) and proxyVersion set which can cause the EnvoyFilter not to be applied during an upgrade. Using the INSERT_FIRST or ADD option or setting the priority may help in ensuring the EnvoyFilter is applied correctly.")
				} else {
					a.report(r, "IST0151", Warning, "This EnvoyFilter does not have a priority and has a relative patch operation set which can cause the EnvoyFilter not to be applied. Using the INSERT_FIRST of ADD option or setting the priority may help in ensuring the EnvoyFilter is applied correctly.")
				}
			}
			if cp.GetMatch().GetProxy().GetProxyVersion() != "" {
				versioned = append(versioned, name)
			}
		}
	}
}

// patchedName names what a patch makes or changes: its value's name, else the
// filter its match names; "" when neither says.
func patchedName(cp *networking.EnvoyFilter_EnvoyConfigObjectPatch) string {
	fields := cp.Patch.GetValue().GetFields()
	if fields == nil {
		return ""
	}
	if n, ok := fields["name"]; ok {
		return n.String()
	}
	return cp.GetMatch().GetListener().GetFilterChain().GetFilter().GetName()
}
