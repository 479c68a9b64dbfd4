package xds

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbacnetworkv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/navarch/navarch/registry"
)

func TestPeerAuthMode(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "inputs", "security.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	snap := snapshotOf(t, string(data), `
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: DISABLE}}
`)
	ratings := map[string]string{"app": "ratings"}
	tests := []struct {
		name   string
		ns     string
		labels map[string]string
		port   uint32
		want   mtlsMode
	}{
		{"the namespace policy", "shop", nil, 9090, mtlsStrict},
		{"a workload policy set to UNSET inherits the namespace's", "shop", ratings, 9090, mtlsStrict},
		{"a workload port-level setting wins", "shop", ratings, 8081, mtlsPermissive},
		{"the mesh policy where the namespace has none", "other", nil, 9090, mtlsDisable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := peerAuthMode(snap, "istio-system", tt.ns, tt.labels, tt.port); got != tt.want {
				t.Fatalf("mode %d, want %d", got, tt.want)
			}
		})
	}
	empty := registry.NewSnapshot(nil, 1, "cluster.local")
	if got := peerAuthMode(empty, "istio-system", "shop", nil, 80); got != mtlsPermissive {
		t.Fatalf("without any policy: %d, want PERMISSIVE", got)
	}
}

// TestTranslateSecurity compares what a client and a server in namespace shop get
// for testdata/inputs/security.yaml with its golden file: the client's cluster
// carries mTLS with the server's SPIFFE ID; the server's inbound listener requires
// client certificates and runs the DENY then ALLOW RBAC filters.
func TestTranslateSecurity(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "inputs", "security.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	snap := snapshotOf(t, string(data))
	client := grpcProxy("shop", map[string]string{"app": "frontend"})
	sets, err := grpcProfile().build(newContext(snap, client, "cluster.local", "istio-system"))
	if err != nil {
		t.Fatal(err)
	}
	server := grpcProxy("shop", map[string]string{"app": "ratings"})
	s := &Server{cfg: DefaultConfig()}
	for _, port := range []string{"9090", "8081"} {
		r := s.buildNamed(&Build{snap: snap}, server, ListenerType, InboundListenerPrefix+"10.0.0.1:"+port)
		if r == nil {
			t.Fatalf("no inbound listener for port %s", port)
		}
		sets[ListenerType].ByName[r.Name] = r
	}
	checkGolden(t, filepath.Join("testdata", "security.golden.yaml"), dump(t, sets))

	// The same server behind an Envoy sidecar: its virtual inbound listener has mTLS-only
	// chains for the STRICT ports (9090 and the rest) and PERMISSIVE ones for 8081, the
	// RBAC filters on HTTP (9090) and TCP (8081, passthrough); its outbound cluster to
	// ratings speaks HTTP/2 over mTLS offering the mesh's ALPN and h2.
	sidecar := *server
	sidecar.Generator = ""
	sets, err = sidecarProfile().build(newContext(snap, &sidecar, "cluster.local", "istio-system"))
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, filepath.Join("testdata", "security.sidecar.golden.yaml"), dump(t, sets))
}

// TestSidecarInboundChains checks what each PeerAuthentication mode lets through an
// Envoy sidecar's virtual inbound listener, port by port.
func TestSidecarInboundChains(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "inputs", "security.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	chainsByPort := func(snap *registry.Snapshot, labels map[string]string) map[uint32][]string {
		p := grpcProxy("shop", labels)
		p.Generator = ""
		l, _ := inboundListeners(newContext(snap, p, "cluster.local", "istio-system"))
		out := map[uint32][]string{}
		for _, fc := range l.FilterChains {
			m := fc.GetFilterChainMatch()
			port := m.GetDestinationPort().GetValue()
			desc := fc.Name + " " + m.GetTransportProtocol()
			if fc.TransportSocket != nil {
				desc += " mtls"
			}
			out[port] = append(out[port], desc)
		}
		return out
	}
	tests := []struct {
		name   string
		extra  string
		labels map[string]string
		want   map[uint32][]string
	}{
		{"STRICT namespace, a PERMISSIVE port, a service port", "", map[string]string{"app": "ratings"}, map[uint32][]string{
			15006: {"virtualInbound-blackhole "},
			// A port only the PeerAuthentication names: passthrough chains, named as
			// the virtual inbound listener's (HTTP and TCP, apart by ALPN).
			8081: {"virtualInbound-catchall-http tls mtls", "virtualInbound tls mtls", "virtualInbound tls",
				"virtualInbound-catchall-http raw_buffer", "virtualInbound raw_buffer"},
			9090: {"0.0.0.0_9090 tls mtls"},
			0:    {"virtualInbound-catchall-http tls mtls", "virtualInbound tls mtls"},
		}},
		{"a workload no service selects", "", map[string]string{"app": "other"}, map[uint32][]string{
			15006: {"virtualInbound-blackhole "},
			0:     {"virtualInbound-catchall-http tls mtls", "virtualInbound tls mtls"},
		}},
		{"DISABLE for the namespace", `
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: shop}
spec: {mtls: {mode: DISABLE}}
`, map[string]string{"app": "other"}, map[uint32][]string{
			15006: {"virtualInbound-blackhole "},
			0:     {"virtualInbound-catchall-http raw_buffer", "virtualInbound raw_buffer"}, // no TLS inspector: all of it raw_buffer
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			input := string(data)
			if tt.extra != "" {
				// The extra policy replaces the namespace's (the oldest wins, so drop it).
				input = strings.Replace(input, "metadata: {name: default, namespace: shop}\nspec: {mtls: {mode: STRICT}}", "metadata: {name: strict, namespace: elsewhere}\nspec: {mtls: {mode: STRICT}}", 1)
			}
			got := chainsByPort(snapshotOf(t, input, tt.extra), tt.labels)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("chains by port:\n got %v\nwant %v", got, tt.want)
			}
		})
	}
}

// TestTCPAuthorization checks AuthorizationPolicy on TCP traffic: an ALLOW rule that
// tests HTTP-only fields matches nothing; a DENY rule loses those tests and denies more.
func TestTCPAuthorization(t *testing.T) {
	snap := snapshotOf(t, `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow, namespace: shop}
spec:
  rules:
  - to: [{operation: {methods: [GET]}}]
  - from: [{source: {namespaces: [shop]}}]
    to: [{operation: {ports: ["5432"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny, namespace: shop}
spec:
  action: DENY
  rules:
  - from: [{source: {namespaces: [legacy]}}]
    to: [{operation: {paths: [/admin]}}]
`)
	ctx := newContext(snap, grpcProxy("shop", nil), "cluster.local", "istio-system")
	set := authzPolicies(ctx, "shop", nil)
	allow, deny := set.allow, set.deny
	allowRules := rbacRules(ctx, rbacv3.RBAC_ALLOW, allow, true, nil)
	if _, ok := allowRules.Policies["ns[shop]-policy[allow]-rule[0]"]; ok || len(allowRules.Policies) != 1 {
		t.Fatalf("ALLOW on TCP: want only rule 1, got %v", allowRules.Policies)
	}
	denyRule := rbacRules(ctx, rbacv3.RBAC_DENY, deny, true, nil).Policies["ns[shop]-policy[deny]-rule[0]"]
	if denyRule == nil || !denyRule.Permissions[0].GetAny() {
		t.Fatalf("DENY on TCP: want the rule with any permission (paths dropped), got %v", denyRule)
	}
	if httpRule := rbacRules(ctx, rbacv3.RBAC_DENY, deny, false, nil).Policies["ns[shop]-policy[deny]-rule[0]"]; httpRule.Permissions[0].GetAny() {
		t.Fatal("DENY on HTTP lost its path")
	}
}

// TestDryRunAndAuditPolicies: a dry-run policy (istio.io/dry-run) goes into its
// filter's shadow rules, evaluated but not enforced; a filter whose policies are all
// dry-run enforces nothing (no rules). AUDIT policies get an RBAC filter of the LOG
// action ahead of DENY and ALLOW on Envoy; on TCP, an AUDIT rule loses its HTTP
// tests as a DENY rule does. Proxyless gRPC, which evaluates no shadow rules and
// ignores LOG, gets neither, and its enforced policies as before.
func TestDryRunAndAuditPolicies(t *testing.T) {
	snap := snapshotOf(t, `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny, namespace: shop}
spec:
  action: DENY
  rules: [{to: [{operation: {paths: [/admin]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-trial, namespace: shop, annotations: {istio.io/dry-run: "true"}}
spec:
  action: DENY
  rules: [{to: [{operation: {paths: [/beta]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-trial, namespace: shop, annotations: {istio.io/dry-run: "true"}}
spec:
  rules: [{from: [{source: {namespaces: [shop]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: not-a-trial, namespace: shop, annotations: {istio.io/dry-run: "false"}}
spec:
  action: DENY
  rules: [{from: [{source: {namespaces: [legacy]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: audit, namespace: shop}
spec:
  action: AUDIT
  rules: [{to: [{operation: {methods: [POST]}}]}]
`)
	type filter interface {
		GetName() string
		GetTypedConfig() *anypb.Any
	}
	describe := func(fs []filter) []string {
		var out []string
		for _, f := range fs {
			rules, shadow, prefix, ok := rbacOf(f.GetTypedConfig())
			if !ok {
				continue
			}
			d := f.GetName()
			for _, r := range []struct {
				what  string
				rules *rbacv3.RBAC
			}{{"rules", rules}, {"shadow", shadow}} {
				if r.rules != nil {
					d += fmt.Sprintf(" %s %s %v", r.what, r.rules.Action, slices.Sorted(maps.Keys(r.rules.Policies)))
				}
			}
			out = append(out, d+" "+prefix)
		}
		return out
	}
	envoy := grpcProxy("shop", nil)
	envoy.Generator = ""
	ctx := newContext(snap, envoy, "cluster.local", "istio-system")
	var http, tcp []filter
	for _, f := range rbacFilters(ctx, "shop", nil) {
		http = append(http, f)
	}
	for _, f := range rbacNetworkFilters(ctx, "shop", nil) {
		tcp = append(tcp, f)
	}
	want := []string{
		"envoy.filters.http.rbac rules LOG [ns[shop]-policy[audit]-rule[0]] istio_dry_run_allow_",
		"envoy.filters.http.rbac rules DENY [ns[shop]-policy[deny]-rule[0] ns[shop]-policy[not-a-trial]-rule[0]] shadow DENY [ns[shop]-policy[deny-trial]-rule[0]] istio_dry_run_deny_",
		"envoy.filters.http.rbac shadow ALLOW [ns[shop]-policy[allow-trial]-rule[0]] istio_dry_run_allow_",
	}
	if got := describe(http); !slices.Equal(got, want) {
		t.Errorf("Envoy HTTP:\n got %q\nwant %q", got, want)
	}
	for i := range want {
		want[i] = strings.Replace(want[i], "http.rbac", "network.rbac", 1)
	}
	if got := describe(tcp); !slices.Equal(got, want) {
		t.Errorf("Envoy TCP:\n got %q\nwant %q", got, want)
	}
	var audit rbacnetworkv3.RBAC
	if err := tcp[0].GetTypedConfig().UnmarshalTo(&audit); err != nil || !audit.Rules.Policies["ns[shop]-policy[audit]-rule[0]"].Permissions[0].GetAny() {
		t.Errorf("AUDIT on TCP: want the rule without its methods (any permission), got %v", audit.Rules)
	}

	grpcCtx := newContext(snap, grpcProxy("shop", nil), "cluster.local", "istio-system")
	var grpc []filter
	for _, f := range rbacFilters(grpcCtx, "shop", nil) {
		grpc = append(grpc, f)
	}
	if got, want := describe(grpc), []string{"envoy.filters.http.rbac.DENY rules DENY [ns[shop]-policy[deny]-rule[0] ns[shop]-policy[not-a-trial]-rule[0]] "}; !slices.Equal(got, want) {
		t.Errorf("proxyless gRPC:\n got %q\nwant %q", got, want)
	}
}

// TestCustomAuthorizationFailsClosed: a CUSTOM policy names an extension provider
// the mesh config does not have, so, as Istio does for a provider it cannot find,
// the requests it matches are denied, and the build says why; an AUDIT policy
// changes nothing.
func TestCustomAuthorizationFailsClosed(t *testing.T) {
	snap := snapshotOf(t, `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext-authz, namespace: shop}
spec:
  action: CUSTOM
  provider: {name: opa}
  rules: [{to: [{operation: {paths: [/admin*]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: audit, namespace: shop}
spec:
  action: AUDIT
  rules: [{to: [{operation: {paths: [/audited]}}]}]
`)
	envoy := grpcProxy("shop", nil)
	envoy.Generator = ""
	ctx := newContext(snap, envoy, "cluster.local", "istio-system")
	set := authzPolicies(ctx, "shop", nil)
	allow, deny, custom := set.allow, set.deny, set.custom
	authzPolicies(ctx, "shop", nil) // a second look does not report again
	if len(allow) != 0 || len(deny) != 1 || deny[0].Meta.Name != "ext-authz" || custom != nil {
		t.Fatalf("want the CUSTOM policy among the DENY ones only, got allow %d, deny %v", len(allow), deny)
	}
	if len(ctx.errs) != 1 || !strings.Contains(ctx.errs[0].Error(), `AuthorizationPolicy shop/ext-authz: action CUSTOM: provider "opa": the mesh config has no extension provider of that name`) {
		t.Fatalf("want the CUSTOM policy reported once, got %v", ctx.errs)
	}
	rule := rbacRules(ctx, rbacv3.RBAC_DENY, deny, false, nil).Policies["ns[shop]-policy[ext-authz]-rule[0]"]
	if rule == nil || rule.Permissions[0].GetAny() {
		t.Fatalf("want a DENY rule on the policy's paths, got %v", rule)
	}
}

// TestServerSANs: a client under mTLS accepts the servers' workload identities and
// the ServiceEntry's subjectAltNames, unless the DestinationRule lists its own.
func TestServerSANs(t *testing.T) {
	const se = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: shop}
spec:
  hosts: [db.shop.svc.cluster.local]
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  resolution: STATIC
  subjectAltNames: ["spiffe://legacy.example/db"]
  endpoints: [{address: 10.0.0.7, serviceAccount: db}]
`
	sans := func(dr string) []string {
		snap := snapshotOf(t, se, dr)
		sets, err := grpcProfile().build(newContext(snap, grpcProxy("shop", nil), "cluster.local", "istio-system"))
		if err != nil {
			t.Fatal(err)
		}
		var c clusterv3.Cluster
		if err := sets[ClusterType].ByName["outbound|5432||db.shop.svc.cluster.local"].Body.UnmarshalTo(&c); err != nil {
			t.Fatal(err)
		}
		var tlsCtx tlsv3.UpstreamTlsContext
		if err := c.GetTransportSocket().GetTypedConfig().UnmarshalTo(&tlsCtx); err != nil {
			t.Fatalf("no mTLS on the cluster: %v", err)
		}
		var out []string
		//lint:ignore SA1019 what navarch sets, for grpc-go
		for _, m := range tlsCtx.GetCommonTlsContext().GetValidationContext().GetMatchSubjectAltNames() { // grpc-go's form
			out = append(out, m.GetExact())
		}
		return out
	}
	const mutual = `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: db, namespace: shop}
spec: {host: db.shop.svc.cluster.local, trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}}
`
	if got := strings.Join(sans(mutual), ","); got != "spiffe://cluster.local/ns/shop/sa/db,spiffe://legacy.example/db" {
		t.Errorf("SANs %s, want the workload's identity and the ServiceEntry's", got)
	}
	own := strings.Replace(mutual, "mode: ISTIO_MUTUAL", "mode: ISTIO_MUTUAL, subjectAltNames: [spiffe://cluster.local/ns/shop/sa/only]", 1)
	if got := strings.Join(sans(own), ","); got != "spiffe://cluster.local/ns/shop/sa/only" {
		t.Errorf("SANs %s, want the DestinationRule's only", got)
	}
}

// TestTrustDomains: source.trustDomains (and notTrustDomains) match the peer's SPIFFE
// trust domain; an ALLOW rule that names one admits no other.
func TestTrustDomains(t *testing.T) {
	snap := snapshotOf(t, `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: partners, namespace: shop}
spec:
  rules: [{from: [{source: {trustDomains: [partner.example], notTrustDomains: [evil.example]}}]}]
`)
	ctx := newContext(snap, grpcProxy("shop", nil), "cluster.local", "istio-system")
	allow := authzPolicies(ctx, "shop", nil).allow
	rule := rbacRules(ctx, rbacv3.RBAC_ALLOW, allow, false, nil).Policies["ns[shop]-policy[partners]-rule[0]"]
	ids := rule.GetPrincipals()[0].GetAndIds().GetIds()
	if len(ids) != 2 {
		t.Fatalf("want both conditions, got %v", rule.GetPrincipals())
	}
	if p := ids[0].GetAuthenticated().GetPrincipalName().GetPrefix(); p != "spiffe://partner.example/" {
		t.Errorf("trustDomains: prefix %q", p)
	}
	if p := ids[1].GetNotId().GetAuthenticated().GetPrincipalName().GetPrefix(); p != "spiffe://evil.example/" {
		t.Errorf("notTrustDomains: %v", ids[1])
	}
}

// TestPathsNormalizedBeforeRBAC: the HTTP connection managers that run RBAC (a
// sidecar's inbound ports, a gateway's) normalize paths first.
func TestPathsNormalizedBeforeRBAC(t *testing.T) {
	snap := snapshotOf(t, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: shop}
spec:
  hosts: [web.shop.svc.cluster.local]
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: web}}
`)
	var seen bool
	for _, f := range inboundHTTPFilters(t, snap) {
		seen = true
		if !f.GetNormalizePath().GetValue() {
			t.Errorf("inbound HTTP connection manager %s does not normalize paths", f.StatPrefix)
		}
	}
	if !seen {
		t.Fatal("no inbound HTTP connection manager")
	}
}

// inboundHTTPFilters returns the HTTP connection managers of the virtual inbound
// listener of an Envoy sidecar app=web in shop.
func inboundHTTPFilters(t *testing.T, snap *registry.Snapshot) []*hcmv3.HttpConnectionManager {
	t.Helper()
	sets := envoySidecar(t, snap, "shop", map[string]string{"app": "web"})
	var l listenerv3.Listener
	if err := sets[ListenerType].ByName[virtualInbound].Body.UnmarshalTo(&l); err != nil {
		t.Fatal(err)
	}
	var out []*hcmv3.HttpConnectionManager
	for _, fc := range l.FilterChains {
		for _, f := range fc.Filters {
			var hcm hcmv3.HttpConnectionManager
			if f.GetTypedConfig().UnmarshalTo(&hcm) == nil {
				out = append(out, &hcm)
			}
		}
	}
	return out
}

// TestPermissiveServerWithIstioTLSMode: a proxyless server under PERMISSIVE is
// plaintext, unless it carries Istio's security.istio.io/tlsMode: istio, which tells
// clients it takes mTLS: then it requires mTLS, as istiod serves it.
func TestPermissiveServerWithIstioTLSMode(t *testing.T) {
	snap := snapshotOf(t, `
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: shop}
spec: {mtls: {mode: PERMISSIVE}}
`)
	for _, c := range []struct {
		labels map[string]string
		mtls   bool
	}{
		{map[string]string{"app": "ratings"}, false},
		{map[string]string{"app": "ratings", "security.istio.io/tlsMode": "istio"}, true},
		{map[string]string{"app": "ratings", "security.istio.io/tlsMode": "disabled"}, false},
	} {
		ctx := newContext(snap, grpcProxy("shop", c.labels), "cluster.local", "istio-system")
		l, ok := inboundListener(ctx, InboundListenerPrefix+"10.0.0.1:9090")
		if !ok {
			t.Fatal("no inbound listener")
		}
		if got := l.FilterChains[0].TransportSocket != nil; got != c.mtls {
			t.Errorf("labels %v: mTLS %v, want %v", c.labels, got, c.mtls)
		}
	}
}

// autoMTLSInput is a service with an endpoint that has a proxy (Istio's tlsMode
// label) and one that has none, neither under a PeerAuthentication.
const autoMTLSInput = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: shop}
spec:
  hosts: [ratings.shop.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: ratings}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: with-proxy, namespace: shop}
spec: {address: 10.0.0.1, labels: {app: ratings, security.istio.io/tlsMode: istio}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: without, namespace: shop}
spec: {address: 10.0.0.2, labels: {app: ratings}}
`

// TestEnvoyAutoMTLSByEndpoint: an Envoy's automatic mTLS goes by endpoint, as
// Istio's: mTLS to the endpoint with a proxy, plaintext to the other (transport
// socket matches on the endpoints' metadata); plaintext to an endpoint that refuses
// mTLS (DISABLE); no matches where its namespace refuses it, the DestinationRule
// says how, or for proxyless gRPC, which has no such matches. A WorkloadEntry
// without Istio's label takes mTLS if it names a service account, as in Istio.
func TestEnvoyAutoMTLSByEndpoint(t *testing.T) {
	const name = "outbound|9080||ratings.shop.svc.cluster.local"
	build := func(generator string, docs ...string) (*clusterv3.Cluster, map[string]bool) {
		t.Helper()
		p := grpcProxy("shop", map[string]string{"app": "web"})
		p.Generator = generator
		sets, err := profileFor(p).build(newContext(snapshotOf(t, append([]string{autoMTLSInput}, docs...)...), p, "cluster.local", "istio-system"))
		if err != nil {
			t.Fatal(err)
		}
		var c clusterv3.Cluster
		resourceOf(t, sets, ClusterType, name, &c)
		var cla endpointv3.ClusterLoadAssignment
		resourceOf(t, sets, EndpointType, name, &cla)
		marked := map[string]bool{}
		for _, l := range cla.Endpoints {
			for _, e := range l.LbEndpoints {
				mode := e.GetMetadata().GetFilterMetadata()[transportSocketMatch].GetFields()["tlsMode"].GetStringValue()
				marked[e.GetEndpoint().GetAddress().GetSocketAddress().GetAddress()] = mode == "istio"
			}
		}
		return &c, marked
	}
	c, marked := build("")
	if len(c.TransportSocketMatches) != 2 || c.TransportSocket != nil || !marked["10.0.0.1"] || marked["10.0.0.2"] {
		t.Fatalf("Envoy: matches %v, socket %v, endpoints marked %v; want mTLS to 10.0.0.1 only", c.TransportSocketMatches, c.TransportSocket, marked)
	}
	istio, plain := c.TransportSocketMatches[0], c.TransportSocketMatches[1]
	var up tlsv3.UpstreamTlsContext
	if istio.Match.Fields["tlsMode"].GetStringValue() != "istio" || istio.TransportSocket.GetTypedConfig().UnmarshalTo(&up) != nil ||
		up.Sni != "outbound_.9080_._.ratings.shop.svc.cluster.local" || len(plain.Match.GetFields()) != 0 ||
		plain.TransportSocket.Name != "envoy.transport_sockets.raw_buffer" {
		t.Errorf("matches %v", c.TransportSocketMatches)
	}

	for _, tc := range []struct {
		what            string
		gen             string
		docs            []string
		matches, marked bool
	}{
		{"a workload that refuses mTLS", "", []string{`
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: "off", namespace: shop}
spec: {selector: {matchLabels: {app: ratings}}, mtls: {mode: DISABLE}}`}, true, false},
		{"a namespace that refuses mTLS", "", []string{`
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: "off", namespace: shop}
spec: {mtls: {mode: DISABLE}}`}, false, false},
		// (The DestinationRule decides the endpoints' marks too, as in Istio:
		// ISTIO_MUTUAL marks them all, TestEndpointsAcrossNetworks.)
		{"a DestinationRule that says how", "", []string{`
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: shop}
spec: {host: ratings.shop.svc.cluster.local, trafficPolicy: {tls: {mode: DISABLE}}}`}, false, false},
		{"proxyless gRPC", GeneratorGRPC, nil, false, false},
	} {
		c, marked := build(tc.gen, tc.docs...)
		if (len(c.TransportSocketMatches) > 0) != tc.matches || c.TransportSocket != nil || marked["10.0.0.1"] != tc.marked {
			t.Errorf("%s: matches %d, socket %v, endpoints marked %v; want matches %v, 10.0.0.1 marked %v",
				tc.what, len(c.TransportSocketMatches), c.TransportSocket, marked, tc.matches, tc.marked)
		}
	}

	_, marked = build("", `
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: with-account, namespace: shop}
spec: {address: 10.0.0.3, labels: {app: ratings}, serviceAccount: ratings}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: refusing, namespace: shop}
spec: {address: 10.0.0.4, labels: {app: ratings, security.istio.io/tlsMode: disabled}, serviceAccount: ratings}`)
	if !marked["10.0.0.3"] || marked["10.0.0.4"] {
		t.Errorf("WorkloadEntries with a service account: endpoints marked %v; want 10.0.0.3 (no label) but not 10.0.0.4 (tlsMode disabled)", marked)
	}
}

// TestOriginatedTLSByCredential: a DestinationRule's credentialName gives a gateway
// its certificates and CA certificates by SDS, and a sidecar only if the rule
// selects it (else no TLS at all, as in Istio); without a credential or CA file the
// server is verified against the system's CA certificates, unless
// insecureSkipVerify.
func TestOriginatedTLSByCredential(t *testing.T) {
	const input = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: shop}
spec:
  hosts: [api.example.com, plain.example.com, insecure.example.com]
  location: MESH_EXTERNAL
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: shop}
spec:
  host: api.example.com
  SELECTOR
  trafficPolicy: {tls: {mode: MUTUAL, credentialName: api-client}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: plain, namespace: shop}
spec:
  host: plain.example.com
  trafficPolicy: {tls: {mode: SIMPLE}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: insecure, namespace: shop}
spec:
  host: insecure.example.com
  trafficPolicy: {tls: {mode: SIMPLE, insecureSkipVerify: true}}
`
	upstream := func(selector string, p *Proxy, host string) *tlsv3.UpstreamTlsContext {
		t.Helper()
		snap := snapshotOf(t, strings.Replace(input, "SELECTOR", selector, 1))
		sets, err := profileFor(p).build(newContext(snap, p, "cluster.local", "istio-system"))
		if err != nil {
			t.Fatal(err)
		}
		var c clusterv3.Cluster
		resourceOf(t, sets, ClusterType, "outbound|443||"+host, &c)
		if c.TransportSocket == nil {
			return nil
		}
		var u tlsv3.UpstreamTlsContext
		if err := c.TransportSocket.GetTypedConfig().UnmarshalTo(&u); err != nil {
			t.Fatal(err)
		}
		return &u
	}
	sidecar := grpcProxy("shop", map[string]string{"app": "web"})
	sidecar.Generator = ""
	gateway := grpcProxy("shop", map[string]string{"app": "egress"})
	gateway.Generator, gateway.Type = "", TypeRouter
	for _, tc := range []struct {
		what     string
		selector string
		proxy    *Proxy
		tls      bool
	}{
		{"a sidecar, a rule for the namespace", "", sidecar, false},
		{"a sidecar the rule selects", "workloadSelector: {matchLabels: {app: web}}", sidecar, true},
		{"a gateway", "", gateway, true},
	} {
		u := upstream(tc.selector, tc.proxy, "api.example.com")
		if (u != nil) != tc.tls {
			t.Errorf("%s: TLS %v, want %v", tc.what, u != nil, tc.tls)
			continue
		}
		if u == nil {
			continue
		}
		common := u.CommonTlsContext
		if len(common.TlsCertificateSdsSecretConfigs) != 1 || common.TlsCertificateSdsSecretConfigs[0].Name != "kubernetes://api-client" ||
			common.GetCombinedValidationContext().GetValidationContextSdsSecretConfig().GetName() != "kubernetes://api-client-cacert" {
			t.Errorf("%s: certificates %v, validation %v", tc.what, common.TlsCertificateSdsSecretConfigs, common.ValidationContextType)
		}
	}
	if ca := upstream("", sidecar, "plain.example.com").CommonTlsContext.GetValidationContext().GetTrustedCa().GetFilename(); ca != systemRoots {
		t.Errorf("SIMPLE without CA certificates: trusted CA %q, want the system's, %s", ca, systemRoots)
	}
	//lint:ignore SA1019 what navarch sets, as Istio does
	if vc := upstream("", sidecar, "insecure.example.com").CommonTlsContext.GetValidationContext(); vc.GetTrustedCa() != nil || len(vc.GetMatchSubjectAltNames()) > 0 {
		t.Errorf("insecureSkipVerify: validation %v, want none", vc)
	}
}
