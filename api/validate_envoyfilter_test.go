package api

import (
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	networking "istio.io/api/networking/v1alpha3"
)

func TestEnvoyFilterAccepted(t *testing.T) {
	r := mustDecode(t, specDoc(EnvoyFilter, `{workloadSelector: {labels: {app: a}}, configPatches: [
	  {applyTo: HTTP_FILTER,
	   match: {context: SIDECAR_INBOUND, listener: {filterChain: {filter: {name: envoy.filters.network.http_connection_manager, subFilter: {name: envoy.filters.http.router}}}}},
	   patch: {operation: INSERT_BEFORE, value: {name: lua, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua, inline_code: "x"}}}},
	  {applyTo: CLUSTER, match: {cluster: {service: a.ns.svc.cluster.local}}, patch: {operation: MERGE, value: {connectTimeout: 1m30s, lb_policy: 1}}},
	  {applyTo: LISTENER, patch: {operation: REMOVE}}]}`))
	if r.Kind != EnvoyFilter || r.Kind.APIVersion() != "networking.istio.io/v1alpha3" {
		t.Fatalf("decoded as %s %s", r.Kind, r.Kind.APIVersion())
	}
	patches := r.Spec.(*networking.EnvoyFilter).ConfigPatches
	v, err := EnvoyFilterValue(patches[0].ApplyTo, patches[0].Patch.Value)
	if err != nil {
		t.Fatal(err)
	}
	if f := v.(*hcmv3.HttpFilter); f.Name != "lua" || f.GetTypedConfig().GetTypeUrl() != "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua" {
		t.Errorf("HTTP filter value = %v", f)
	}
	// As Istio reads values: durations as Go writes them, enums by number too.
	v, err = EnvoyFilterValue(patches[1].ApplyTo, patches[1].Patch.Value)
	if err != nil {
		t.Fatal(err)
	}
	if c := v.(*clusterv3.Cluster); c.ConnectTimeout.AsDuration().Seconds() != 90 || c.LbPolicy != clusterv3.Cluster_LEAST_REQUEST {
		t.Errorf("cluster value = %v", c)
	}
	if v, err := EnvoyFilterValue(patches[2].ApplyTo, patches[2].Patch.Value); v != nil || err != nil {
		t.Errorf("REMOVE's value = %v, %v; want none", v, err)
	}
}

func TestEnvoyFilterRejected(t *testing.T) {
	hcm := `{name: envoy.filters.network.http_connection_manager, subFilter: {name: envoy.filters.http.router}}`
	runRejections(t, []rejection{
		{name: "no applyTo", kind: EnvoyFilter, spec: `{configPatches: [{patch: {operation: REMOVE}}]}`,
			field: "spec.configPatches[0].applyTo", reason: "required"},
		{name: "no operation", kind: EnvoyFilter, spec: `{configPatches: [{applyTo: CLUSTER, patch: {value: {}}}]}`,
			field: "spec.configPatches[0].patch.operation", reason: "required"},
		{name: "no value to merge", kind: EnvoyFilter, spec: `{configPatches: [{applyTo: CLUSTER, patch: {operation: MERGE}}]}`,
			field: "spec.configPatches[0].patch.value", reason: "required for operation MERGE"},
		{name: "a bad proxy version regex", kind: EnvoyFilter, spec: `{configPatches: [{applyTo: CLUSTER, match: {proxy: {proxyVersion: "1.(2"}}, patch: {operation: REMOVE}}]}`,
			field: "spec.configPatches[0].match.proxy.proxyVersion", reason: "invalid regex"},
		{name: "a cluster patch matching listeners", kind: EnvoyFilter, spec: `{configPatches: [{applyTo: CLUSTER, match: {listener: {portNumber: 80}}, patch: {operation: REMOVE}}]}`,
			field: "spec.configPatches[0].match", reason: "needs a cluster match"},
		{name: "a route patch matching clusters", kind: EnvoyFilter, spec: `{configPatches: [{applyTo: HTTP_ROUTE, match: {cluster: {name: a}}, patch: {operation: REMOVE}}]}`,
			field: "spec.configPatches[0].match", reason: "needs a routeConfiguration match"},
		{name: "a listener patch matching routes", kind: EnvoyFilter, spec: `{configPatches: [{applyTo: NETWORK_FILTER, match: {routeConfiguration: {}}, patch: {operation: REMOVE}}]}`,
			field: "spec.configPatches[0].match", reason: "needs a listener match"},
		{name: "a filter match without a name", kind: EnvoyFilter, spec: `{configPatches: [{applyTo: NETWORK_FILTER, match: {listener: {filterChain: {filter: {}}}}, patch: {operation: REMOVE}}]}`,
			field: "spec.configPatches[0].match.listener.filterChain.filter.name", reason: "required"},
		{name: "a subFilter for a network filter", kind: EnvoyFilter, spec: `{configPatches: [{applyTo: NETWORK_FILTER, match: {listener: {filterChain: {filter: ` + hcm + `}}}, patch: {operation: REMOVE}}]}`,
			field: "spec.configPatches[0].match.listener.filterChain.filter.subFilter", reason: "only be used with applyTo HTTP_FILTER"},
		{name: "a subFilter outside the connection manager", kind: EnvoyFilter, spec: `{configPatches: [{applyTo: HTTP_FILTER, match: {listener: {filterChain: {filter: {name: tcp, subFilter: {name: a}}}}}, patch: {operation: REMOVE}}]}`,
			field: "spec.configPatches[0].match.listener.filterChain.filter.subFilter", reason: "needs the filter match to name envoy.filters.network.http_connection_manager"},
		{name: "a value of the wrong shape", kind: EnvoyFilter, spec: `{configPatches: [{applyTo: CLUSTER, patch: {operation: ADD, value: {name: [a]}}}]}`,
			field: "spec.configPatches[0].patch.value", reason: "not a valid envoy.config.cluster.v3.Cluster"},
		{name: "an unknown typed config", kind: EnvoyFilter, spec: `{configPatches: [{applyTo: HTTP_FILTER, patch: {operation: ADD, value: {name: a, typed_config: {"@type": type.googleapis.com/envoy.config.filter.http.lua.v2.Lua}}}}]}`,
			field: "spec.configPatches[0].patch.value", reason: "v2 types are gone"},
		{name: "an unknown field (Istio drops it)", kind: EnvoyFilter, spec: `{configPatches: [{applyTo: CLUSTER, patch: {operation: MERGE, value: {conect_timeout: 1s}}}]}`,
			field: "spec.configPatches[0].patch.value", reason: `unknown field "conect_timeout"`},
		{name: "a waypoint context without its match", kind: EnvoyFilter, spec: `{configPatches: [{applyTo: CLUSTER, match: {context: WAYPOINT}, patch: {operation: REMOVE}}]}`,
			field: "spec.configPatches[0].match.waypoint", reason: "required with context WAYPOINT"},
		{name: "a waypoint match in another context", kind: EnvoyFilter, spec: `{configPatches: [{applyTo: CLUSTER, match: {context: GATEWAY, waypoint: {portNumber: 80}}, patch: {operation: REMOVE}}]}`,
			field: "spec.configPatches[0].match.waypoint", reason: "only be set with context WAYPOINT"},
		{name: "a selector and targetRefs", kind: EnvoyFilter, spec: `{workloadSelector: {labels: {app: a}}, targetRefs: [{kind: Gateway, name: g}]}`,
			field: "spec", reason: "only one of targetRefs or workloadSelector"},
		{name: "a targetRef to another namespace", kind: EnvoyFilter, spec: `{targetRefs: [{kind: Gateway, name: g, namespace: other}]}`,
			field: "spec.targetRefs[0].namespace", reason: "cross-namespace"},
		{name: "a wildcard selector", kind: EnvoyFilter, spec: `{workloadSelector: {labels: {app: "*"}}}`,
			field: "spec.workloadSelector.labels[app]", reason: "wildcards"},
	})
}
