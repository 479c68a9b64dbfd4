package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/navarch/navarch/internal/peers"
)

// destinationRuleParity has a service with two ports and two subsets under a
// DestinationRule with most of what a traffic policy can say (a consistent hash by
// header with a ring size, locality failover, a connection pool with TCP keepalive,
// durations and limits, HTTP/2 upgrade, outlier detection with local-origin errors
// apart, port-level settings, a Maglev subset with a cookie, a subset with its own
// load balancer and a PROXY protocol header), and an external service with TLS
// origination (SNI, SANs, a CA file).
const destinationRuleParity = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: a}
spec:
  hosts: [a.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 8080, name: http, protocol: HTTP}, {number: 9090, name: grpc, protocol: GRPC}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.41, labels: {v: "1"}, locality: r1/z1}, {address: 127.0.0.42, labels: {v: "2"}, locality: r1/z2}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: a}
spec:
  host: a.default.svc.cluster.local
  trafficPolicy:
    loadBalancer:
      consistentHash: {httpHeaderName: x-user, ringHash: {minimumRingSize: 2048}}
      localityLbSetting: {enabled: true, failover: [{from: r1, to: r2}]}
    connectionPool:
      tcp: {maxConnections: 100, connectTimeout: 3s, tcpKeepalive: {time: 60s, interval: 10s, probes: 3}, maxConnectionDuration: 1h, idleTimeout: 30m}
      http: {http1MaxPendingRequests: 10, http2MaxRequests: 50, maxRequestsPerConnection: 7, maxRetries: 4, idleTimeout: 90s, h2UpgradePolicy: UPGRADE, maxConcurrentStreams: 33}
    outlierDetection: {consecutive5xxErrors: 7, consecutiveGatewayErrors: 3, consecutiveLocalOriginFailures: 4, splitExternalLocalOriginErrors: true, interval: 10s, baseEjectionTime: 1m, maxEjectionPercent: 30, minHealthPercent: 20}
    portLevelSettings:
    - port: {number: 9090}
      loadBalancer: {simple: ROUND_ROBIN, warmupDurationSecs: 30s}
  subsets:
  - name: v1
    labels: {v: "1"}
    trafficPolicy: {loadBalancer: {consistentHash: {maglev: {tableSize: 65537}, httpCookie: {name: c, ttl: 10s, path: /}}}}
  - name: v2
    labels: {v: "2"}
    trafficPolicy: {loadBalancer: {simple: LEAST_REQUEST}, proxyProtocol: {version: V2}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext}
spec:
  hosts: [ext.example.com]
  location: MESH_EXTERNAL
  ports: [{number: 443, name: https, protocol: TLS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ext}
spec:
  host: ext.example.com
  trafficPolicy:
    tls: {mode: SIMPLE, sni: ext.example.com, subjectAltNames: [ext.example.com], caCertificates: /etc/ca.pem}
`

// systemRoots is where navarch has Envoy find the system's CA certificates, which
// istio-agent serves istiod's Envoy by SDS as file-root:system.
const systemRoots = "/etc/ssl/certs/ca-certificates.crt"

// clusterFieldsNotCompared are the cluster fields TestSameClustersUnderDestinationRulesAsIstiod
// leaves out, and why: where
// certificates come from (istiod's SDS through istio-agent's sds-grpc cluster,
// navarch's over ADS); an endpoint's health status, which istiod leaves unset and
// navarch sets HEALTHY, the same to Envoy.
var clusterFieldsNotCompared = regexp.MustCompile(`(^|\.)(sdsConfig|healthStatus)(\.|\[|$)`)

// TestSameClustersUnderDestinationRulesAsIstiod compares every cluster an Envoy
// sidecar gets for destinationRuleParity from istiod and from navarch, field by
// field (clusterFields), but for clusterFieldsNotCompared; and, exactly (but for
// endpoints' health status), every cluster istio-proxy gets, which takes its
// certificates, and the files DestinationRules name, from istio-agent by SDS
// through both.
func TestSameClustersUnderDestinationRulesAsIstiod(t *testing.T) {
	bin := peers.Binary(t, "istiod-xds", "NAVARCH_ISTIOD_XDS_BIN")
	istiod, navarch := bothControlPlanes(t, bin, destinationRuleParity)
	id := "sidecar~127.0.0.60~web-0.default~default.svc.cluster.local"
	healthStatus := regexp.MustCompile(`(^|\.)healthStatus(\.|\[|$)`)
	for _, tc := range []struct {
		what    string
		version string
		fields  func(map[string]*clusterv3.Cluster) map[string]map[string]string
	}{
		{"an Envoy", "", func(cs map[string]*clusterv3.Cluster) map[string]map[string]string { return clusterFields(t, cs) }},
		{"istio-proxy", "1.28.0", func(cs map[string]*clusterv3.Cluster) map[string]map[string]string {
			out := map[string]map[string]string{}
			for name, c := range cs {
				out[name] = protoFields(t, c, healthStatus, nil)
			}
			return out
		}},
	} {
		t.Run(tc.what, func(t *testing.T) {
			md := map[string]any{"NAMESPACE": "default", "LABELS": map[string]any{"app": "web"}}
			if tc.version != "" {
				md["ISTIO_VERSION"] = tc.version
			}
			want := tc.fields(envoyConfig(t, istiod, id, md).clusters)
			var got map[string]map[string]string
			eventually(t, 30*time.Second, "navarch's clusters", func() error {
				if got = tc.fields(envoyConfig(t, navarch, id, md).clusters); len(got) < len(want) {
					return fmt.Errorf("%d clusters, istiod has %d", len(got), len(want))
				}
				return nil
			})
			compareFields(t, want, got)
			if len(want["outbound|9090|v2|a.default.svc.cluster.local"]) == 0 || len(want["outbound|443||ext.example.com"]) == 0 {
				t.Errorf("istiod gave none of the clusters this test compares: %v", slices.Sorted(maps.Keys(want)))
			}
		})
	}
}

// TestSameEnvoyConfigUnderTheMeshConfigAsIstiod compares a sidecar's clusters and
// listener settings, field by field, from istiod and navarch under a mesh config
// that upgrades HTTP/1.1 to HTTP/2 mesh-wide, turns on TCP keepalive and merges and
// decodes slashes in paths, beside DestinationRules that set their own.
func TestSameEnvoyConfigUnderTheMeshConfigAsIstiod(t *testing.T) {
	bin := peers.Binary(t, "istiod-xds", "NAVARCH_ISTIOD_XDS_BIN")
	istiod, navarch := bothControlPlanes(t, bin, `apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |-
    h2UpgradePolicy: UPGRADE
    tcpKeepalive: {time: 600s, interval: 30s}
    pathNormalization: {normalization: DECODE_AND_MERGE_SLASHES}
---
`+destinationRuleParity)
	id := "sidecar~127.0.0.60~web-0.default~default.svc.cluster.local"
	md := map[string]any{"NAMESPACE": "default", "LABELS": map[string]any{"app": "web"}}
	describe := func(server string) map[string]map[string]string {
		c := envoyConfig(t, server, id, md)
		out := clusterFields(t, c.clusters)
		for name, settings := range listenerSettings(t, c.listeners) {
			out["listener "+name] = map[string]string{"settings": settings}
		}
		return out
	}
	want := describe(istiod)
	var got map[string]map[string]string
	eventually(t, 30*time.Second, "navarch's clusters and listeners", func() error {
		if got = describe(navarch); len(got) < len(want) {
			return fmt.Errorf("%d clusters and listeners, istiod has %d", len(got), len(want))
		}
		return nil
	})
	compareFields(t, want, got)
	var upgraded, keepalive, merged bool
	for name, fields := range want {
		for f, v := range fields {
			upgraded = upgraded || (strings.HasPrefix(name, "outbound|") && strings.Contains(f, "http2ProtocolOptions"))
			keepalive = keepalive || (strings.HasSuffix(f, "tcpKeepalive.keepaliveTime") && v == "600")
			merged = merged || strings.Contains(v, `"mergeSlashes":true`)
		}
	}
	if !upgraded || !keepalive || !merged {
		t.Errorf("istiod's configuration shows HTTP/2 upgrades %v, the mesh's keepalive %v, merged slashes %v; this test expects each", upgraded, keepalive, merged)
	}
}

// clusterFields flattens each cluster (protoFields), with TLS validation written one
// way: a CA file istiod has istio-agent serve by SDS ("file-root:<path>") as the file
// itself, and SANs of a combined validation context as those of a plain one.
func clusterFields(t *testing.T, cs map[string]*clusterv3.Cluster) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{}
	for name, c := range cs {
		out[name] = protoFields(t, c, clusterFieldsNotCompared, func(path, value string) (string, string) {
			path = strings.ReplaceAll(path, "combinedValidationContext.defaultValidationContext.", "validationContext.")
			if file, ok := strings.CutPrefix(value, "file-root:"); ok && strings.HasSuffix(path, "combinedValidationContext.validationContextSdsSecretConfig.name") {
				if file == "system" {
					file = systemRoots
				}
				return strings.TrimSuffix(path, "combinedValidationContext.validationContextSdsSecretConfig.name") + "validationContext.trustedCa.filename", file
			}
			if files, ok := strings.CutPrefix(value, "file-cert:"); ok && strings.HasSuffix(path, "tlsCertificateSdsSecretConfigs[0].name") {
				// Two fields of navarch's for one of istiod's: joined, as istiod joins them.
				return strings.TrimSuffix(path, "tlsCertificateSdsSecretConfigs[0].name") + "tlsCertificates[0].filenames", files
			}
			return path, value
		})
		for path, chain := range out[name] {
			prefix, ok := strings.CutSuffix(path, "tlsCertificates[0].certificateChain.filename")
			if key, found := out[name][prefix+"tlsCertificates[0].privateKey.filename"]; ok && found {
				delete(out[name], path)
				delete(out[name], prefix+"tlsCertificates[0].privateKey.filename")
				out[name][prefix+"tlsCertificates[0].filenames"] = chain + "~" + key
			}
		}
	}
	return out
}

// protoFields flattens m to its fields as JSON paths and values (a list element by
// index), leaving out the paths skip matches, each written as same (if given) has it.
func protoFields(t *testing.T, m proto.Message, skip *regexp.Regexp, same func(path, value string) (string, string)) map[string]string {
	t.Helper()
	b, err := protojson.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	fields := map[string]string{}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				walk(strings.TrimPrefix(path+"."+k, "."), x)
			}
		case []any:
			for i, x := range v {
				walk(fmt.Sprintf("%s[%d]", path, i), x)
			}
		default:
			if skip.MatchString(path) {
				return
			}
			path, value := path, fmt.Sprint(v)
			if same != nil {
				path, value = same(path, value)
			}
			fields[path] = value
		}
	}
	walk("", v)
	return fields
}

// compareFields reports every field whose value differs between want (istiod's) and
// got (navarch's), by name and path.
func compareFields(t *testing.T, want, got map[string]map[string]string) {
	t.Helper()
	names := map[string]map[string]string{}
	maps.Copy(names, want)
	maps.Copy(names, got)
	for _, name := range slices.Sorted(maps.Keys(names)) {
		w, g := want[name], got[name]
		fields := map[string]string{}
		maps.Copy(fields, w)
		maps.Copy(fields, g)
		for _, f := range slices.Sorted(maps.Keys(fields)) {
			if w[f] != g[f] {
				t.Errorf("%s %s: istiod %q, navarch %q", name, f, w[f], g[f])
			}
		}
	}
}

// routeFieldsNotCompared are the route configuration fields
// TestSameEnvoyRouteFieldsAsIstiod leaves out: case-sensitive matching, which
// istiod sets to Envoy's default. The names a virtual host answers to are compared
// by TestSameEnvoyRoutesAsIstiod. (Each route's metadata, naming the VirtualService
// it comes from, and decorator, naming its tracing spans, are compared.)
var routeFieldsNotCompared = regexp.MustCompile(`(^|\.)(caseSensitive|domains)(\.|\[|$)`)

// grpcTimeoutAsReplacement names istiod's deprecated max_grpc_timeout as its
// replacement, max_stream_duration.grpc_timeout_header_max, which navarch sets: a
// protoFields renaming for route configurations.
func grpcTimeoutAsReplacement(path, value string) (string, string) {
	if p, ok := strings.CutSuffix(path, ".maxGrpcTimeout"); ok {
		return p + ".maxStreamDuration.grpcTimeoutHeaderMax", value
	}
	return path, value
}

// TestSameEnvoyRouteFieldsAsIstiod compares the route configurations of
// TestSameEnvoyRoutesAsIstiod (a sidecar's for 9080, a gateway's for port 80) field
// by field, but for routeFieldsNotCompared; istiod's deprecated max_grpc_timeout is
// compared as its replacement, max_stream_duration.grpc_timeout_header_max.
func TestSameEnvoyRouteFieldsAsIstiod(t *testing.T) {
	bin := peers.Binary(t, "istiod-xds", "NAVARCH_ISTIOD_XDS_BIN")
	v1, v2 := startReviews(t)
	for _, sc := range []struct {
		name, config, must string // must: a field istiod's sidecar routes have
	}{
		{"envoyRouteParity", envoyRouteParity, "requestMirrorPolicies"},
		{"moreRouteParity", moreRouteParity, "directResponse"},
	} {
		t.Run(sc.name, func(t *testing.T) {
			istiod, navarch := bothControlPlanes(t, bin, workloadsYAML(v1, v2)+"---\n"+sc.config)
			labels := func(l map[string]any) map[string]any { return map[string]any{"NAMESPACE": "default", "LABELS": l} }
			configs := []struct {
				id   string
				md   map[string]any
				name string
			}{
				{"sidecar~127.0.0.61~web-0.default~default.svc.cluster.local", labels(map[string]any{"app": "web"}), "9080"},
				{"router~127.0.0.62~gw-0.default~default.svc.cluster.local", labels(map[string]any{"istio": "ingressgateway"}), "http.80"},
			}
			fields := func(server string) map[string]map[string]string {
				out := map[string]map[string]string{}
				for _, c := range configs {
					out[c.name] = protoFields(t, envoyRoutes(t, server, c.id, c.md, c.name), routeFieldsNotCompared, grpcTimeoutAsReplacement)
				}
				return out
			}
			want := fields(istiod)
			var got map[string]map[string]string
			eventually(t, 30*time.Second, "navarch's routes", func() error {
				if got = fields(navarch); len(got["9080"]) < len(want["9080"])/2 {
					return fmt.Errorf("%d fields of route configuration 9080, istiod's has %d", len(got["9080"]), len(want["9080"]))
				}
				return nil
			})
			compareFields(t, want, got)
			if !slices.ContainsFunc(slices.Collect(maps.Keys(want["9080"])), func(f string) bool { return strings.Contains(f, sc.must) }) {
				t.Errorf("istiod's route configuration has no %s: not what this test compares", sc.must)
			}
		})
	}
}

// moreRouteParity is reviews' VirtualService with what envoyRouteParity does not
// say: a direct response, redirects with a scheme, authority and port or a derived
// port, rewrites of the authority and by regular expression, header changes by
// destination and of the host, several mirrors, matches on scheme, authority, absent headers and
// the source's labels, case-insensitive paths, a gRPC abort, retries of gRPC
// statuses to other localities, a timeout under a second, and a full CORS policy; and a Gateway
// with a VirtualService of its own.
const moreRouteParity = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - name: direct
    match: [{uri: {exact: /health}, ignoreUriCase: true}]
    directResponse: {status: 200, body: {string: ok}}
  - name: redirect-full
    match: [{uri: {prefix: /r}, scheme: {exact: http}}]
    redirect: {scheme: https, authority: reviews.example.com, port: 8443, uri: /x}
  - name: redirect-derive
    match: [{uri: {prefix: /d}}]
    redirect: {derivePort: FROM_PROTOCOL_DEFAULT, uri: /y}
  - name: rewrite
    match: [{uri: {prefix: /rw}, authority: {prefix: reviews}, withoutHeaders: {x-skip: {}}}]
    rewrite: {authority: backend.local, uriRegexRewrite: {match: "^/rw/(.*)", rewrite: "/\\1"}}
    route:
    - destination: {host: reviews, subset: v1}
      headers: {request: {set: {x-dest: v1}}, response: {add: {x-served: v1}}}
      weight: 60
    - destination: {host: reviews, subset: v2}
      headers: {request: {set: {host: v2.reviews.local}}}
      weight: 40
  - name: mirrors
    match: [{uri: {prefix: /m}, sourceLabels: {app: web}}]
    mirrors: [{destination: {host: reviews, subset: v2}, percentage: {value: 10}}, {destination: {host: reviews, subset: v1}}]
    route:
    - destination: {host: reviews, subset: v1}
      headers: {request: {add: {x-one: "1"}, remove: [x-two]}, response: {set: {x-three: "3"}}}
    headers: {request: {set: {x-route: m, host: m.reviews.local}}}
  - name: grpc-fault
    match: [{uri: {prefix: /g}, headers: {x-grpc: {regex: "a.*"}}}]
    fault: {abort: {grpcStatus: UNAVAILABLE, percentage: {value: 100}}}
    route: [{destination: {host: reviews, subset: v1}}]
    retries: {attempts: 3, retryOn: "cancelled,unavailable", retryRemoteLocalities: true}
    timeout: 250ms
  - name: cors
    corsPolicy:
      allowOrigins: [{prefix: "https://"}, {regex: ".*\\.example\\.org"}]
      allowMethods: [GET, POST]
      allowHeaders: [x-a]
      exposeHeaders: [x-b]
      allowCredentials: true
      maxAge: 1h
      unmatchedPreflights: IGNORE
    route: [{destination: {host: reviews, subset: v2}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
    tls: {httpsRedirect: false}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-public}
spec:
  hosts: [reviews.example.com]
  gateways: [public]
  http:
  - match: [{uri: {prefix: /reviews}, port: 80}]
    route: [{destination: {host: reviews, subset: v1, port: {number: 9080}}}]
    headers: {response: {set: {x-gateway: public}}}
`

// TestSameInboundMTLSAsIstiod compares, field by field, the TLS a sidecar's inbound
// chains terminate mTLS with (under STRICT and PERMISSIVE), from istiod and from
// navarch: of an HTTP port, a TCP port, a port of no given protocol and a port no
// service declares, for mTLS from a sidecar that detected HTTP (ALPN istio-http/1.1)
// and one that did not (istio-peer-exchange, istio). Where certificates come from
// (SDS through istio-agent or over ADS) is left out.
func TestSameInboundMTLSAsIstiod(t *testing.T) {
	bin := peers.Binary(t, "istiod-xds", "NAVARCH_ISTIOD_XDS_BIN")
	id := "sidecar~127.0.0.66~web-0.default~default.svc.cluster.local"
	md := map[string]any{"NAMESPACE": "default", "LABELS": map[string]any{"app": "web"}}
	skip := regexp.MustCompile(`(^|\.)sdsConfig(\.|$)`)
	for _, mode := range []string{"STRICT", "PERMISSIVE"} {
		t.Run(mode, func(t *testing.T) {
			istiod, navarch := bothControlPlanes(t, bin, strings.Replace(sniffParity, "MODE", mode, 1)+listenerParity)
			fields := func(server string) map[string]map[string]string {
				out := map[string]map[string]string{}
				in := envoyConfig(t, server, id, md).listeners["virtualInbound"]
				for _, port := range []uint32{8081, 8083, 8080, 9999} {
					for _, p := range []probe{{tls: true, alpn: []string{"istio-http/1.1"}}, {tls: true, alpn: []string{"istio-peer-exchange", "istio"}}} {
						if fc := chainFor(in, "127.0.0.66", port, p); fc.GetTransportSocket() != nil {
							out[fmt.Sprintf("port %d %s", port, p)] = protoFields(t, fc.TransportSocket, skip, nil)
						}
					}
				}
				return out
			}
			want := fields(istiod)
			var got map[string]map[string]string
			eventually(t, 30*time.Second, "navarch's inbound chains", func() error {
				if got = fields(navarch); len(got) < len(want) {
					return fmt.Errorf("%d chains terminate mTLS, istiod's %d", len(got), len(want))
				}
				return nil
			})
			compareFields(t, want, got)
			if len(want) < 4 {
				t.Errorf("istiod terminates mTLS on %d of the probed chains, this test expects more", len(want))
			}
		})
	}
}

// TestSameGatewayTLSFieldsAsIstiod compares, field by field, the TLS each server of a
// gateway terminates (SIMPLE with a credential, MUTUAL with client SANs, ISTIO_MUTUAL,
// AUTO_PASSTHROUGH's none), from istiod and from navarch. Left out: where certificates
// come from, and require_client_certificate false, which istiod sets to Envoy's
// default.
func TestSameGatewayTLSFieldsAsIstiod(t *testing.T) {
	bin := peers.Binary(t, "istiod-xds", "NAVARCH_ISTIOD_XDS_BIN")
	istiod, navarch := bothControlPlanes(t, bin, strings.Replace(sniffParity, "MODE", "STRICT", 1)+listenerParity+`---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: mtls}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8443, name: https-m, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: ISTIO_MUTUAL}
  - port: {number: 9443, name: https-mu, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: MUTUAL, credentialName: cert2, subjectAltNames: [client.example.com]}
`)
	id := "router~127.0.0.90~ingress-0.default~default.svc.cluster.local"
	md := map[string]any{"NAMESPACE": "default", "LABELS": map[string]any{"istio": "ingressgateway"}}
	skip := regexp.MustCompile(`(^|\.)sdsConfig(\.|$)`)
	fields := func(server string) map[string]map[string]string {
		out := map[string]map[string]string{}
		for name, l := range envoyConfig(t, server, id, md).listeners {
			for i, fc := range l.FilterChains {
				if fc.TransportSocket == nil {
					continue
				}
				out[fmt.Sprintf("%s chain %d", name, i)] = protoFields(t, fc.TransportSocket, skip, func(path, value string) (string, string) {
					if strings.HasSuffix(path, "requireClientCertificate") && value == "false" {
						return "", "" // Envoy's default, as if unset
					}
					return path, value
				})
				delete(out[fmt.Sprintf("%s chain %d", name, i)], "")
			}
		}
		return out
	}
	want := fields(istiod)
	var got map[string]map[string]string
	eventually(t, 30*time.Second, "navarch's gateway listeners", func() error {
		if got = fields(navarch); len(got) < len(want) {
			return fmt.Errorf("%d chains with TLS, istiod's %d", len(got), len(want))
		}
		return nil
	})
	compareFields(t, want, got)
	if len(want) < 3 {
		t.Errorf("istiod terminates TLS on %d gateway chains, this test expects 3", len(want))
	}
}

// TestSameInboundRoutesAsIstiod compares, field by field, the route configuration
// inside a sidecar's inbound HTTP connection managers (of an HTTP port, a port of no
// given protocol and a port no service declares), from istiod and from navarch: but
// case sensitivity, which istiod sets to Envoy's default.
func TestSameInboundRoutesAsIstiod(t *testing.T) {
	bin := peers.Binary(t, "istiod-xds", "NAVARCH_ISTIOD_XDS_BIN")
	istiod, navarch := bothControlPlanes(t, bin, strings.Replace(sniffParity, "MODE", "DISABLE", 1)+listenerParity)
	id := "sidecar~127.0.0.66~web-0.default~default.svc.cluster.local"
	md := map[string]any{"NAMESPACE": "default", "LABELS": map[string]any{"app": "web"}}
	fields := func(server string) map[string]map[string]string {
		out := map[string]map[string]string{}
		in := envoyConfig(t, server, id, md).listeners["virtualInbound"]
		for _, port := range []uint32{8081, 8080, 9999} {
			for _, f := range chainFor(in, "127.0.0.66", port, probe{http: "http/1.1"}).GetFilters() {
				var h hcmv3.HttpConnectionManager
				if f.GetTypedConfig().UnmarshalTo(&h) == nil {
					out[fmt.Sprintf("port %d", port)] = protoFields(t, h.GetRouteConfig(), routeFieldsNotCompared, nil)
				}
			}
		}
		return out
	}
	want := fields(istiod)
	var got map[string]map[string]string
	eventually(t, 30*time.Second, "navarch's inbound routes", func() error {
		if got = fields(navarch); len(got) < len(want) {
			return fmt.Errorf("%d inbound connection managers, istiod's %d", len(got), len(want))
		}
		return nil
	})
	compareFields(t, want, got)
	if len(want) != 3 {
		t.Errorf("istiod has HTTP connection managers for %d of the 3 ports, which this test expects all to have", len(want))
	}
}

// TestSameInboundClustersAsIstiod compares, field by field, the inbound clusters of
// a sidecar whose workload two services select (web, a port of no protocol; web2,
// an HTTP and a TCP port), one of them under a DestinationRule, from istiod and from
// navarch: their settings and the metadata istio-proxy's stats read; and the same
// under a Sidecar whose ingress listeners send one of web2's ports and a port of no
// service to loopback, the second with a connection pool of its own.
func TestSameInboundClustersAsIstiod(t *testing.T) {
	bin := peers.Binary(t, "istiod-xds", "NAVARCH_ISTIOD_XDS_BIN")
	base := strings.Replace(sniffParity, "MODE", "PERMISSIVE", 1) + listenerParity + `---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web2}
spec:
  host: web2.default.svc.cluster.local
  trafficPolicy: {connectionPool: {tcp: {maxConnections: 7}}}
`
	for _, sc := range []struct {
		name, config string
		clusters     int // how many inbound clusters istiod gives at least
	}{
		{"the services' ports", base, 3},
		{"a Sidecar's ingress listeners", base + `---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: web-ingress}
spec:
  workloadSelector: {labels: {app: web}}
  ingress:
  - port: {number: 8081, protocol: HTTP, name: http}
    defaultEndpoint: 127.0.0.1:18081
  - port: {number: 9092, protocol: TCP, name: tcp}
    defaultEndpoint: 127.0.0.1:19092
    connectionPool: {tcp: {maxConnections: 3}}
`, 2},
	} {
		t.Run(sc.name, func(t *testing.T) {
			istiod, navarch := bothControlPlanes(t, bin, sc.config)
			id := "sidecar~127.0.0.66~web-0.default~default.svc.cluster.local"
			md := map[string]any{"NAMESPACE": "default", "LABELS": map[string]any{"app": "web"}}
			inbound := func(server string) map[string]map[string]string {
				out := clusterFields(t, envoyConfig(t, server, id, md).clusters)
				maps.DeleteFunc(out, func(name string, _ map[string]string) bool { return !strings.HasPrefix(name, "inbound|") })
				return out
			}
			want, got := inbound(istiod), inbound(navarch)
			compareFields(t, want, got)
			if len(want) < sc.clusters {
				t.Errorf("istiod gave the sidecar the inbound clusters %v; this test expects one per port", slices.Sorted(maps.Keys(want)))
			}
		})
	}
}

// clientTLSParity is a DestinationRule TLS setting of every kind, each for a service
// of its own (tls-<n>.example.com, resolved by DNS outside the mesh, on TLS, HTTP
// and gRPC ports; an internal one for ISTIO_MUTUAL): MUTUAL from files and from a
// credential, SIMPLE from a credential, without verification, with a revocation
// list, with neither SNI nor SANs, and with the ServiceEntry's SANs, ISTIO_MUTUAL
// with its own SNI and SANs; and port-level and subset settings over the
// service-wide one (a subset of labels no endpoint has gets no cluster, nor does a
// DNS service that selects no workloads).
const clientTLSParity = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: tls-ext}
spec:
  hosts: [tls-1.example.com, tls-2.example.com, tls-3.example.com, tls-4.example.com, tls-5.example.com, tls-6.example.com]
  location: MESH_EXTERNAL
  ports: [{number: 443, name: tls, protocol: TLS}, {number: 8443, name: https-alt, protocol: TLS}, {number: 80, name: http, protocol: HTTP}, {number: 9443, name: grpc, protocol: GRPC}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: tls-1}
spec:
  host: tls-1.example.com
  trafficPolicy:
    tls: {mode: MUTUAL, clientCertificate: /etc/certs/client.pem, privateKey: /etc/certs/key.pem, caCertificates: /etc/certs/ca.pem, sni: one.example.com, subjectAltNames: [tls-1.example.com]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: tls-2}
spec:
  host: tls-2.example.com
  trafficPolicy:
    tls: {mode: MUTUAL, credentialName: client-credential}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: tls-3}
spec:
  host: tls-3.example.com
  trafficPolicy:
    tls: {mode: SIMPLE, credentialName: ca-credential}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: tls-4}
spec:
  host: tls-4.example.com
  trafficPolicy:
    tls: {mode: SIMPLE, insecureSkipVerify: true}
    portLevelSettings:
    - port: {number: 8443}
      tls: {mode: SIMPLE, caCertificates: /etc/certs/ca.pem, caCrl: /etc/certs/crl.pem, sni: alt.example.com}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: tls-5}
spec:
  host: tls-5.example.com
  trafficPolicy:
    tls: {mode: DISABLE}
  subsets:
  - name: secure
    trafficPolicy: {tls: {mode: SIMPLE}}
  - name: labelled
    labels: {v: "1"}
    trafficPolicy: {tls: {mode: SIMPLE}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: selecting}
spec:
  hosts: [tls-9.example.com]
  location: MESH_EXTERNAL
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
  workloadSelector: {labels: {app: nowhere}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: tls-6}
spec:
  host: tls-6.example.com
  trafficPolicy:
    tls: {mode: SIMPLE}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: tls-7}
spec:
  hosts: [tls-7.example.com]
  location: MESH_EXTERNAL
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
  subjectAltNames: [san.tls-7.example.com]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: tls-7}
spec:
  host: tls-7.example.com
  trafficPolicy:
    tls: {mode: SIMPLE, sni: tls-7.example.com}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: mesh-svc}
spec:
  hosts: [mesh.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.43, labels: {security.istio.io/tlsMode: istio}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: mesh-svc}
spec:
  host: mesh.default.svc.cluster.local
  trafficPolicy:
    tls: {mode: ISTIO_MUTUAL, sni: custom.mesh.sni, subjectAltNames: [spiffe://cluster.local/ns/other/sa/mesh]}
`

// TestSameClientTLSAsIstiod compares, field by field, the clusters an Envoy sidecar
// gets under clientTLSParity from istiod and from navarch: transport sockets,
// certificates and validation by file or by credential, SNI, SANs, ALPN and the
// metadata that goes with them.
func TestSameClientTLSAsIstiod(t *testing.T) {
	bin := peers.Binary(t, "istiod-xds", "NAVARCH_ISTIOD_XDS_BIN")
	istiod, navarch := bothControlPlanes(t, bin, clientTLSParity)
	id := "sidecar~127.0.0.60~web-0.default~default.svc.cluster.local"
	md := map[string]any{"NAMESPACE": "default", "LABELS": map[string]any{"app": "web"}}
	keep := func(cs map[string]map[string]string) map[string]map[string]string {
		out := map[string]map[string]string{}
		for name, fields := range cs {
			if strings.Contains(name, "tls-") || strings.Contains(name, "mesh.default") {
				out[name] = fields
			}
		}
		return out
	}
	want := keep(clusterFields(t, envoyConfig(t, istiod, id, md).clusters))
	var got map[string]map[string]string
	eventually(t, 30*time.Second, "navarch's clusters", func() error {
		if got = keep(clusterFields(t, envoyConfig(t, navarch, id, md).clusters)); len(got) < len(want) {
			return fmt.Errorf("%d clusters, istiod has %d", len(got), len(want))
		}
		return nil
	})
	compareFields(t, want, got)
	if len(want["outbound|443||tls-2.example.com"]) == 0 || len(want["outbound|8080||mesh.default.svc.cluster.local"]) == 0 {
		t.Errorf("istiod gave none of the clusters this test compares: %v", slices.Sorted(maps.Keys(want)))
	}
}
