package analyze

import (
	telemetry "istio.io/api/telemetry/v1alpha1"

	"github.com/navarch/navarch/api"
)

// telemetryProviders reports Telemetries with an access logging entry that names no
// provider and is not a switch-off, where no provider is there to inherit (IST0157):
// such an entry means the providers of the level above (the namespace's Telemetry,
// the mesh's, then the mesh config's defaultProviders), and with none it logs
// nothing. Istio's analyzer reports every such entry when the mesh config has no
// default providers; navarch also counts the levels above, as proxies do.
func (a *analysis) telemetryProviders() {
	if len(a.snap.MeshConfig().GetDefaultProviders().GetAccessLogging()) > 0 {
		return
	}
	// levelProviders reports whether the oldest Telemetry without a selector in ns
	// names an access log provider.
	levelProviders := func(ns string) bool {
		for _, r := range a.snap.Config(api.Telemetry) {
			t := r.Spec.(*telemetry.Telemetry)
			if r.Meta.Namespace == ns && len(t.GetSelector().GetMatchLabels()) == 0 {
				return namesProvider(t)
			}
		}
		return false
	}
	for _, r := range a.snap.Config(api.Telemetry) {
		t := r.Spec.(*telemetry.Telemetry)
		inherited := false
		if r.Meta.Namespace != rootNamespace || len(t.GetSelector().GetMatchLabels()) > 0 {
			inherited = levelProviders(rootNamespace)
		}
		if len(t.GetSelector().GetMatchLabels()) > 0 && r.Meta.Namespace != rootNamespace {
			inherited = inherited || levelProviders(r.Meta.Namespace)
		}
		if inherited {
			continue
		}
		for _, l := range t.AccessLogging {
			if !l.GetDisabled().GetValue() && len(l.Providers) == 0 {
				a.report(r, "IST0157", Warning, "The Telemetry %s in namespace %q with empty providers will be ignored.", r.Meta.Name, r.Meta.Namespace)
			}
		}
	}
}

// namesProvider reports whether a Telemetry's access logging names a provider.
func namesProvider(t *telemetry.Telemetry) bool {
	for _, l := range t.AccessLogging {
		if len(l.Providers) > 0 {
			return true
		}
	}
	return false
}
