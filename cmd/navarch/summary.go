package main

import (
	"fmt"
	"slices"
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
			return out + " selector=" + labelPairs(sel)
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
	case *networking.EnvoyFilter:
		var applyTo []string
		for _, cp := range s.ConfigPatches {
			if a := cp.GetApplyTo().String(); !slices.Contains(applyTo, a) {
				applyTo = append(applyTo, a)
			}
		}
		out := fmt.Sprintf("patches=%d applyTo=%s", len(s.ConfigPatches), strings.Join(applyTo, ","))
		if s.Priority != 0 {
			out += fmt.Sprintf(" priority=%d", s.Priority)
		}
		if sel := s.GetWorkloadSelector().GetLabels(); sel != nil {
			out += " selector=" + labelPairs(sel)
		}
		return out
	case *meshconfig.MeshConfig:
		names := make([]string, len(s.ExtensionProviders))
		for i, p := range s.ExtensionProviders {
			names[i] = p.GetName()
		}
		return "providers=" + strings.Join(names, ",")
	}
	return ""
}

// labelPairs writes labels as k=v,k2=v2, in key order.
func labelPairs(labels map[string]string) string {
	pairs := make([]string, 0, len(labels))
	for _, k := range registry.SortedKeys(labels) {
		pairs = append(pairs, k+"="+labels[k])
	}
	return strings.Join(pairs, ",")
}
