package main

import (
	"fmt"
	"strings"

	meshconfig "istio.io/api/mesh/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/registry"
)

// summary is the SUMMARY column of `navarch get`: what a resource is about at a glance.
func summary(r *api.Resource) string {
	switch s := r.Spec.(type) {
	case *networking.VirtualService:
		out := "hosts=" + strings.Join(s.Hosts, ",")
		if len(s.Gateways) > 0 {
			out += " gateways=" + strings.Join(s.Gateways, ",")
		}
		return out
	case *networking.DestinationRule:
		var names []string
		for _, sub := range s.Subsets {
			names = append(names, sub.Name)
		}
		out := "host=" + s.Host
		if len(names) > 0 {
			out += " subsets=" + strings.Join(names, ",")
		}
		return out
	case *networking.ServiceEntry:
		out := fmt.Sprintf("hosts=%s resolution=%s", strings.Join(s.Hosts, ","), s.Resolution)
		if sel := s.GetWorkloadSelector().GetLabels(); sel != nil {
			// Its endpoints are the WorkloadEntries selected: navarch registry lists them.
			pairs := make([]string, 0, len(sel))
			for _, k := range registry.SortedKeys(sel) {
				pairs = append(pairs, k+"="+sel[k])
			}
			return out + " selector=" + strings.Join(pairs, ",")
		}
		return fmt.Sprintf("%s endpoints=%d", out, len(s.Endpoints))
	case *networking.WorkloadEntry:
		return "address=" + s.Address
	case *networking.Gateway:
		return fmt.Sprintf("servers=%d", len(s.Servers))
	case *networking.Sidecar:
		return fmt.Sprintf("egress=%d ingress=%d", len(s.Egress), len(s.Ingress))
	case *security.PeerAuthentication:
		return "mtls=" + s.GetMtls().GetMode().String()
	case *security.AuthorizationPolicy:
		return fmt.Sprintf("action=%s rules=%d", s.Action, len(s.Rules))
	case *meshconfig.MeshConfig:
		names := make([]string, len(s.ExtensionProviders))
		for i, p := range s.ExtensionProviders {
			names[i] = p.GetName()
		}
		return "providers=" + strings.Join(names, ",")
	}
	return ""
}
