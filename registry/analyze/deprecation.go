package analyze

import (
	networking "istio.io/api/networking/v1alpha3"

	"github.com/navarch/navarch/api"
)

// deprecatedFields reports the deprecated fields istioctl analyze looks for
// (IST0002): a VirtualService's fault delay by `percent` (replaced by
// `percentage`) and a Sidecar's egress proxy (ignored). Validation's warnings
// (IST0133) name the others.
func (a *analysis) deprecatedFields() {
	for _, r := range a.snap.Config(api.VirtualService) {
		for _, h := range r.Spec.(*networking.VirtualService).Http {
			//lint:ignore SA1019 deprecated, which is what is reported
			if h.GetFault().GetDelay().GetPercent() > 0 {
				a.report(r, "IST0002", Warning, "Deprecated: HTTPRoute.fault.delay.percent is deprecated; use HTTPRoute.fault.delay.percentage")
			}
		}
	}
	for _, r := range a.snap.Config(api.Sidecar) {
		if r.Spec.(*networking.Sidecar).GetOutboundTrafficPolicy().GetEgressProxy() != nil {
			a.report(r, "IST0002", Warning, "Deprecated: OutboundTrafficPolicy.EgressProxy ignored")
		}
	}
}
