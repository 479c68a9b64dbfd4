package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/encoding/protojson"

	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"

	"github.com/navarch/navarch/xds"
)

// validEnvoyBootstrap builds an Envoy bootstrap and checks it against Envoy's own
// proto validation.
func validEnvoyBootstrap(t *testing.T, servers []string, n bootstrapNode, overTLS bool) *bootstrapv3.Bootstrap {
	t.Helper()
	doc, err := envoyBootstrap(servers, n, overTLS)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(doc)
	var bs bootstrapv3.Bootstrap
	if err := protojson.Unmarshal(b, &bs); err != nil {
		t.Fatalf("not an Envoy bootstrap: %v\n%s", err, b)
	}
	if err := bs.ValidateAll(); err != nil {
		t.Fatalf("invalid Envoy bootstrap: %v", err)
	}
	return &bs
}

// With --certs-dir, Envoy's ADS cluster talks mTLS with the agent's files.
func TestEnvoyBootstrapOverTLSIsValid(t *testing.T) {
	bs := validEnvoyBootstrap(t, []string{"127.0.0.1:15012"}, bootstrapNode{
		ID: "sidecar~10.0.0.1~web-1.shop~shop.svc.cluster.local", Namespace: "shop", CertDir: "/etc/navarch/certs"}, true)
	var tlsCtx tlsv3.UpstreamTlsContext
	if err := bs.GetStaticResources().GetClusters()[0].GetTransportSocket().GetTypedConfig().UnmarshalTo(&tlsCtx); err != nil {
		t.Fatalf("the ADS cluster's transport socket: %v", err)
	}
	if err := tlsCtx.ValidateAll(); err != nil {
		t.Fatal(err)
	}
	ctx := tlsCtx.GetCommonTlsContext()
	if ctx.GetTlsCertificates()[0].GetCertificateChain().GetFilename() != "/etc/navarch/certs/cert-chain.pem" ||
		ctx.GetValidationContext().GetTrustedCa().GetFilename() != "/etc/navarch/certs/root-cert.pem" {
		t.Fatalf("ADS TLS %v", ctx)
	}
}

// TestEnvoyBootstrapIsValid checks the Envoy bootstrap against Envoy's own proto
// validation: every node is an endpoint of the ADS cluster.
func TestEnvoyBootstrapIsValid(t *testing.T) {
	bs := validEnvoyBootstrap(t, []string{"127.0.0.1:15010", "127.0.0.2:15010"}, bootstrapNode{
		ID: "sidecar~10.0.0.1~web-1.shop~shop.svc.cluster.local", Namespace: "shop", Locality: "us-east/a/rack1"}, false)
	if l := bs.GetNode().GetLocality(); l.GetRegion() != "us-east" || l.GetZone() != "a" || l.GetSubZone() != "rack1" {
		t.Fatalf("node locality %v, want us-east/a/rack1", l)
	}
	if n := len(bs.GetStaticResources().GetClusters()[0].GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()); n != 2 {
		t.Fatalf("the ADS cluster has %d endpoints, want 2", n)
	}
}

// TestBootstrapNodeIsWhatTheServerReads: the node a bootstrap describes is parsed
// by the server into the proxy it says: its node, interception mode, HTTP proxy
// port and DNS capture.
func TestBootstrapNodeIsWhatTheServerReads(t *testing.T) {
	bs := validEnvoyBootstrap(t, []string{"127.0.0.1:15010"}, bootstrapNode{
		ID: "sidecar~10.0.0.1~vm-1.vms~vms.svc.cluster.local", Namespace: "vms", NodeName: "worker-3", Interception: "NONE", HTTPProxyPort: 15080,
		SelfDiscovery: true, ClusterID: "east", DNSCapture: true}, false)
	p, err := xds.ParseProxy(bs.GetNode())
	if err != nil {
		t.Fatal(err)
	}
	if p.NodeName != "worker-3" || !p.InterceptionNone || p.Namespace != "vms" || p.HTTPProxyPort != 15080 || !p.SelfDiscovery || p.ClusterID != "east" || !p.DNSCapture {
		t.Fatalf("the server reads node %q, interception none %v, namespace %q, HTTP proxy port %d, self-discovery %v, cluster %q, DNS capture %v",
			p.NodeName, p.InterceptionNone, p.Namespace, p.HTTPProxyPort, p.SelfDiscovery, p.ClusterID, p.DNSCapture)
	}
	// The local cluster the metadata says the bootstrap has.
	if got := bs.GetClusterManager().GetLocalClusterName(); got != "local_cluster" {
		t.Fatalf("cluster_manager.local_cluster_name %q, want local_cluster", got)
	}
	clusters := bs.GetStaticResources().GetClusters()
	if len(clusters) != 2 || clusters[1].GetName() != "local_cluster" || clusters[1].GetEdsClusterConfig().GetServiceName() != "local_cluster" {
		t.Fatalf("static clusters %v, want the ADS cluster and local_cluster by EDS", clusters)
	}
}

func TestGRPCBootstrapNamesTheCertificateProvider(t *testing.T) {
	doc := grpcBootstrap([]string{"dns://127.0.0.1:15053/xds.navarch.local:15010"}, bootstrapNode{
		ID: "sidecar~10.0.0.1~ratings-1.shop~shop.svc.cluster.local", Namespace: "shop", CertDir: "/etc/navarch/certs", Generator: "grpc"}, true)
	b, _ := json.Marshal(doc)
	var got struct {
		Servers []struct {
			Creds []struct {
				Type   string            `json:"type"`
				Config map[string]string `json:"config"`
			} `json:"channel_creds"`
		} `json:"xds_servers"`
		Template  string `json:"server_listener_resource_name_template"`
		Providers map[string]struct {
			Plugin string `json:"plugin_name"`
		} `json:"certificate_providers"`
	}
	json.Unmarshal(b, &got)
	if got.Template != "xds.istio.io/grpc/lds/inbound/%s" || got.Providers["default"].Plugin != "file_watcher" {
		t.Fatalf("bootstrap %s", b)
	}
	// xDS itself over mTLS with the workload's certificate.
	if len(got.Servers) != 1 || len(got.Servers[0].Creds) != 1 || got.Servers[0].Creds[0].Type != "tls" ||
		got.Servers[0].Creds[0].Config["certificate_file"] != "/etc/navarch/certs/cert-chain.pem" {
		t.Fatalf("xds_servers of %s", b)
	}
}

// TestEnvoyStatsTagsTakeNavarchNames applies the Envoy bootstrap's tag extractors,
// as Envoy does (the first group cut out of the name, the second the tag's value),
// to statistics named as the nodes name clusters, HTTP connection managers and TCP
// proxies (xds/statnames.go): each tag holds the whole name, dots and all, and what
// is left is the statistic's own name.
func TestEnvoyStatsTagsTakeNavarchNames(t *testing.T) {
	bs := validEnvoyBootstrap(t, []string{"127.0.0.1:15010"}, bootstrapNode{ID: "sidecar~10.0.0.1~web-1.shop~shop.svc.cluster.local", Namespace: "shop"}, false)
	if bs.GetStatsConfig().GetUseAllDefaultTags().GetValue() {
		t.Fatal("Envoy's default tags are on: its cluster_name would cut a host at its first dot")
	}
	extractors := map[string]*regexp.Regexp{}
	for _, tag := range bs.GetStatsConfig().GetStatsTags() {
		if re, err := regexp.Compile(tag.GetRegex()); err == nil { // Go has no look-ahead, which one of them uses
			extractors[tag.GetTagName()] = re
		}
	}
	for _, c := range []struct{ stat, tag, value, rest string }{
		{"cluster.outbound|9080|v1|reviews.shop.svc.cluster.local;.upstream_rq_total", "cluster_name", "outbound|9080|v1|reviews.shop.svc.cluster.local", "cluster.upstream_rq_total"},
		{"cluster.PassthroughCluster;.upstream_cx_total", "cluster_name", "PassthroughCluster", "cluster.upstream_cx_total"},
		{"http.outbound_0.0.0.0_9080;.downstream_rq_total", "http_conn_manager_prefix", "outbound_0.0.0.0_9080", "http.downstream_rq_total"},
		{"http.InboundPassthroughCluster;.downstream_rq_total", "http_conn_manager_prefix", "InboundPassthroughCluster", "http.downstream_rq_total"},
		{"tcp.outbound|5432||db.example.com.downstream_cx_total", "tcp_prefix", "outbound|5432||db.example.com", "tcp.downstream_cx_total"},
	} {
		re := extractors[c.tag]
		if re == nil {
			t.Fatalf("no %s tag in %v", c.tag, bs.GetStatsConfig().GetStatsTags())
		}
		m := re.FindStringSubmatchIndex(c.stat)
		if len(m) < 6 {
			t.Errorf("%s does not match %s's %s", c.stat, c.tag, re)
			continue
		}
		value, rest := c.stat[m[4]:m[5]], c.stat[:m[2]]+c.stat[m[3]:]
		if value != c.value || rest != c.rest {
			t.Errorf("%s: %s %q, left %q; want %q, left %q", c.stat, c.tag, value, rest, c.value, c.rest)
		}
	}
}

// TestProxyConfigFlag: --proxy-config is read strictly (an unknown field is named),
// merged over the mesh config's defaultConfig as istio-agent merges a pod's
// annotation, and read back by the nodes from the bootstrap's node.
func TestProxyConfigFlag(t *testing.T) {
	if _, err := parseProxyConfig("{gatewayTopology: {numTrustedProxy: 1}}"); err == nil || !strings.Contains(err.Error(), "numTrustedProxy") {
		t.Fatalf("an unknown field: %v, want an error naming it", err)
	}
	if _, err := parseProxyConfig("{gatewayTopology: {numTrustedProxies: many}}"); err == nil {
		t.Fatal("a count that is no number was taken")
	}
	own, err := parseProxyConfig("gatewayTopology: {numTrustedProxies: 2}\nproxyHeaders: {server: {disabled: true}}")
	if err != nil {
		t.Fatal(err)
	}
	defaults, err := parseProxyConfig(`{proxyHeaders: {requestId: {disabled: true}, server: {value: edge}}, tracing: {sampling: 5}}`)
	if err != nil {
		t.Fatal(err)
	}
	md, err := proxyConfigOver(defaults, own)
	if err != nil {
		t.Fatal(err)
	}
	bs := validEnvoyBootstrap(t, []string{"127.0.0.1:15010"}, bootstrapNode{
		ID: "router~10.0.0.1~gw-1.edge~edge.svc.cluster.local", Namespace: "edge", ProxyConfig: md}, false)
	p, err := xds.ParseProxy(bs.GetNode())
	if err != nil {
		t.Fatal(err)
	}
	pc := p.ProxyConfig
	if pc.GetGatewayTopology().GetNumTrustedProxies() != 2 || !pc.GetProxyHeaders().GetServer().GetDisabled().GetValue() ||
		!pc.GetProxyHeaders().GetRequestId().GetDisabled().GetValue() || pc.GetTracing().GetSampling() != 5 {
		t.Fatalf("the nodes read %v; want the flag's topology and server header over the mesh's request id and sampling", pc)
	}
}
