package xds

import (
	"fmt"
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// TestRedirects: an HTTP redirect as Istio translates it. A derived port is the
// request's (the listener's, which Envoy cannot read at run time) or the scheme's
// default; the scheme's default port is left out of the Location; the scheme is
// https on a gateway server with TLS settings.
func TestRedirects(t *testing.T) {
	snap := snapshotOf(t, scopeServices, `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge, namespace: shop}
spec:
  selector: {istio: ingressgateway}
  servers:
  - {port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}
  - {port: {number: 8080, name: alt, protocol: HTTP}, hosts: ["*"]}
  - {port: {number: 443, name: https, protocol: HTTPS}, hosts: ["*"], tls: {mode: SIMPLE, credentialName: web}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: orders, namespace: shop}
spec:
  hosts: [orders.shop.svc.cluster.local]
  gateways: [edge]
  http:
  - {match: [{uri: {prefix: /request-port}}], redirect: {derivePort: FROM_REQUEST_PORT}}
  - {match: [{uri: {prefix: /default-port}}], redirect: {derivePort: FROM_PROTOCOL_DEFAULT, scheme: https}}
  - {match: [{uri: {prefix: /to-https}}], redirect: {scheme: https, port: 443}}
  - {match: [{uri: {prefix: /to-8443}}], redirect: {scheme: https, port: 8443, redirectCode: 308}}
  - {match: [{uri: {prefix: /to-80}}], redirect: {port: 80}}
  - {match: [{uri: {prefix: /old}}], redirect: {prefixRewrite: /new, authority: new.example.com}}
  - {match: [{uri: {prefix: /moved}}], redirect: {uri: /here}}
`)
	gw := &Proxy{ID: "router~10.0.0.5~gw.shop~shop.svc.cluster.local", Type: TypeRouter, IP: "10.0.0.5", Namespace: "shop",
		Labels: map[string]string{"istio": "ingressgateway"}}
	sets, err := gatewayProfile().build(newContext(snap, gw, "cluster.local", "istio-system"))
	if err != nil {
		t.Fatal(err)
	}
	// Each route as "prefix -> scheme host port path code", by route configuration.
	redirects := map[string][]string{}
	for name, r := range sets[RouteType].ByName {
		var rc routev3.RouteConfiguration
		if err := r.Body.UnmarshalTo(&rc); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(name, "https.443.") {
			name = "https.443"
		}
		for _, vh := range rc.VirtualHosts {
			for _, route := range vh.Routes {
				ra := route.GetRedirect()
				redirects[name] = append(redirects[name], fmt.Sprintf("%s -> %s %s %d %s%s %s",
					route.GetMatch().GetPrefix(), ra.GetSchemeRedirect(), ra.GetHostRedirect(), ra.GetPortRedirect(),
					ra.GetPathRedirect(), ra.GetPrefixRewrite(), ra.GetResponseCode()))
			}
		}
	}
	want := map[string][]string{
		"http.80": {
			"/request-port ->   0  MOVED_PERMANENTLY", // 80 is http's default
			"/default-port -> https  0  MOVED_PERMANENTLY",
			"/to-https -> https  0  MOVED_PERMANENTLY",
			"/to-8443 -> https  8443  PERMANENT_REDIRECT",
			"/to-80 ->   0  MOVED_PERMANENTLY",
			"/old ->  new.example.com 0 /new MOVED_PERMANENTLY",
			"/moved ->   0 /here MOVED_PERMANENTLY",
		},
		"http.8080": {
			"/request-port ->   8080  MOVED_PERMANENTLY",
			"/default-port -> https  0  MOVED_PERMANENTLY",
			"/to-https -> https  0  MOVED_PERMANENTLY",
			"/to-8443 -> https  8443  PERMANENT_REDIRECT",
			"/to-80 ->   0  MOVED_PERMANENTLY",
			"/old ->  new.example.com 0 /new MOVED_PERMANENTLY",
			"/moved ->   0 /here MOVED_PERMANENTLY",
		},
		"https.443": {
			"/request-port ->   0  MOVED_PERMANENTLY", // 443 is the default of the server's https
			"/default-port -> https  0  MOVED_PERMANENTLY",
			"/to-https -> https  0  MOVED_PERMANENTLY",
			"/to-8443 -> https  8443  PERMANENT_REDIRECT",
			"/to-80 ->   80  MOVED_PERMANENTLY", // http's port, kept on a TLS server
			"/old ->  new.example.com 0 /new MOVED_PERMANENTLY",
			"/moved ->   0 /here MOVED_PERMANENTLY",
		},
	}
	for name, w := range want {
		if got := strings.Join(redirects[name], "\n"); got != strings.Join(w, "\n") {
			t.Errorf("%s:\n%s\nwant\n%s", name, got, strings.Join(w, "\n"))
		}
	}
	if len(redirects) != len(want) {
		t.Errorf("route configurations %v, want %d", redirects, len(want))
	}
}
