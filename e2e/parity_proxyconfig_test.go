package e2e

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/navarch/navarch/internal/peers"
)

// proxyConfigMesh is a mesh config whose defaultConfig changes every header its
// Envoys add or keep, and a gateway's topology: two trusted proxies in front of it,
// client certificates forwarded as they come, and a PROXY protocol header.
const proxyConfigMesh = `---
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |-
    defaultConfig:
      proxyHeaders:
        server: {value: edge}
        requestId: {disabled: true}
        attemptCount: {disabled: true}
        envoyDebugHeaders: {disabled: true}
        forwardedClientCert: SANITIZE
        setCurrentClientCertDetails: {cert: true, dns: false}
        xForwardedPort: {enabled: true}
        xForwardedHost: {enabled: true}
        preserveHttp1HeaderCase: true
      gatewayTopology:
        numTrustedProxies: 2
        forwardClientCertDetails: APPEND_FORWARD
        proxyProtocol: {}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api}
spec:
  hosts: [api.default.svc.cluster.local]
  http: [{rewrite: {authority: api.internal}, route: [{destination: {host: api.default.svc.cluster.local}}]}]
`

// TestSameProxyHeadersAsIstiod compares what a sidecar (web's, with inbound and
// outbound HTTP) and a gateway get from istiod and from navarch under a mesh config
// whose defaultConfig sets every proxy header and the gateway's topology, and for a
// sidecar that sends a ProxyConfig of its own (PROXY_CONFIG, as istio-agent does),
// which then applies instead: each listener's settings and connection managers
// (TestSameEnvoyListenerSettingsAsIstiod's comparison, with the listener filters),
// whether each connection manager's router adds x-envoy-* headers, and whether the
// virtual hosts of a route configuration send x-envoy-attempt-count and its routes
// x-forwarded-host (a route that rewrites the authority, the route to unknown
// hosts).
func TestSameProxyHeadersAsIstiod(t *testing.T) {
	bin := peers.Binary(t, "istiod-xds", "NAVARCH_ISTIOD_XDS_BIN")
	istiod, navarch := bothControlPlanes(t, bin, strings.Replace(sniffParity, "MODE", "PERMISSIVE", 1)+listenerParity+proxyConfigMesh)
	own := map[string]any{"proxyHeaders": map[string]any{"server": map[string]any{"disabled": true}}}
	fromMesh := []string{`"generateRequestId":false`, `"appendXForwardedPort":true`, "suppress x-envoy headers"}
	for _, proxy := range []struct {
		what, id, app, route string
		config               map[string]any
		expect               []string // what istiod's configuration must show
	}{
		{"web's sidecar", "sidecar~127.0.0.66~web-0.default~default.svc.cluster.local", "web", "9080", nil,
			append(fromMesh, `"serverName":"edge"`, `"setCurrentClientCertDetails":{"cert":true,"subject":true,"uri":true}`, "api.default.svc.cluster.local:9080/ x-forwarded-host=true",
				"header case preserved", "preserve_case",
				"attempt count=allow_any=false")},
		{"a sidecar with a ProxyConfig of its own", "sidecar~127.0.0.66~web-0.default~default.svc.cluster.local", "web", "9080", own,
			[]string{`"serverHeaderTransformation":"PASS_THROUGH"`, "add x-envoy headers", "attempt count=allow_any=true", "allow_any x-forwarded-host=false"}},
		{"a gateway", "router~127.0.0.90~ingress-0.default~default.svc.cluster.local", "ingressgateway", "http.80", nil,
			append(fromMesh, `"xffNumTrustedHops":2`, `"forwardClientCertDetails":"APPEND_FORWARD"`, "envoy.filters.listener.proxy_protocol",
				"attempt count=*:80=false")},
	} {
		t.Run(proxy.what, func(t *testing.T) {
			md := map[string]any{"NAMESPACE": "default", "LABELS": map[string]any{"app": proxy.app, "istio": proxy.app}}
			if proxy.config != nil {
				md["PROXY_CONFIG"] = proxy.config
			}
			describe := func(server string) map[string]string {
				c := envoyConfig(t, server, proxy.id, md)
				ls := c.listeners
				out := listenerSettings(t, ls)
				for name, fields := range clusterFields(t, c.clusters) {
					for f, v := range fields {
						out["cluster "+name+" "+f] = v
					}
				}
				maps.Copy(out, routerSettings(t, ls))
				var attempts []string
				for _, vh := range envoyRoutes(t, server, proxy.id, md, proxy.route).GetVirtualHosts() {
					attempts = append(attempts, fmt.Sprintf("%s=%v", vh.Name, vh.IncludeRequestAttemptCount))
					for _, r := range vh.Routes {
						if a := r.GetRoute(); a != nil {
							out["route "+vh.Name+"/"+r.Name+" x-forwarded-host"] = fmt.Sprint(a.AppendXForwardedHost)
						}
					}
				}
				slices.Sort(attempts)
				out["route "+proxy.route+" attempt count"] = strings.Join(attempts, " ")
				return out
			}
			want := describe(istiod)
			var got map[string]string
			listeners := func(m map[string]string) int {
				n := 0
				for k := range m {
					if !strings.HasPrefix(k, "cluster ") {
						n++
					}
				}
				return n
			}
			eventually(t, 30*time.Second, "navarch's listeners", func() error {
				if got = describe(navarch); listeners(got) < listeners(want) {
					return fmt.Errorf("%d listeners and connection managers, istiod has %d", listeners(got), listeners(want))
				}
				return nil
			})
			compareNamed(t, want, got)
			var all strings.Builder
			for _, k := range slices.Sorted(maps.Keys(want)) {
				fmt.Fprintf(&all, "%s=%s\n", k, want[k])
			}
			for _, set := range proxy.expect {
				if !strings.Contains(all.String(), set) {
					t.Errorf("istiod's configuration has no %s, which this test expects: %v", set, want)
				}
			}
		})
	}
}

// routerSettings says of each listener's HTTP connection managers whether their
// routers add x-envoy-* headers, and whether they keep the case of header names
// ("<listener> routers"), sorted, without repeats.
func routerSettings(t *testing.T, ls map[string]*listenerv3.Listener) map[string]string {
	t.Helper()
	out := map[string]string{}
	for name, l := range ls {
		var seen []string
		for _, fc := range append(slices.Clone(l.FilterChains), l.DefaultFilterChain) {
			for _, f := range fc.GetFilters() {
				var h hcmv3.HttpConnectionManager
				if f.GetTypedConfig().UnmarshalTo(&h) != nil {
					continue
				}
				if h.GetHttpProtocolOptions().GetHeaderKeyFormat() != nil {
					seen = append(seen, "header case preserved")
				}
				for _, hf := range h.HttpFilters {
					var r routerv3.Router
					if hf.GetTypedConfig().UnmarshalTo(&r) == nil {
						seen = append(seen, map[bool]string{true: "suppress x-envoy headers", false: "add x-envoy headers"}[r.SuppressEnvoyHeaders])
					}
				}
			}
		}
		if len(seen) > 0 {
			slices.Sort(seen)
			out[name+" routers"] = strings.Join(slices.Compact(seen), ", ")
		}
	}
	return out
}

// TestBootstrapProxyConfig: an Envoy bootstrapped by navarch bootstrap --proxy-config
// (a gateway that trusts two proxies in front of it) gets that topology, with the
// mesh config's defaultConfig under it (its server header), as a pod with Istio's
// proxy.istio.io/config annotation gets through istio-agent.
func TestBootstrapProxyConfig(t *testing.T) {
	node := startDevNode(t)
	mustCLI(t, node.HTTP, "apply", "-f", writeFile(t, t.TempDir(), "config.yaml", strings.Replace(sniffParity, "MODE", "PERMISSIVE", 1)+listenerParity+`---
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |-
    defaultConfig: {proxyHeaders: {server: {value: edge}}}
`))
	boot := mustCLI(t, node.HTTP, "bootstrap", "--format", "envoy", "--type", "router", "--name", "ingress-0", "--labels", "istio=ingressgateway",
		"--proxy-config", "{gatewayTopology: {numTrustedProxies: 2}}")
	var bs bootstrapv3.Bootstrap
	if err := protojson.Unmarshal([]byte(boot), &bs); err != nil {
		t.Fatalf("navarch bootstrap: %v\n%s", err, boot)
	}
	if res := cli(t, node.HTTP, "bootstrap", "--format", "envoy", "--proxy-config", "{gatewayTopology: {trusted: 2}}"); res.Code == 0 || !strings.Contains(res.Stderr, "trusted") {
		t.Errorf("an unknown field: exit %d, stderr %q; want a refusal naming it", res.Code, res.Stderr)
	}
	var hcm hcmv3.HttpConnectionManager
	eventually(t, 30*time.Second, "the gateway's connection manager", func() error {
		l := envoyConfig(t, node.XDS, bs.Node.Id, bs.Node.Metadata.AsMap()).listeners["0.0.0.0_80"]
		if l == nil {
			return fmt.Errorf("no listener 0.0.0.0_80")
		}
		return l.FilterChains[0].Filters[0].GetTypedConfig().UnmarshalTo(&hcm)
	})
	if hcm.XffNumTrustedHops != 2 || hcm.ServerName != "edge" {
		t.Errorf("the gateway trusts %d proxies and says server %q; want the flag's 2 and the mesh's edge", hcm.XffNumTrustedHops, hcm.ServerName)
	}
}
