package e2e

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	caresv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/network/dns_resolver/cares/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/navarch/navarch/internal/peers"
)

// bothControlPlanes serves config from istiod-xds (bin) and from a navarch dev node
// and returns their xDS addresses, once the node serves what was applied (a proxy
// that connected earlier could be sent the configuration before it).
func bothControlPlanes(t *testing.T, bin, config string) (istiod, navarch string) {
	t.Helper()
	istiod = startIstiod(t, bin, "127.0.0.1:0", config)
	node := startDevNode(t)
	applyServed(t, node, config)
	return istiod, node.XDS
}

// envoyClusterParity adds to workloadsYAML's reviews (no traffic policy) a ratings
// service with an endpoint that has a proxy (Istio's tlsMode label) and one that has
// none, under a DestinationRule with a connection pool, outlier detection and a
// subset of its own load balancer; and details, whose DestinationRule sets
// ISTIO_MUTUAL; and api.example.com, resolved by DNS, and rr.example.com, by DNS
// round robin; and dns, of a TCP and a UDP port (a UDP port has no cluster).
const envoyClusterParity = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings}
spec:
  hosts: [ratings.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: ratings}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ratings-proxied}
spec: {address: 127.0.0.7, labels: {app: ratings, version: v1, security.istio.io/tlsMode: istio}, serviceAccount: ratings}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ratings-bare}
spec: {address: 127.0.0.8, labels: {app: ratings, version: v2}, serviceAccount: ratings}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings}
spec:
  host: ratings.default.svc.cluster.local
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 10, connectTimeout: 2s}
      http: {http2MaxRequests: 20, maxRetries: 5}
    outlierDetection: {consecutive5xxErrors: 3, interval: 5s, baseEjectionTime: 30s, maxEjectionPercent: 50}
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
    trafficPolicy: {loadBalancer: {simple: RANDOM}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: details}
spec:
  hosts: [details.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.9}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: details}
spec:
  host: details.default.svc.cluster.local
  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external}
spec:
  hosts: [api.example.com]
  location: MESH_EXTERNAL
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external-rr}
spec:
  hosts: [rr.example.com]
  location: MESH_EXTERNAL
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS_ROUND_ROBIN
---
` + udpServiceParity

// udpServiceParity is a service of a TCP and a UDP port: the UDP port gets no
// listener and no cluster.
const udpServiceParity = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: dns}
spec:
  hosts: [dns.default.svc.cluster.local]
  addresses: [240.240.0.53]
  location: MESH_INTERNAL
  ports: [{number: 53, name: dns-tcp, protocol: TCP}, {number: 5353, name: dns-udp, protocol: UDP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.53}]
`

// TestSameEnvoyClustersAsIstiod gives istiod's discovery server and a navarch node the
// same services and DestinationRules and compares, cluster by cluster, what an Envoy
// sidecar gets from each: the clusters there are, and of each outbound one how it finds
// its endpoints (EDS, and how long it waits for them; DNS, and how it resolves), its
// load balancer, connect timeout, circuit-breaker limits, outlier detection and how it
// talks TLS (a transport socket, Istio's automatic mTLS matches, or none; SNI, ALPN,
// certificates and the server SANs it accepts). How the two express the rest (istiod's
// telemetry filters and metadata, its SDS cluster where navarch serves secrets over
// ADS) differs and is not compared.
func TestSameEnvoyClustersAsIstiod(t *testing.T) {
	bin := peers.Binary(t, "istiod-xds", "NAVARCH_ISTIOD_XDS_BIN")
	v1, v2 := startReviews(t)
	config := workloadsYAML(v1, v2) + "---\n" + envoyClusterParity
	istiod, navarch := bothControlPlanes(t, bin, config)

	id := "sidecar~127.0.0.60~web-0.default~default.svc.cluster.local"
	md := map[string]any{"NAMESPACE": "default", "LABELS": map[string]any{"app": "web"}, "ISTIO_VERSION": "1.24.1"}
	want := clusterSummaries(envoyConfig(t, istiod, id, md).clusters)
	var got map[string]string
	eventually(t, 30*time.Second, "navarch's clusters of every service", func() error {
		got = clusterSummaries(envoyConfig(t, navarch, id, md).clusters)
		if len(got) < len(want) {
			return fmt.Errorf("%d outbound clusters, istiod has %d", len(got), len(want))
		}
		return nil
	})
	compareNamed(t, want, got)
	if !strings.Contains(want["outbound|9080||ratings.default.svc.cluster.local"], "tls=matches:tlsMode-istio(") {
		t.Errorf("istiod did not give ratings automatic mTLS by endpoint, as this test expects: %s", want["outbound|9080||ratings.default.svc.cluster.local"])
	}
}

// upstreamTLS describes what a transport socket's TLS sends and checks: SNI, ALPN,
// its certificate and the server SANs it accepts ("" for no TLS).
func upstreamTLS(ts *corev3.TransportSocket) string {
	var u tlsv3.UpstreamTlsContext
	if ts.GetTypedConfig().UnmarshalTo(&u) != nil {
		return ""
	}
	c := u.CommonTlsContext
	var certs, sans []string
	for _, s := range c.GetTlsCertificateSdsSecretConfigs() {
		certs = append(certs, s.Name)
	}
	vc := c.GetCombinedValidationContext().GetDefaultValidationContext()
	//lint:ignore SA1019 what both put servers' SANs in
	for _, m := range vc.GetMatchSubjectAltNames() {
		sans = append(sans, m.GetExact())
	}
	sort.Strings(sans)
	return fmt.Sprintf("(sni=%s alpn=%v certs=%v ca=%s sans=%v)", u.Sni, c.GetAlpnProtocols(), certs,
		c.GetCombinedValidationContext().GetValidationContextSdsSecretConfig().GetName(), sans)
}

// clusterSummaries describes each outbound cluster (a gateway's SNI-DNAT clusters,
// outbound_.<port>_.<subset>_.<host>, too), and the passthrough clusters, by what
// TestSameEnvoyClustersAsIstiod compares, and names the others.
func clusterSummaries(cs map[string]*clusterv3.Cluster) map[string]string {
	out := map[string]string{}
	for name, c := range cs {
		var th []string
		for _, t := range c.GetCircuitBreakers().GetThresholds() {
			th = append(th, fmt.Sprintf("conn=%d pending=%d req=%d retries=%d", t.GetMaxConnections().GetValue(),
				t.GetMaxPendingRequests().GetValue(), t.GetMaxRequests().GetValue(), t.GetMaxRetries().GetValue()))
		}
		var http httpv3.HttpProtocolOptions
		if a := c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]; a != nil && a.UnmarshalTo(&http) != nil {
			out[name] = "undecodable HTTP protocol options"
			continue
		}
		switch {
		case name == "PassthroughCluster" || name == "InboundPassthroughCluster":
			out[name] = fmt.Sprintf("%s breakers=%v http-idle=%v downstream-protocol=%v", c.GetType(), th,
				http.GetCommonHttpProtocolOptions().GetIdleTimeout().AsDuration(), http.GetUseDownstreamProtocolConfig() != nil)
			continue
		case !strings.HasPrefix(name, "outbound|") && !strings.HasPrefix(name, "outbound_."):
			out[name] = "present" // BlackHoleCluster, inbound clusters: by name only
			continue
		}
		tls := "none"
		switch {
		case len(c.TransportSocketMatches) > 0:
			var ms []string
			for _, m := range c.TransportSocketMatches {
				ms = append(ms, m.Name+upstreamTLS(m.TransportSocket))
			}
			tls = "matches:" + strings.Join(ms, ",")
		case c.TransportSocket != nil:
			tls = "socket:" + c.TransportSocket.Name + upstreamTLS(c.TransportSocket)
		}
		od := "none"
		if o := c.OutlierDetection; o != nil {
			od = fmt.Sprintf("5xx=%d interval=%v ejection=%v max=%d%%", o.GetConsecutive_5Xx().GetValue(), o.GetInterval().AsDuration(),
				o.GetBaseEjectionTime().AsDuration(), o.GetMaxEjectionPercent().GetValue())
		}
		resolve := fmt.Sprintf("%s eds-wait=%v", c.GetType(), c.GetEdsClusterConfig().GetEdsConfig().GetInitialFetchTimeout().AsDuration())
		if c.GetType() == clusterv3.Cluster_STRICT_DNS || c.GetType() == clusterv3.Cluster_LOGICAL_DNS {
			//lint:ignore SA1019 the fields both set
			ttl, refresh, jitter := c.RespectDnsTtl, c.DnsRefreshRate.AsDuration(), c.DnsJitter.AsDuration()
			resolver := c.GetTypedDnsResolverConfig().GetName()
			var cares caresv3.CaresDnsResolverConfig
			if c.GetTypedDnsResolverConfig().GetTypedConfig().UnmarshalTo(&cares) == nil {
				resolver += fmt.Sprintf("(udp_max_queries=%d)", cares.GetUdpMaxQueries().GetValue())
			}
			resolve = fmt.Sprintf("%s family=%s ttl=%v refresh=%v jitter=%v resolver=%s", c.GetType(), c.DnsLookupFamily, ttl, refresh, jitter, resolver)
		}
		out[name] = fmt.Sprintf("%s lb=%s timeout=%v breakers=%v outlier=%s tls=%s", resolve, c.LbPolicy, c.ConnectTimeout.AsDuration(), th, od, tls)
	}
	return out
}

// envoyRouteParity is reviews' VirtualService (workloadsYAML's subsets) with most
// of what an HTTP route can say, and a Gateway with a VirtualService of its own.
const envoyRouteParity = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - name: jason
    match: [{headers: {end-user: {exact: jason}}, uri: {prefix: /api}, statPrefix: jason-api}]
    route: [{destination: {host: reviews, subset: v2}}]
    timeout: 3s
    retries: {attempts: 4, perTryTimeout: 1s, retryOn: "5xx,connect-failure,409"}
    rewrite: {uri: /v2/api}
    headers:
      request: {set: {x-version: v2}, add: {x-trace: "1"}, remove: [x-debug]}
      response: {remove: [server]}
  - name: faulty
    match: [{uri: {regex: "/faulty/.*"}, method: {exact: POST}}]
    fault:
      abort: {httpStatus: 418, percentage: {value: 10}}
      delay: {fixedDelay: 2s, percentage: {value: 5}}
    route: [{destination: {host: reviews, subset: v1}}]
    retries: {attempts: 0}
  - name: moved
    match: [{uri: {exact: /old}}]
    redirect: {uri: /new, redirectCode: 308}
  - name: mirrored
    match: [{uri: {prefix: /mirror}, queryParams: {debug: {exact: "1"}}}]
    route: [{destination: {host: reviews, subset: v1}}]
    mirror: {host: reviews, subset: v2}
    mirrorPercentage: {value: 50}
  - name: split
    route:
    - {destination: {host: reviews, subset: v1}, weight: 80}
    - {destination: {host: reviews, subset: v2}, weight: 20}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-public}
spec:
  hosts: [reviews.example.com]
  gateways: [public]
  http:
  - match: [{uri: {prefix: /reviews}}]
    route: [{destination: {host: reviews, subset: v1}}]
    timeout: 2s
    corsPolicy: {allowOrigins: [{exact: "https://a.example.com"}], allowMethods: [GET], maxAge: 24h}
  - route: [{destination: {host: reviews, subset: v2}}]
`

// TestSameEnvoyRoutesAsIstiod compares the route configuration an Envoy sidecar gets
// for port 9080 from istiod and from navarch for a VirtualService with matches,
// timeouts, retries, rewrites, header changes, faults, a redirect, a mirror and a
// split, and a gateway's for port 80 (CORS): the configuration's settings, and route
// by route what it matches and what it does, and the names each virtual host answers
// to (both have Envoy ignore ports).
func TestSameEnvoyRoutesAsIstiod(t *testing.T) {
	bin := peers.Binary(t, "istiod-xds", "NAVARCH_ISTIOD_XDS_BIN")
	v1, v2 := startReviews(t)
	config := workloadsYAML(v1, v2) + "---\n" + envoyRouteParity
	istiod, navarch := bothControlPlanes(t, bin, config)

	sidecar := "sidecar~127.0.0.61~web-0.default~default.svc.cluster.local"
	gateway := "router~127.0.0.62~gw-0.default~default.svc.cluster.local"
	labels := func(l map[string]any) map[string]any { return map[string]any{"NAMESPACE": "default", "LABELS": l} }
	web, ingress := labels(map[string]any{"app": "web"}), labels(map[string]any{"istio": "ingressgateway"})
	want := append(routeSummaries(t, envoyRoutes(t, istiod, sidecar, web, "9080")), routeSummaries(t, envoyRoutes(t, istiod, gateway, ingress, "http.80"))...)
	var got []string
	eventually(t, 30*time.Second, "navarch's routes of the VirtualServices", func() error {
		got = append(routeSummaries(t, envoyRoutes(t, navarch, sidecar, web, "9080")), routeSummaries(t, envoyRoutes(t, navarch, gateway, ingress, "http.80"))...)
		if all := strings.Join(got, "\n"); !strings.Contains(all, "jason") || !strings.Contains(all, "reviews.example.com") {
			return fmt.Errorf("no route jason or no gateway's route yet")
		}
		return nil
	})
	if len(got) != len(want) {
		t.Errorf("%d virtual hosts and routes through navarch, %d through istiod", len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			t.Errorf("\n\tistiod:  %s\n\tnavarch: %s", want[i], got[i])
		}
	}
	if t.Failed() {
		t.Logf("istiod:\n%s\nnavarch:\n%s", strings.Join(want, "\n"), strings.Join(got, "\n"))
	}
	if all := strings.Join(want, "\n"); !strings.Contains(all, "envoy.filters.http.fault=") || !strings.Contains(all, "envoy.filters.http.cors=") {
		t.Error("istiod's routes have no fault or no CORS policy: the comparison is not what this test means it to be")
	}
}

// envoyRoutes asks server over ADS, as an Envoy sidecar with node id and metadata md,
// for the route configuration name.
func envoyRoutes(t *testing.T, server, id string, md map[string]any, name string) *routev3.RouteConfiguration {
	t.Helper()
	st, node := adsStream(t, server, id, md)
	if err := st.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: resourcev3.RouteType, ResourceNames: []string{name}}); err != nil {
		t.Fatal(err)
	}
	for {
		res, err := st.Recv()
		if err != nil {
			t.Fatalf("routes from %s: %v", server, err)
		}
		for _, a := range res.Resources {
			var rc routev3.RouteConfiguration
			if a.UnmarshalTo(&rc) == nil && rc.Name == name {
				return &rc
			}
		}
	}
}

// routeSummaries describes rc by what TestSameEnvoyRoutesAsIstiod compares: its own
// settings (every field but the virtual hosts), and each virtual host (by name) and
// each of its routes in order: what a route matches and does, its header changes
// and per-route filter configuration (faults); the names a virtual host answers to,
// without ports, and its other settings.
func routeSummaries(t *testing.T, rc *routev3.RouteConfiguration) []string {
	t.Helper()
	js := func(m proto.Message) string {
		if m == nil || !m.ProtoReflect().IsValid() {
			return "-"
		}
		b, err := protojson.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	vhosts := slices.Clone(rc.VirtualHosts)
	slices.SortFunc(vhosts, func(a, b *routev3.VirtualHost) int { return strings.Compare(a.Name, b.Name) })
	settings := proto.Clone(rc).(*routev3.RouteConfiguration)
	settings.VirtualHosts = nil
	out := []string{"configuration " + js(settings)}
	for _, vh := range vhosts {
		vs := proto.Clone(vh).(*routev3.VirtualHost)
		vs.Name, vs.Domains, vs.Routes = "", nil, nil
		vs.RequestHeadersToAdd, vs.RequestHeadersToRemove, vs.ResponseHeadersToAdd, vs.ResponseHeadersToRemove = nil, nil, nil, nil
		domains := map[string]bool{}
		for _, d := range vh.Domains {
			if h, _, ok := strings.Cut(d, ":"); ok {
				d = h
			}
			domains[d] = true
		}
		names := make([]string, 0, len(domains))
		for d := range domains {
			names = append(names, d)
		}
		sort.Strings(names)
		out = append(out, fmt.Sprintf("vhost %s domains=%v headers=%s settings=%s", vh.Name, names,
			headerChanges(js, vh.RequestHeadersToAdd, vh.RequestHeadersToRemove, vh.ResponseHeadersToAdd, vh.ResponseHeadersToRemove), js(vs)))
		for _, r := range vh.Routes {
			m := proto.Clone(r.Match).(*routev3.RouteMatch)
			m.CaseSensitive = nil // true, Envoy's default, through istiod
			var action string
			switch a := r.Action.(type) {
			case *routev3.Route_Route:
				ra := a.Route
				rp := ra.GetRetryPolicy()
				codes := slices.Clone(rp.GetRetriableStatusCodes())
				slices.Sort(codes)
				var mirrors []string
				for _, mp := range ra.RequestMirrorPolicies {
					mirrors = append(mirrors, mp.Cluster+"@"+js(mp.RuntimeFraction.GetDefaultValue()))
				}
				action = fmt.Sprintf("route cluster=%s weighted=%s timeout=%v retries=[on=%s n=%d per-try=%v codes=%v] rewrite=%s/%s mirrors=%v",
					ra.GetCluster(), js(ra.GetWeightedClusters()), ra.GetTimeout().AsDuration(), rp.GetRetryOn(), rp.GetNumRetries().GetValue(),
					rp.GetPerTryTimeout().AsDuration(), codes, ra.PrefixRewrite, js(ra.RegexRewrite), mirrors)
			case *routev3.Route_Redirect:
				action = "redirect " + js(a.Redirect)
			case *routev3.Route_DirectResponse:
				action = "direct " + js(a.DirectResponse)
			}
			var filters []string
			for _, k := range slices.Sorted(maps.Keys(r.TypedPerFilterConfig)) {
				filters = append(filters, k+"="+string(r.TypedPerFilterConfig[k].Value))
			}
			out = append(out, fmt.Sprintf("  route %q match=%s %s headers=%s filters=%q", r.Name, js(m), action,
				headerChanges(js, r.RequestHeadersToAdd, r.RequestHeadersToRemove, r.ResponseHeadersToAdd, r.ResponseHeadersToRemove), filters))
		}
	}
	return out
}

// headerChanges describes header changes.
func headerChanges(js func(proto.Message) string, addReq []*corev3.HeaderValueOption, removeReq []string,
	addResp []*corev3.HeaderValueOption, removeResp []string) string {
	var add []string
	for _, h := range append(slices.Clone(addReq), addResp...) {
		add = append(add, js(h))
	}
	return fmt.Sprintf("add=%v remove=%v/%v", add, removeReq, removeResp)
}

// TestSameEnvoyConnectionManagersAsIstiod compares the HTTP connection managers an
// Envoy sidecar (outbound on 9080, inbound on its own port 8080) and a gateway (port
// 80) get from istiod and from navarch: how they take upgrades, idle streams, paths,
// 100-continue, the client's address and certificate. Their HTTP filters and
// telemetry differ (istiod's are istio-proxy's own) and are not compared.
func TestSameEnvoyConnectionManagersAsIstiod(t *testing.T) {
	bin := peers.Binary(t, "istiod-xds", "NAVARCH_ISTIOD_XDS_BIN")
	v1, v2 := startReviews(t)
	config := workloadsYAML(v1, v2) + "---\n" + envoyRouteParity + `---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web}
spec:
  hosts: [web.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: web}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web}
spec: {address: 127.0.0.64, labels: {app: web}}
`
	istiod, navarch := bothControlPlanes(t, bin, config)

	sidecar := "sidecar~127.0.0.64~web-0.default~default.svc.cluster.local"
	gateway := "router~127.0.0.65~gw-0.default~default.svc.cluster.local"
	labels := func(l map[string]any) map[string]any { return map[string]any{"NAMESPACE": "default", "LABELS": l} }
	summarize := func(server string) map[string][]string {
		out := map[string][]string{}
		side := envoyConfig(t, server, sidecar, labels(map[string]any{"app": "web"})).listeners
		gw := envoyConfig(t, server, gateway, labels(map[string]any{"istio": "ingressgateway"})).listeners
		out["outbound 9080"] = connectionManagers(t, side["0.0.0.0_9080"], 0)
		out["inbound 8080"] = connectionManagers(t, side["virtualInbound"], 8080)
		out["gateway 80"] = connectionManagers(t, gw["0.0.0.0_80"], 0)
		return out
	}
	want := summarize(istiod)
	var got map[string][]string
	eventually(t, 30*time.Second, "navarch's connection managers", func() error {
		got = summarize(navarch)
		for k, v := range got {
			if len(v) == 0 {
				return fmt.Errorf("no connection manager for %s yet", k)
			}
		}
		return nil
	})
	for _, k := range []string{"outbound 9080", "inbound 8080", "gateway 80"} {
		if len(want[k]) == 0 {
			t.Errorf("%s: istiod has no connection manager, which this test expects", k)
		}
		if fmt.Sprint(got[k]) != fmt.Sprint(want[k]) {
			t.Errorf("%s:\n\tistiod:  %v\n\tnavarch: %v", k, want[k], got[k])
		}
	}
}

// connectionManagers describes the distinct HTTP connection managers of l's filter
// chains (of those for destination port port, if given) by what
// TestSameEnvoyConnectionManagersAsIstiod compares.
func connectionManagers(t *testing.T, l *listenerv3.Listener, port uint32) []string {
	t.Helper()
	seen := map[string]bool{}
	var out []string
	for _, fc := range l.GetFilterChains() {
		if port != 0 && fc.GetFilterChainMatch().GetDestinationPort().GetValue() != port {
			continue
		}
		for _, f := range fc.Filters {
			var h hcmv3.HttpConnectionManager
			if f.GetTypedConfig().UnmarshalTo(&h) != nil {
				continue
			}
			var upgrades []string
			for _, u := range h.UpgradeConfigs {
				upgrades = append(upgrades, u.UpgradeType)
			}
			b, err := protojson.Marshal(h.SetCurrentClientCertDetails)
			if err != nil {
				t.Fatal(err)
			}
			s := fmt.Sprintf("upgrades=%v idle=%v normalize=%v slashes=%s continue=%v remote=%v xfcc=%s/%s", upgrades,
				h.StreamIdleTimeout.AsDuration(), h.NormalizePath.GetValue(), h.PathWithEscapedSlashesAction, h.Proxy_100Continue,
				h.UseRemoteAddress.GetValue(), h.ForwardClientCertDetails, b)
			if !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	sort.Strings(out)
	return out
}

// TestSameEnvoyInboundChainsAsIstiod compares how an Envoy sidecar takes
// connections to its own ports (HTTP 8080, TCP 5432) from istiod and from navarch
// under each PeerAuthentication mode: for connections of each kind (plaintext; TLS
// offering the mesh's ALPN as navarch's and Istio's sidecars do, HTTP's or none),
// whether the sidecar terminates mTLS (asking a client certificate) or hands the
// bytes to the application as they came, as Envoy picks a chain (inboundAction);
// then the chains themselves (gatewayChains), and the virtual inbound listener's
// listener filters, field by field (a TLS inspector only for the ports some chain
// tells TLS apart on, an HTTP inspector for those where some chain takes plaintext
// HTTP).
func TestSameEnvoyInboundChainsAsIstiod(t *testing.T) {
	bin := peers.Binary(t, "istiod-xds", "NAVARCH_ISTIOD_XDS_BIN")
	const web = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web}
spec:
  hosts: [web.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 8080, name: http, protocol: HTTP}, {number: 5432, name: tcp, protocol: TCP}]
  resolution: STATIC
  workloadSelector: {labels: {app: web}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web}
spec: {address: 127.0.0.66, labels: {app: web}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  mtls: {mode: MODE}
`
	id := "sidecar~127.0.0.66~web-0.default~default.svc.cluster.local"
	md := map[string]any{"NAMESPACE": "default", "LABELS": map[string]any{"app": "web"}}
	for _, mode := range []string{"STRICT", "PERMISSIVE", "DISABLE"} {
		t.Run(mode, func(t *testing.T) {
			config := strings.Replace(web, "MODE", mode, 1)
			istiod, navarch := bothControlPlanes(t, bin, config)
			for _, port := range []uint32{8080, 5432} {
				want := inboundChains(t, envoyConfig(t, istiod, id, md).listeners["virtualInbound"], port)
				var got []string
				eventually(t, 30*time.Second, "navarch's inbound chains", func() error {
					got = inboundChains(t, envoyConfig(t, navarch, id, md).listeners["virtualInbound"], port)
					if len(got) == 0 {
						return fmt.Errorf("no chain for port %d yet", port)
					}
					return nil
				})
				if len(want) == 0 {
					t.Errorf("port %d: istiod has no chain, which this test expects", port)
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("port %d:\n\tistiod:  %v\n\tnavarch: %v", port, want, got)
				}
			}
			inbound := func(server string) map[string]string {
				l := envoyConfig(t, server, id, md).listeners["virtualInbound"]
				chains, _ := gatewayChains(t, map[string]*listenerv3.Listener{"virtualInbound": l})
				var filters []string
				for _, f := range l.GetListenerFilters() {
					b, err := protojson.Marshal(f)
					if err != nil {
						t.Fatal(err)
					}
					filters = append(filters, string(b))
				}
				chains["listener filters"] = fmt.Sprint(filters)
				return chains
			}
			compareNamed(t, inbound(istiod), inbound(navarch))
		})
	}
}

// inboundProbes are the connections TestSameEnvoyInboundChainsAsIstiod makes: a
// transport protocol and the ALPN the client offers.
var inboundProbes = []struct {
	transport string
	alpn      []string
}{
	{"raw_buffer", nil},
	{"tls", []string{"istio-peer-exchange", "istio"}},
	{"tls", []string{"istio-peer-exchange", "istio", "h2"}},
	{"tls", []string{"istio-http/1.1"}},
	{"tls", []string{"h2", "http/1.1"}},
	{"tls", nil},
}

// inboundChains describes, for each of inboundProbes to destination port port,
// what l does with it (inboundAction).
func inboundChains(t *testing.T, l *listenerv3.Listener, port uint32) []string {
	t.Helper()
	var out []string
	for _, p := range inboundProbes {
		out = append(out, fmt.Sprintf("%s%v: %s", p.transport, p.alpn, inboundAction(t, l, port, p.transport, p.alpn)))
	}
	return out
}

// inboundAction is what the chain Envoy picks for a connection does: its filter
// chain match narrowed by destination port, then transport protocol (a chain that
// names it before one that names none), then ALPN (one that names an offered
// protocol before one that names none); "to the application" where no chain of the
// port matches (a catch-all passes it through) or the chain terminates no TLS.
func inboundAction(t *testing.T, l *listenerv3.Listener, port uint32, transport string, alpn []string) string {
	t.Helper()
	best, score := (*listenerv3.FilterChain)(nil), -1
	for _, fc := range l.GetFilterChains() {
		m := fc.GetFilterChainMatch()
		if m.GetDestinationPort().GetValue() != port {
			continue
		}
		sc := 0
		switch m.GetTransportProtocol() {
		case transport:
			sc += 2
		case "":
		default:
			continue
		}
		if ap := m.GetApplicationProtocols(); len(ap) > 0 {
			if !slices.ContainsFunc(ap, func(p string) bool { return slices.Contains(alpn, p) }) {
				continue
			}
			sc++
		}
		if sc > score {
			best, score = fc, sc
		}
	}
	ts := best.GetTransportSocket()
	if ts == nil {
		return "to the application"
	}
	var d tlsv3.DownstreamTlsContext
	if err := ts.GetTypedConfig().UnmarshalTo(&d); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("TLS terminated (client certificate required %v)", d.RequireClientCertificate.GetValue())
}

// TestSameGatewayTLSAsIstiod compares what a gateway's HTTPS servers (SIMPLE, and
// MUTUAL with a client SAN) terminate TLS with, from istiod and from navarch: the
// certificates and CA by SDS under Istio's names, the client SANs it accepts, ALPN
// and whether it asks for a client certificate.
func TestSameGatewayTLSAsIstiod(t *testing.T) {
	bin := peers.Binary(t, "istiod-xds", "NAVARCH_ISTIOD_XDS_BIN")
	v1, v2 := startReviews(t)
	config := workloadsYAML(v1, v2) + `---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: SIMPLE, credentialName: shop-cert}
  - port: {number: 8443, name: mtls, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: MUTUAL, credentialName: shop-cert, subjectAltNames: [client.example.com], minProtocolVersion: TLSV1_3}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-public}
spec:
  hosts: [reviews.example.com]
  gateways: [public]
  http:
  - route: [{destination: {host: reviews, subset: v1}}]
`
	istiod, navarch := bothControlPlanes(t, bin, config)
	id := "router~127.0.0.67~gw-0.default~default.svc.cluster.local"
	md := map[string]any{"NAMESPACE": "default", "LABELS": map[string]any{"istio": "ingressgateway"}}
	describe := func(server string) map[string]string {
		out := map[string]string{}
		for name, l := range envoyConfig(t, server, id, md).listeners {
			for _, fc := range l.FilterChains {
				var d tlsv3.DownstreamTlsContext
				if fc.GetTransportSocket().GetTypedConfig().UnmarshalTo(&d) != nil {
					continue
				}
				c := d.CommonTlsContext
				var certs []string
				for _, s := range c.TlsCertificateSdsSecretConfigs {
					certs = append(certs, s.Name)
				}
				vc := c.GetCombinedValidationContext()
				var sans []string
				//lint:ignore SA1019 what both put clients' SANs in
				for _, m := range vc.GetDefaultValidationContext().GetMatchSubjectAltNames() {
					sans = append(sans, m.GetExact())
				}
				out[name] = fmt.Sprintf("certs=%v ca=%s sans=%v typed-sans=%d alpn=%v client-cert=%v tls=%s-%s", certs,
					vc.GetValidationContextSdsSecretConfig().GetName(), sans, len(vc.GetDefaultValidationContext().GetMatchTypedSubjectAltNames()),
					c.AlpnProtocols, d.RequireClientCertificate.GetValue(), c.GetTlsParams().GetTlsMinimumProtocolVersion(), c.GetTlsParams().GetTlsMaximumProtocolVersion())
			}
		}
		return out
	}
	want := describe(istiod)
	var got map[string]string
	eventually(t, 30*time.Second, "navarch's gateway listeners", func() error {
		if got = describe(navarch); len(got) < len(want) {
			return fmt.Errorf("%d TLS listeners, istiod has %d", len(got), len(want))
		}
		return nil
	})
	for _, name := range []string{"0.0.0.0_443", "0.0.0.0_8443"} {
		if want[name] == "" {
			t.Errorf("%s: istiod terminates no TLS there, which this test expects", name)
		}
		if got[name] != want[name] {
			t.Errorf("%s:\n\tistiod:  %s\n\tnavarch: %s", name, want[name], got[name])
		}
	}
}

// TestSameEnvoyTCPRoutesAsIstiod compares where an Envoy sidecar sends TCP and TLS
// connections, from istiod and from navarch: a TCP service at its address with a
// weighted split between subsets, and TLS by SNI to a host a tls route sends
// elsewhere. Each filter chain (a listener's default chain counts as one matching
// everything) by its match and where its TCP proxy goes.
func TestSameEnvoyTCPRoutesAsIstiod(t *testing.T) {
	bin := peers.Binary(t, "istiod-xds", "NAVARCH_ISTIOD_XDS_BIN")
	const config = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db}
spec:
  hosts: [db.default.svc.cluster.local]
  addresses: [10.9.0.5]
  location: MESH_INTERNAL
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.20, labels: {v: a}}, {address: 127.0.0.21, labels: {v: b}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: db}
spec:
  host: db.default.svc.cluster.local
  subsets: [{name: a, labels: {v: a}}, {name: b, labels: {v: b}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: db}
spec:
  hosts: [db.default.svc.cluster.local]
  tcp:
  - route: [{destination: {host: db.default.svc.cluster.local, subset: a}, weight: 70}, {destination: {host: db.default.svc.cluster.local, subset: b}, weight: 30}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext}
spec:
  hosts: [a.example.com, b.example.com]
  location: MESH_EXTERNAL
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ext}
spec:
  hosts: [a.example.com]
  tls:
  - match: [{sniHosts: [a.example.com], port: 443}]
    route: [{destination: {host: b.example.com, port: {number: 443}}}]
`
	istiod, navarch := bothControlPlanes(t, bin, config)
	id := "sidecar~127.0.0.70~web-0.default~default.svc.cluster.local"
	md := map[string]any{"NAMESPACE": "default", "LABELS": map[string]any{"app": "web"}}
	describe := func(server string) []string {
		var out []string
		listeners := envoyConfig(t, server, id, md).listeners
		for _, name := range []string{"10.9.0.5_5432", "0.0.0.0_443"} {
			l := listeners[name]
			chains := slices.Clone(l.GetFilterChains())
			if d := l.GetDefaultFilterChain(); d != nil {
				chains = append(chains, d)
			}
			for _, fc := range chains {
				for _, f := range fc.Filters {
					var tp tcpv3.TcpProxy
					if f.GetTypedConfig().UnmarshalTo(&tp) != nil {
						continue
					}
					m, err := protojson.Marshal(fc.GetFilterChainMatch())
					if err != nil {
						t.Fatal(err)
					}
					w, err := protojson.Marshal(tp.GetWeightedClusters())
					if err != nil {
						t.Fatal(err)
					}
					out = append(out, fmt.Sprintf("%s match=%s -> %s%s", name, m, tp.GetCluster(), w))
				}
			}
		}
		sort.Strings(out)
		return out
	}
	want := describe(istiod)
	var got []string
	eventually(t, 30*time.Second, "navarch's TCP listeners", func() error {
		if got = describe(navarch); len(got) < len(want) {
			return fmt.Errorf("%d chains, istiod has %d", len(got), len(want))
		}
		return nil
	})
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("\n\tistiod:  %s\n\tnavarch: %s", strings.Join(want, "\n\t         "), strings.Join(got, "\n\t         "))
	}
	if len(want) < 3 {
		t.Errorf("istiod has %d TCP chains here, this test expects 3 or more: %v", len(want), want)
	}
}

// TestSameInboundByAddressAsIstiod gives both a ServiceEntry that lists its
// endpoints inline (an HTTP port the first endpoint serves on another port, a TCP
// port and one of no protocol) and compares what an Envoy sidecar at each endpoint's
// address, and at none, gets: every listener's filter chains (the virtual inbound
// listener's for the service's ports), every cluster field by field (inbound
// clusters included), and the route configuration of port 80, whose virtual host
// answers to the service's address too. istiod finds a sidecar's services by its IP; navarch serves
// the services that list an endpoint at the proxy's address on its inbound side
// too, beside those that select it by labels.
func TestSameInboundByAddressAsIstiod(t *testing.T) {
	bin := peers.Binary(t, "istiod-xds", "NAVARCH_ISTIOD_XDS_BIN")
	istiod, navarch := bothControlPlanes(t, bin, `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: legacy}
spec:
  hosts: [legacy.default.svc.cluster.local]
  location: MESH_INTERNAL
  addresses: [240.240.0.81]
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 5432, name: tcp, protocol: TCP}, {number: 7070, name: auto}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.81, ports: {http: 8080}, labels: {security.istio.io/tlsMode: istio}}, {address: 127.0.0.82}]
`)
	for _, c := range []struct{ what, ip string }{{"the first endpoint", "127.0.0.81"}, {"the second", "127.0.0.82"}, {"no endpoint", "127.0.0.83"}} {
		t.Run(c.what, func(t *testing.T) {
			id := "sidecar~" + c.ip + "~vm-0.default~default.svc.cluster.local"
			md := map[string]any{"NAMESPACE": "default", "LABELS": map[string]any{"app": "vm"}}
			chains := compareDescribed(t, "listeners", istiod, navarch, func(server string) map[string]string {
				out, _ := gatewayChains(t, envoyConfig(t, server, id, md).listeners)
				return out
			})
			if inbound := chains["virtualInbound"]; (c.ip != "127.0.0.83") != strings.Contains(inbound, "inbound|5432|") {
				t.Errorf("istiod's inbound chains %s: the comparison is not what this test means it to be", inbound)
			}
			compareFields(t, clusterFields(t, envoyConfig(t, istiod, id, md).clusters), clusterFields(t, envoyConfig(t, navarch, id, md).clusters))
			routes := func(server string) map[string]map[string]string {
				return map[string]map[string]string{"80": protoFields(t, envoyRoutes(t, server, id, md, "80"), gatewayRouteFieldsNotCompared, grpcTimeoutAsReplacement)}
			}
			want := routes(istiod)
			if !slices.Contains(slices.Collect(maps.Values(want["80"])), "240.240.0.81") {
				t.Errorf("istiod's routes answer to no address: the comparison is not what this test means it to be")
			}
			compareFields(t, want, routes(navarch))
		})
	}
}
