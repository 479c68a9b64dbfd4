package xds

import (
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
)

// istioAccepts is configuration Istio's validation accepts although parts of it
// make no sense to a proxy (api's oracle tests hold navarch's validation to
// Istio's): every proxy gets only resources its protos' Validate() passes, and
// what a proxy would refuse is left out and reported, not sent.
const istioAccepts = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: odd, namespace: shop}
spec:
  hosts: [odd.shop.svc.cluster.local]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: vms, namespace: shop}
spec:
  hosts: [vms.shop.svc.cluster.local]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.9, serviceAccount: "SA_1 (legacy)", labels: {version: ` + "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv" + `}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: odd, namespace: shop}
spec:
  host: odd.shop.svc.cluster.local
  trafficPolicy:
    loadBalancer:
      consistentHash: {httpCookie: {name: c, ttl: -1s}}
    portLevelSettings:
    - port: {number: 0}
      loadBalancer: {consistentHash: {httpHeaderName: x, maglev: {tableSize: 1}}}
    - port: {number: 80}
      loadBalancer: {consistentHash: {httpHeaderName: x, maglev: {tableSize: 1}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: odd, namespace: shop}
spec:
  hosts: [odd.shop.svc.cluster.local]
  gateways: [mesh, "a b"]
  http:
  - match: [{headers: {"x.trace": {exact: a}, ":path": {prefix: /p}, "*": {exact: b}}}]
    corsPolicy: {allowMethods: ["*"], allowHeaders: [x.y], allowOrigins: [{exact: "https://a.com"}]}
    route: [{destination: {host: odd.shop.svc.cluster.local}}]
  - match: [{uri: {prefix: /r}}]
    redirect: {port: 0, uri: /elsewhere}
  - match: [{uri: {prefix: /d}}]
    delegate: {name: ""}
  - route: [{destination: {host: vms.shop.svc.cluster.local}}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: odd, namespace: shop}
spec:
  jwtRules:
  - jwksUri: https://keys.example.com/jwks.json
    outputPayloadToHeader: "x payload\r\n"
`

func TestWhatIstioAcceptsReachesProxiesValid(t *testing.T) {
	snap := snapshotOf(t, istioAccepts)
	envoy := grpcProxy("shop", map[string]string{"app": "web"})
	envoy.Generator = ""
	gw := &Proxy{ID: "router~10.0.0.2~gw.shop~shop.svc.cluster.local", Type: TypeRouter, IP: "10.0.0.2", Namespace: "shop"}
	for _, c := range []struct {
		name    string
		proxy   *Proxy
		profile Profile
	}{
		{"envoy sidecar", envoy, sidecarProfile()},
		{"gateway", gw, gatewayProfile()},
		{"proxyless gRPC", grpcProxy("shop", map[string]string{"app": "web"}), grpcProfile()},
	} {
		t.Run(c.name, func(t *testing.T) {
			sets, err := c.profile.build(newContext(snap, c.proxy, "cluster.local", "istio-system"))
			// Every resource in sets passed Validate() (validResource); what could not
			// be built is reported in err and left out.
			if err != nil {
				for _, line := range strings.Split(err.Error(), "\n") {
					if !strings.Contains(line, "delegate") && !strings.Contains(line, "jwksUri") && !strings.Contains(line, "outputPayloadToHeader") {
						t.Errorf("unexpected build problem: %s", line)
					}
				}
			}
			if c.proxy.Type == TypeRouter {
				return
			}
			var cl clusterv3.Cluster
			resourceOf(t, sets, ClusterType, "outbound|80||odd.shop.svc.cluster.local", &cl)
			if c.proxy.Generator == "" && (cl.LbPolicy != clusterv3.Cluster_MAGLEV || cl.GetMaglevLbConfig() != nil) {
				t.Errorf("a Maglev table of 1: policy %v, config %v; want Maglev with Envoy's default size", cl.LbPolicy, cl.GetMaglevLbConfig())
			}
		})
	}
}
