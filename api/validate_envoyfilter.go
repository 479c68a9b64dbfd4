package api

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	//lint:ignore SA1019 Istio decodes patch values with it; navarch must read them alike
	"github.com/golang/protobuf/jsonpb"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/structpb"
	networking "istio.io/api/networking/v1alpha3"
	typev1beta1 "istio.io/api/type/v1beta1"
)

// httpConnectionManager is the name of Envoy's HTTP connection manager network
// filter, the only filter an EnvoyFilter's subFilter match may be inside (with its
// deprecated name, which Istio still takes).
const (
	httpConnectionManager           = "envoy.filters.network.http_connection_manager"
	deprecatedHTTPConnectionManager = "envoy.http_connection_manager"
	// MaxProxyVersionLength bounds a proxyVersion match: istiod compiles no longer
	// one, and it matches no proxy.
	MaxProxyVersionLength = 1024
)

// validateEnvoyFilter checks an EnvoyFilter as Istio's ValidateEnvoyFilter and CRD do:
// the selector or targetRefs, and for each patch that applyTo, operation and value
// are given and agree with its match, and that the value is a valid JSON form of the
// Envoy message applyTo names (EnvoyFilterValue), whose typed configs name types
// Istio knows (envoy_types.go). Patches in the WAYPOINT context are for waypoints,
// which navarch does not run; they are checked as the CRD checks them only.
func validateEnvoyFilter(p *problems, ef *networking.EnvoyFilter) {
	if ef.WorkloadSelector != nil && len(ef.TargetRefs) > 0 {
		p.add("spec", "only one of targetRefs or workloadSelector can be set")
	}
	if ef.WorkloadSelector != nil {
		validateSelectorLabels(p, "spec.workloadSelector.labels", ef.WorkloadSelector.Labels)
	}
	if len(ef.TargetRefs) > maxTargetRefs {
		p.add("spec.targetRefs", "must have at most %d items, got %d", maxTargetRefs, len(ef.TargetRefs))
	}
	for i, r := range ef.TargetRefs {
		validateEnvoyFilterTargetRef(p, index("spec.targetRefs", i), r)
	}
	for i, cp := range ef.ConfigPatches {
		validateConfigPatch(p, index("spec.configPatches", i), cp)
	}
}

// maxTargetRefs is how many targetRefs Istio's CRDs allow.
const maxTargetRefs = 16

var (
	targetGroupPattern = regexp.MustCompile(`^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	targetKindPattern  = regexp.MustCompile(`^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$`)
)

// validateEnvoyFilterTargetRef checks a reference as the EnvoyFilter CRD does: any
// kind, in the filter's namespace.
func validateEnvoyFilterTargetRef(p *problems, path string, r *typev1beta1.PolicyTargetReference) {
	if r == nil {
		p.add(path, "must not be null")
		return
	}
	if len(r.Group) > 253 || !targetGroupPattern.MatchString(r.Group) {
		p.add(field(path, "group"), "invalid group %q", r.Group)
	}
	if r.Kind == "" {
		p.add(field(path, "kind"), "required")
	} else if len(r.Kind) > 63 || !targetKindPattern.MatchString(r.Kind) {
		p.add(field(path, "kind"), "invalid kind %q", r.Kind)
	}
	if r.Name == "" {
		p.add(field(path, "name"), "required")
	} else if len(r.Name) > 253 {
		p.add(field(path, "name"), "must be at most 253 characters, got %d", len(r.Name))
	}
	if r.Namespace != "" {
		p.add(field(path, "namespace"), "must not be set; cross-namespace references are not supported, got %q", r.Namespace)
	}
}

func validateConfigPatch(p *problems, path string, cp *networking.EnvoyFilter_EnvoyConfigObjectPatch) {
	if cp == nil {
		p.add(path, "must not be null")
		return
	}
	match := cp.Match
	if match != nil {
		mp := field(path, "match")
		switch {
		case match.Context == networking.EnvoyFilter_WAYPOINT && match.GetWaypoint() == nil:
			p.add(field(mp, "waypoint"), "required with context WAYPOINT")
		case match.Context != networking.EnvoyFilter_WAYPOINT && match.GetWaypoint() != nil:
			p.add(field(mp, "waypoint"), "may only be set with context WAYPOINT, got %s", match.Context)
		}
		if match.Context == networking.EnvoyFilter_WAYPOINT {
			if port := match.GetWaypoint().GetPortNumber(); port > 65535 {
				p.add(field(mp, "waypoint.portNumber"), "must be 1-65535, got %d", port)
			}
			return // as Istio: the rest is for waypoints to judge
		}
	}
	switch {
	case cp.ApplyTo == networking.EnvoyFilter_INVALID:
		p.add(field(path, "applyTo"), "required")
		return
	case cp.Patch == nil:
		p.add(field(path, "patch"), "required")
		return
	case cp.Patch.Operation == networking.EnvoyFilter_Patch_INVALID:
		p.add(field(path, "patch.operation"), "required")
		return
	case cp.Patch.Operation != networking.EnvoyFilter_Patch_REMOVE && cp.Patch.Value == nil:
		p.add(field(path, "patch.value"), "required for operation %s", cp.Patch.Operation)
		return
	}
	if v := match.GetProxy().GetProxyVersion(); v != "" && len(v) <= MaxProxyVersionLength {
		if _, err := regexp.Compile(v); err != nil {
			p.add(field(path, "match.proxy.proxyVersion"), "invalid regex %q: %v", v, err)
			return
		}
	}
	if !validatePatchMatch(p, path, cp) {
		return
	}
	if _, err := EnvoyFilterValue(cp.ApplyTo, cp.Patch.Value); err != nil {
		p.add(field(path, "patch.value"), "%v", err)
	}
}

// validatePatchMatch checks that a patch's match is of the kind of object applyTo
// names, and its filter matches; false stops the patch's checks, as in Istio.
func validatePatchMatch(p *problems, path string, cp *networking.EnvoyFilter_EnvoyConfigObjectPatch) bool {
	match := cp.Match
	if match == nil || match.ObjectTypes == nil {
		return true
	}
	mp := field(path, "match")
	switch cp.ApplyTo {
	case networking.EnvoyFilter_LISTENER, networking.EnvoyFilter_FILTER_CHAIN,
		networking.EnvoyFilter_NETWORK_FILTER, networking.EnvoyFilter_HTTP_FILTER:
		lm := match.GetListener()
		if lm == nil {
			p.add(mp, "applyTo %s needs a listener match", cp.ApplyTo)
			return false
		}
		filter := lm.GetFilterChain().GetFilter()
		if filter == nil {
			return true
		}
		fp := field(mp, "listener.filterChain.filter")
		switch {
		case filter.Name == "":
			p.add(field(fp, "name"), "required: a filter match must name the filter")
			return false
		case filter.SubFilter == nil:
		case cp.ApplyTo != networking.EnvoyFilter_HTTP_FILTER:
			p.add(field(fp, "subFilter"), "may only be used with applyTo HTTP_FILTER, got %s", cp.ApplyTo)
			return false
		case filter.Name != httpConnectionManager && filter.Name != deprecatedHTTPConnectionManager:
			p.add(field(fp, "subFilter"), "needs the filter match to name %s, got %q", httpConnectionManager, filter.Name)
			return false
		case filter.SubFilter.Name == "":
			p.add(field(fp, "subFilter.name"), "required: a subFilter match must name the HTTP filter")
			return false
		}
	case networking.EnvoyFilter_ROUTE_CONFIGURATION, networking.EnvoyFilter_VIRTUAL_HOST, networking.EnvoyFilter_HTTP_ROUTE:
		if match.GetRouteConfiguration() == nil {
			p.add(mp, "applyTo %s needs a routeConfiguration match", cp.ApplyTo)
		}
	case networking.EnvoyFilter_CLUSTER:
		if match.GetCluster() == nil {
			p.add(mp, "applyTo %s needs a cluster match", cp.ApplyTo)
		}
	}
	return true
}

// EnvoyFilterValue returns a patch's value as the Envoy message applyTo names (a
// Listener for LISTENER, an HttpFilter for HTTP_FILTER, ...), decoded from its JSON
// form as Istio decodes it: field names in either case, typed configs by their
// "@type" among the types Istio knows. Unlike Istio, which takes unknown fields and
// drops them, navarch refuses them, naming the field. A nil value (REMOVE) is nil.
func EnvoyFilterValue(applyTo networking.EnvoyFilter_ApplyTo, value *structpb.Struct) (proto.Message, error) {
	if value == nil {
		return nil, nil
	}
	msg := envoyFilterTarget(applyTo)
	if msg == nil {
		return nil, fmt.Errorf("no Envoy type for applyTo %s", applyTo)
	}
	b, err := protojson.Marshal(value)
	if err != nil {
		return nil, err
	}
	// Istio decodes with jsonpb (durations as time.ParseDuration reads them, enums
	// by name or number), taking unknown fields; navarch strictly. A value that
	// fails is decoded again as Istio decodes it, to tell what Istio refuses too
	// from what only navarch does. (A valid value, every one a build reads, is
	// decoded once.)
	strictErr := (&jsonpb.Unmarshaler{}).Unmarshal(bytes.NewReader(b), protoadapt.MessageV1Of(msg))
	if strictErr == nil {
		return msg, nil
	}
	proto.Reset(msg)
	if err := (&jsonpb.Unmarshaler{AllowUnknownFields: true}).Unmarshal(bytes.NewReader(b), protoadapt.MessageV1Of(msg)); err != nil {
		return nil, fmt.Errorf("not a valid %s: %s", proto.MessageName(msg), envoyJSONError(err))
	}
	return nil, fmt.Errorf("not a valid %s: %s (navarch refuses what it would drop)", proto.MessageName(msg), envoyJSONError(strictErr))
}

// envoyJSONError is jsonpb's reason, with unknown types explained.
func envoyJSONError(err error) string {
	s := err.Error()
	if strings.Contains(s, "could not resolve Any message type") {
		s += " (the type is not one of Envoy's or Istio's; v2 types are gone: use v3)"
	}
	return s
}

// envoyFilterTarget returns an empty message of the Envoy type applyTo patches, nil
// for none.
func envoyFilterTarget(applyTo networking.EnvoyFilter_ApplyTo) proto.Message {
	switch applyTo {
	case networking.EnvoyFilter_LISTENER:
		return &listenerv3.Listener{}
	case networking.EnvoyFilter_FILTER_CHAIN:
		return &listenerv3.FilterChain{}
	case networking.EnvoyFilter_NETWORK_FILTER:
		return &listenerv3.Filter{}
	case networking.EnvoyFilter_HTTP_FILTER:
		return &hcmv3.HttpFilter{}
	case networking.EnvoyFilter_LISTENER_FILTER:
		return &listenerv3.ListenerFilter{}
	case networking.EnvoyFilter_ROUTE_CONFIGURATION:
		return &routev3.RouteConfiguration{}
	case networking.EnvoyFilter_VIRTUAL_HOST:
		return &routev3.VirtualHost{}
	case networking.EnvoyFilter_HTTP_ROUTE:
		return &routev3.Route{}
	case networking.EnvoyFilter_CLUSTER:
		return &clusterv3.Cluster{}
	case networking.EnvoyFilter_EXTENSION_CONFIG:
		return &corev3.TypedExtensionConfig{}
	case networking.EnvoyFilter_BOOTSTRAP:
		return &bootstrapv3.Bootstrap{}
	}
	return nil
}
