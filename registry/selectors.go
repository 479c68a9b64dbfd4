package registry

import (
	"strings"

	"github.com/cespare/xxhash/v2"
	networking "istio.io/api/networking/v1alpha3"
	typev1beta1 "istio.io/api/type/v1beta1"

	"github.com/navarch/navarch/api"
)

// selectorKeys returns, sorted, the label keys by which some configuration of the
// snapshot selects workloads or proxies: workload selectors (DestinationRule,
// Sidecar, ServiceEntry, PeerAuthentication, AuthorizationPolicy,
// RequestAuthentication, Telemetry), Gateway selectors, VirtualService sourceLabels
// and the keys of DestinationRules' failover by labels (failoverPriority) and of
// services' traffic distributions. A label
// none of them names cannot change what a proxy is sent.
func (s *Snapshot) selectorKeys() []string {
	keys := map[string]bool{}
	add := func(m map[string]string) {
		for k := range m {
			keys[k] = true
		}
	}
	for _, svc := range s.services {
		add(svc.Selector)
		// A traffic distribution compares endpoints' topology labels with the proxy's.
		for _, k := range svc.TrafficDistribution.FailoverPriority() {
			keys[k] = true
		}
		if svc.NodeLocal { // compares endpoints' nodes with the proxy's
			keys[LabelHostname] = true
		}
	}
	for _, r := range s.config[api.DestinationRule] {
		dr := r.Spec.(*networking.DestinationRule)
		add(dr.GetWorkloadSelector().GetMatchLabels())
		// Failover by labels compares endpoints' labels with the proxy's.
		policies := []*networking.TrafficPolicy{dr.GetTrafficPolicy()}
		for _, sub := range dr.GetSubsets() {
			policies = append(policies, sub.GetTrafficPolicy())
		}
		for _, tp := range policies {
			lbs := []*networking.LoadBalancerSettings{tp.GetLoadBalancer()}
			for _, pl := range tp.GetPortLevelSettings() {
				lbs = append(lbs, pl.GetLoadBalancer())
			}
			for _, lb := range lbs {
				for _, entry := range lb.GetLocalityLbSetting().GetFailoverPriority() {
					key, _, _ := strings.Cut(entry, "=")
					keys[key] = true
				}
			}
		}
	}
	for _, r := range s.config[api.Sidecar] {
		add(r.Spec.(*networking.Sidecar).GetWorkloadSelector().GetLabels())
	}
	for _, r := range s.config[api.EnvoyFilter] {
		add(r.Spec.(*networking.EnvoyFilter).GetWorkloadSelector().GetLabels())
	}
	for _, r := range s.config[api.Gateway] {
		add(r.Spec.(*networking.Gateway).GetSelector())
	}
	for _, r := range s.config[api.VirtualService] {
		vs := r.Spec.(*networking.VirtualService)
		for _, h := range vs.GetHttp() {
			for _, m := range h.GetMatch() {
				add(m.GetSourceLabels())
			}
		}
		for _, t := range vs.GetTcp() {
			for _, m := range t.GetMatch() {
				add(m.GetSourceLabels())
			}
		}
		for _, t := range vs.GetTls() {
			for _, m := range t.GetMatch() {
				add(m.GetSourceLabels())
			}
		}
	}
	for _, k := range []*api.Kind{api.PeerAuthentication, api.AuthorizationPolicy, api.RequestAuthentication, api.Telemetry} {
		for _, r := range s.config[k] {
			if sel, ok := r.Spec.(interface {
				GetSelector() *typev1beta1.WorkloadSelector
			}); ok {
				add(sel.GetSelector().GetMatchLabels())
			}
		}
	}
	return SortedKeys(keys)
}

// indexSelectorKeys records selectorKeys, the label keys of WorkloadEntries, and a
// hash of both.
func (s *Snapshot) indexSelectorKeys() {
	keys := s.selectorKeys()
	s.selectedBy = make(map[string]bool, len(keys))
	h := xxhash.New()
	for _, k := range keys {
		s.selectedBy[k] = true
		_, _ = h.WriteString(k + "\x00")
	}
	entryKeys := map[string]bool{}
	for _, w := range s.workloads {
		if w.Origin.Kind == api.WorkloadEntry {
			for k := range w.Labels {
				entryKeys[k] = true
			}
		}
	}
	s.proxyMetadata, s.proxyVersion = nil, false
	for _, r := range s.config[api.EnvoyFilter] {
		for _, cp := range r.Spec.(*networking.EnvoyFilter).GetConfigPatches() {
			m := cp.GetMatch().GetProxy()
			s.proxyVersion = s.proxyVersion || m.GetProxyVersion() != ""
			for k := range m.GetMetadata() {
				if s.proxyMetadata == nil {
					s.proxyMetadata = map[string]bool{}
				}
				s.proxyMetadata[k] = true
			}
		}
	}
	_, _ = h.WriteString("\x02")
	for _, k := range SortedKeys(s.proxyMetadata) {
		_, _ = h.WriteString(k + "\x00")
	}
	if s.proxyVersion {
		_, _ = h.WriteString("\x03")
	}
	s.bindsProxyAddress = false
	for _, r := range s.config[api.Sidecar] {
		for _, in := range r.Spec.(*networking.Sidecar).GetIngress() {
			s.bindsProxyAddress = s.bindsProxyAddress || in.GetBind() == ""
		}
	}
	if s.bindsProxyAddress {
		_, _ = h.WriteString("\x04")
	}
	_, _ = h.WriteString("\x01")
	s.entryLabels = make(map[string]bool, len(entryKeys))
	for _, k := range SortedKeys(entryKeys) {
		s.entryLabels[k] = true
		_, _ = h.WriteString(k + "\x00")
	}
	s.selectedByHash = h.Sum64()
}

// MatchesProxyMetadata reports whether some EnvoyFilter matches proxies by the
// node metadata key.
func (s *Snapshot) MatchesProxyMetadata(key string) bool { return s.proxyMetadata[key] }

// MatchesProxyVersion reports whether some EnvoyFilter matches proxies by their
// Istio version.
func (s *Snapshot) MatchesProxyVersion() bool { return s.proxyVersion }

// BindsProxyAddress reports whether some Sidecar has an ingress listener that says
// no bind address: one that binds its port (captureMode NONE) binds the proxy's own
// unicast address, so that proxies' configuration depends on their addresses.
func (s *Snapshot) BindsProxyAddress() bool { return s.bindsProxyAddress }

// WorkloadEntriesLabelledBy reports whether some WorkloadEntry has a label with the
// key: a sidecar serves a selecting service on the port of the service's
// WorkloadEntries whose labels its own include, which depends on every key they have.
func (s *Snapshot) WorkloadEntriesLabelledBy(key string) bool { return s.entryLabels[key] }

// SelectsBy reports whether some configuration selects workloads or proxies by the
// label key (see selectorKeys). Labels under istio.io (security.istio.io/tlsMode,
// topology.istio.io/network, ...) count as selected always: Istio gives them
// meanings of their own.
func (s *Snapshot) SelectsBy(key string) bool {
	return s.selectedBy[key] || strings.Contains(key, "istio.io/")
}

// SelectorKeysVersion changes when the set of label keys configuration selects by,
// that of WorkloadEntries' label keys, or what EnvoyFilters match proxies by does.
func (s *Snapshot) SelectorKeysVersion() uint64 { return s.selectedByHash }
