package e2e

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacconfigv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbacnetv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/navarch/navarch/internal/peers"
)

// rbacParity is web's authorization (sniffParity's web, listenerParity's web2 ports:
// HTTP 8081, TCP 8083): policies of every action, with sources and operations of
// every kind, negations, conditions on request and connection attributes, a dry-run
// policy, a policy that allows nothing, one of the root namespace, and end-user
// authentication whose principals and claims the policies read.
const rbacParity = `---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  jwtRules:
  - issuer: https://accounts.example.com
    audiences: [web]
    jwks: '{"keys":[{"kty":"EC","crv":"P-256","kid":"web-1","x":"3QOYrMpYRocov2oH8XTirLhA7dST7LNhNcTA4OMyG94","y":"luwkRb1khLV5QSyGewSyuO62HynGXm6cOfeDRzevtCw"}]}'
    fromHeaders: [{name: x-jwt, prefix: "Bearer "}]
    fromParams: [token]
    outputPayloadToHeader: x-jwt-payload
    forwardOriginalToken: true
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: reads}
spec:
  selector: {matchLabels: {app: web}}
  rules:
  - from:
    - source: {principals: [cluster.local/ns/default/sa/client, "*/sa/reader"], namespaces: [default]}
    - source: {requestPrincipals: ["https://accounts.example.com/*"], notNamespaces: [legacy]}
    to:
    - operation: {methods: [GET, HEAD], paths: [/api/*, /health, "*/suffix"], ports: ["8081"]}
    when:
    - {key: "request.headers[x-team]", values: [a, b], notValues: [c]}
    - {key: "request.auth.claims[groups]", values: [readers]}
    - {key: "request.auth.claims[nested][role]", values: [reader]}
  - to:
    - operation: {hosts: [web.example.com, "*.example.org"], notPaths: [/private*], notMethods: [DELETE]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-admin}
spec:
  selector: {matchLabels: {app: web}}
  action: DENY
  rules:
  - from: [{source: {notPrincipals: [cluster.local/ns/default/sa/admin], ipBlocks: [10.0.0.0/8, 192.168.1.1], notRemoteIpBlocks: [203.0.113.0/24]}}]
    to: [{operation: {paths: [/admin*], notHosts: [admin.example.com]}}]
  - when:
    - {key: source.ip, values: [10.9.9.0/24]}
    - {key: remote.ip, notValues: [198.51.100.7]}
    - {key: source.namespace, values: [untrusted]}
    - {key: source.principal, values: [cluster.local/ns/x/sa/y]}
    - {key: destination.port, values: ["8083"]}
    - {key: destination.ip, values: [127.0.0.66]}
    - {key: connection.sni, values: [web.example.com]}
    - {key: request.auth.principal, values: ["https://accounts.example.com/mallory"]}
    - {key: request.auth.audiences, values: [other]}
    - {key: request.auth.presenter, values: [evil]}
    - {key: "experimental.envoy.filters.network.mysql_proxy[db.table]", values: ["[update]"]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: tcp-clients}
spec:
  selector: {matchLabels: {app: web}}
  rules:
  - from: [{source: {principals: [cluster.local/ns/default/sa/client], ipBlocks: [127.0.0.0/8]}}]
    to: [{operation: {ports: ["8083"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: audit-writes}
spec:
  selector: {matchLabels: {app: web}}
  action: AUDIT
  rules:
  - to: [{operation: {methods: [POST, PUT, PATCH]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: trial, annotations: {istio.io/dry-run: "true"}}
spec:
  selector: {matchLabels: {app: web}}
  action: DENY
  rules:
  - to: [{operation: {paths: [/beta/*]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: nothing}
spec:
  selector: {matchLabels: {app: web}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: mesh-deny, namespace: istio-system}
spec:
  action: DENY
  rules:
  - from: [{source: {namespaces: [quarantine]}}]
`

// TestSameAuthorizationFiltersAsIstiod compares the authorization filters web's
// inbound chains get from istiod and from navarch under rbacParity (its HTTP port
// and its TCP port, in plaintext and mTLS): the filters in order, and for each RBAC
// filter its settings, the action of its rules and of its shadow rules, and which
// policies (rules of which AuthorizationPolicy) are enforced and which only
// evaluated (dry-run). What a policy matches is not compared field by field: navarch
// shapes the same conditions differently (docs/istio-parity.md).
func TestSameAuthorizationFiltersAsIstiod(t *testing.T) {
	bin := peers.Binary(t, "istiod-xds", "NAVARCH_ISTIOD_XDS_BIN")
	config := strings.Replace(sniffParity, "MODE", "PERMISSIVE", 1) + listenerParity + rbacParity
	istiod, navarch := bothControlPlanes(t, bin, config)
	const web = "sidecar~127.0.0.66~web-0.default~default.svc.cluster.local"
	mesh := probe{tls: true, alpn: []string{"istio-peer-exchange", "istio"}}
	describe := func(server string) map[string]string {
		inbound := envoyConfig(t, server, web, map[string]any{"NAMESPACE": "default", "LABELS": map[string]any{"app": "web"}}).listeners["virtualInbound"]
		out := map[string]string{}
		for _, c := range []struct {
			port  uint32
			probe probe
		}{{8081, probe{http: "http/1.1"}}, {8081, mesh}, {8083, probe{}}, {8083, mesh}} {
			where := fmt.Sprintf("%d %v", c.port, c.probe)
			var names []string
			for i, f := range chainFor(inbound, "127.0.0.66", c.port, c.probe).GetFilters() {
				names = append(names, f.Name)
				if f.Name != "envoy.filters.network.http_connection_manager" {
					describeRBAC(t, out, fmt.Sprintf("%s [%d]", where, i), f.GetTypedConfig())
					continue
				}
				var httpNames []string
				for j, hf := range httpManagerOf(t, f).HttpFilters {
					httpNames = append(httpNames, hf.Name)
					describeRBAC(t, out, fmt.Sprintf("%s http[%d]", where, j), hf.GetTypedConfig())
				}
				out[where+" http"] = strings.Join(httpNames, ",")
			}
			out[where] = strings.Join(names, ",")
		}
		return out
	}
	want := compareDescribed(t, "authorization filters", istiod, navarch, describe)
	for _, where := range []string{fmt.Sprintf("8081 %v http[3] shadow", probe{http: "http/1.1"}), fmt.Sprintf("8083 %v [2] rules", probe{})} {
		if want[where] == "" {
			t.Errorf("istiod's %s: none, where this test expects RBAC rules", where)
		}
	}
}

// describeRBAC adds to out what it compares of an RBAC filter's configuration a
// (HTTP or network) at where: its settings but the rules, and for its rules and its
// shadow rules, the action and the names of the policies. Other filters are left
// out.
func describeRBAC(t *testing.T, out map[string]string, where string, a *anypb.Any) {
	t.Helper()
	var rules, shadow *rbacconfigv3.RBAC
	var rest proto.Message
	var h rbachttpv3.RBAC
	var n rbacnetv3.RBAC
	switch {
	case a.MessageIs(&h):
		if err := a.UnmarshalTo(&h); err != nil {
			t.Fatal(err)
		}
		rules, shadow = h.Rules, h.ShadowRules
		h.Rules, h.ShadowRules = nil, nil
		rest = &h
	case a.MessageIs(&n):
		if err := a.UnmarshalTo(&n); err != nil {
			t.Fatal(err)
		}
		rules, shadow = n.Rules, n.ShadowRules
		n.Rules, n.ShadowRules = nil, nil
		rest = &n
	default:
		return
	}
	out[where] = a.TypeUrl + " " + fmt.Sprint(protoFields(t, rest, regexp.MustCompile(`^$`), nil))
	for side, r := range map[string]*rbacconfigv3.RBAC{"rules": rules, "shadow": shadow} {
		if r != nil {
			out[where+" "+side] = fmt.Sprintf("%s %v", r.Action, slices.Sorted(maps.Keys(r.Policies)))
		}
	}
}

// httpManagerOf is the HTTP connection manager of filter f.
func httpManagerOf(t *testing.T, f *listenerv3.Filter) *hcmv3.HttpConnectionManager {
	t.Helper()
	var h hcmv3.HttpConnectionManager
	if err := f.GetTypedConfig().UnmarshalTo(&h); err != nil {
		t.Fatal(err)
	}
	return &h
}
