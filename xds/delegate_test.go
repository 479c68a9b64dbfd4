package xds

import (
	"fmt"
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	networking "istio.io/api/networking/v1alpha3"
)

const delegateServices = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  ports: [{number: 9080, name: grpc, protocol: GRPC}]
  resolution: STATIC
  endpoints:
  - {address: 10.1.0.1, labels: {version: v1}}
  - {address: 10.1.0.2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: team}
spec:
  hosts: [ratings.team.svc.cluster.local]
  ports: [{number: 9080, name: grpc, protocol: GRPC}]
  resolution: STATIC
  endpoints: [{address: 10.2.0.1}]
`

// delegatedRoutes builds the routes a proxyless client in default gets for reviews,
// as "match -> cluster (timeout)" lines, and the build's errors.
func delegatedRoutes(t *testing.T, config ...string) ([]string, error) {
	t.Helper()
	snap := snapshotOf(t, append([]string{delegateServices, reviewsDR}, config...)...)
	sets, err := grpcProfile().build(newContext(snap, grpcProxy("default", nil), "cluster.local", "istio-system"))
	r := sets[RouteType].ByName["outbound|9080||reviews.default.svc.cluster.local"]
	if r == nil {
		t.Fatalf("no route configuration for reviews (build errors: %v)", err)
	}
	var rc routev3.RouteConfiguration
	if err := r.Body.UnmarshalTo(&rc); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, route := range rc.VirtualHosts[0].Routes {
		m := route.Match
		match := m.GetPrefix() + m.GetPath()
		if sr := m.GetSafeRegex(); sr != nil {
			match = "~" + sr.Regex
		}
		for _, h := range m.Headers {
			match += fmt.Sprintf(" %s=%s", h.Name, h.GetStringMatch().GetExact())
		}
		line := match + " -> " + route.GetRoute().GetCluster()
		if to := route.GetRoute().GetTimeout(); to.AsDuration() > 0 {
			line += fmt.Sprintf(" (%s)", to.AsDuration())
		}
		out = append(out, line)
	}
	return out, err
}

// TestDelegation checks that a route delegating to another VirtualService stands for
// the delegate's routes, each narrowed by the root's match and taking what it does
// not set from the root, and that what cannot be delegated is reported and left out
// without losing the rest of the route configuration.
func TestDelegation(t *testing.T) {
	const root = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: root, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /v2}, headers: {x-team: {exact: blue}}}]
    delegate: {name: %s, namespace: %s}
    timeout: 3s
  - route: [{destination: {host: reviews, subset: v1}}]
`
	for _, tt := range []struct {
		name      string
		delegate  string // namespace/name
		config    string
		want      []string
		wantError string
	}{
		{name: "the delegate's routes narrow the root's match and inherit its timeout",
			delegate: "default/child", config: `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: child, namespace: default}
spec:
  http:
  - match: [{uri: {prefix: /v2/api}}, {uri: {prefix: /v3}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{uri: {exact: /v2/health}}]
    route: [{destination: {host: reviews, subset: v1}}]
    timeout: 1s
  - route: [{destination: {host: reviews}}]
`,
			want: []string{
				"/v2/api x-team=blue -> outbound|9080|v2|reviews.default.svc.cluster.local (3s)",
				"/v2/health x-team=blue -> outbound|9080|v1|reviews.default.svc.cluster.local (1s)",
				"/v2 x-team=blue -> outbound|9080||reviews.default.svc.cluster.local (3s)",
				"/ -> outbound|9080|v1|reviews.default.svc.cluster.local",
			}},
		{name: "a delegate in another namespace resolves its destinations there",
			delegate: "team/child", config: `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: child, namespace: team}
spec:
  exportTo: [default]
  http: [{route: [{destination: {host: ratings}}]}]
`,
			want: []string{
				"/v2 x-team=blue -> outbound|9080||ratings.team.svc.cluster.local (3s)",
				"/ -> outbound|9080|v1|reviews.default.svc.cluster.local",
			}},
		{name: "a missing delegate is reported and its route left out",
			delegate:  "default/nowhere",
			want:      []string{"/ -> outbound|9080|v1|reviews.default.svc.cluster.local"},
			wantError: "VirtualService default/root spec.http[0].delegate: no VirtualService default/nowhere"},
		{name: "a delegate not exported to the root's namespace is reported",
			delegate: "team/private", config: `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: private, namespace: team}
spec:
  exportTo: [.]
  http: [{route: [{destination: {host: ratings}}]}]
`,
			want:      []string{"/ -> outbound|9080|v1|reviews.default.svc.cluster.local"},
			wantError: "VirtualService team/private is not exported to namespace default"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ns, name, _ := strings.Cut(tt.delegate, "/")
			config := []string{fmt.Sprintf(root, name, ns)}
			if tt.config != "" {
				config = append(config, tt.config)
			}
			got, err := delegatedRoutes(t, config...)
			if tt.wantError == "" && err != nil {
				t.Fatalf("unexpected build error: %v", err)
			}
			if tt.wantError != "" && (err == nil || !strings.Contains(err.Error(), tt.wantError)) {
				t.Fatalf("want error %q, got %v", tt.wantError, err)
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("routes:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
		})
	}
}

// TestMergeMatch checks which root and delegate match pairs can both hold.
func TestMergeMatch(t *testing.T) {
	prefix := func(p string) *networking.StringMatch {
		return &networking.StringMatch{MatchType: &networking.StringMatch_Prefix{Prefix: p}}
	}
	exact := func(p string) *networking.StringMatch {
		return &networking.StringMatch{MatchType: &networking.StringMatch_Exact{Exact: p}}
	}
	regex := func(p string) *networking.StringMatch {
		return &networking.StringMatch{MatchType: &networking.StringMatch_Regex{Regex: p}}
	}
	root := &networking.HTTPMatchRequest{Uri: prefix("/api"), Headers: map[string]*networking.StringMatch{"x-team": exact("blue")},
		WithoutHeaders: map[string]*networking.StringMatch{"x-debug": exact("1")}, Port: 8080}
	for _, tt := range []struct {
		name string
		d    *networking.HTTPMatchRequest
		ok   bool
	}{
		{"a longer prefix", &networking.HTTPMatchRequest{Uri: prefix("/api/v1")}, true},
		{"an exact path under the prefix", &networking.HTTPMatchRequest{Uri: exact("/api/health")}, true},
		{"another prefix", &networking.HTTPMatchRequest{Uri: prefix("/web")}, false},
		{"a regex", &networking.HTTPMatchRequest{Uri: regex("/api/.*")}, false},
		{"the same header", &networking.HTTPMatchRequest{Headers: map[string]*networking.StringMatch{"x-team": exact("blue")}}, true},
		{"another value of the header", &networking.HTTPMatchRequest{Headers: map[string]*networking.StringMatch{"x-team": exact("red")}}, false},
		{"another header", &networking.HTTPMatchRequest{Headers: map[string]*networking.StringMatch{"x-user": exact("a")}}, true},
		{"another port", &networking.HTTPMatchRequest{Port: 9090}, false},
		{"the same negated header", &networking.HTTPMatchRequest{WithoutHeaders: map[string]*networking.StringMatch{"x-debug": exact("1")}}, true},
		{"a different negated header match", &networking.HTTPMatchRequest{WithoutHeaders: map[string]*networking.StringMatch{"x-debug": prefix("1")}}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, ok := mergeMatch(root, tt.d)
			if ok != tt.ok {
				t.Fatalf("merged %v, want %v", ok, tt.ok)
			}
			if ok && (m.Uri == nil || m.Headers["x-team"] == nil || m.WithoutHeaders["x-debug"] == nil || m.Port != 8080) {
				t.Errorf("the merged match lost the root's conditions: %v", m)
			}
		})
	}
}
