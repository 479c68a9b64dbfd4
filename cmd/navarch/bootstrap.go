package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"path/filepath"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	meshconfig "istio.io/api/mesh/v1alpha1"
	"sigs.k8s.io/yaml"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/client"
	"github.com/navarch/navarch/xds"
)

// bootstrapNode is who the proxy says it is.
type bootstrapNode struct {
	ID             string
	Namespace      string
	Labels         map[string]string
	ServiceAccount string
	Generator      string
	Network        string
	// Locality is "region/zone/sub-zone", the node's locality (locality load balancing).
	Locality string
	// NodeName is the node the proxy runs on (a pod's spec.nodeName).
	NodeName string
	// ClusterID is the Kubernetes cluster the proxy runs in.
	ClusterID string
	// Interception is how traffic reaches the proxy: "" (redirected) or NONE.
	Interception string
	// HTTPProxyPort is the port of 127.0.0.1 on which the proxy is its
	// application's HTTP proxy, 0 for none.
	HTTPProxyPort uint
	// SelfDiscovery gives an Envoy a local cluster, its own service's endpoints,
	// for zone-aware load balancing.
	SelfDiscovery bool
	// DNSCapture says a DNS proxy answers the workload's queries from the name
	// table (navarch agent run --dns-addr, istio-agent's DNS capture): the proxy
	// then knows ServiceEntries without addresses by those allocated to them.
	DNSCapture bool
	// CertDir holds the workload's certificate files (navarch agent certs --out).
	CertDir string
	// ProxyConfig is the proxy's own ProxyConfig as JSON (node metadata
	// PROXY_CONFIG), nil for none: the nodes then take the mesh config's
	// defaultConfig.
	ProxyConfig map[string]any
}

func runBootstrap(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("navarch bootstrap", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf clientFlags
	cf.register(fs)
	format := fs.String("format", "grpc", "grpc (a grpc-go xDS bootstrap) or envoy")
	ns := fs.String("n", "default", "namespace of the proxy")
	name := fs.String("name", "client", "name of the proxy (its pod or VM name)")
	ip := fs.String("ip", "127.0.0.1", "IP of the proxy")
	typ := fs.String("type", "sidecar", "proxy type: sidecar or router")
	ordered := fs.Bool("ordered", false, "list nodes by name instead of in random order (random spreads proxies over the nodes)")
	sa := fs.String("service-account", "", "the workload's service account (node metadata SERVICE_ACCOUNT)")
	certs := fs.String("certs-dir", "", "where navarch agent certs keeps the workload's certificate files: xDS over mTLS to the nodes (and, for grpc, mTLS between workloads)")
	plaintextXDS := fs.Bool("xds-plaintext", false, "with --certs-dir: talk xDS to the nodes' plaintext port instead of mTLS to their TLS port")
	labels := fs.String("labels", "", "the workload's labels, k=v,k2=v2 (node metadata LABELS)")
	network := fs.String("network", "", "the network the proxy is in (node metadata NETWORK): other networks' endpoints are reached through their gateways")
	locality := fs.String("locality", "", "where the proxy runs, region/zone/sub-zone (the node's locality): with a DestinationRule's outlier detection or localityLbSetting, nearer endpoints come first")
	interception := fs.String("interception-mode", "", "NONE for an Envoy whose traffic nothing redirects (a VM without iptables): its listeners bind ports on 127.0.0.1; TPROXY for one iptables hands traffic with TPROXY: its virtual listeners are transparent and keep the client's address (node metadata INTERCEPTION_MODE; default REDIRECT)")
	nodeName := fs.String("node-name", "", "the node the proxy runs on, a pod's spec.nodeName (node metadata NODE_NAME): node-local services (internalTrafficPolicy Local) send it their endpoints there only")
	clusterID := fs.String("cluster-id", "", "the Kubernetes cluster the proxy runs in, as the nodes name it (--kube-cluster-id; node metadata CLUSTER_ID): of cluster-local services it gets that cluster's endpoints only")
	dnsCapture := fs.Bool("dns-capture", false, "the workload resolves the mesh's names through a DNS proxy (navarch agent run --dns-addr, or istio-agent's DNS capture): the proxy then takes ServiceEntries without addresses at the addresses allocated to them, which the proxy answers with (node metadata DNS_CAPTURE)")
	selfDiscovery := fs.Bool("self-discovery", false, "for --format envoy: a local cluster, the endpoints of the workload's own service, which Envoy's zone-aware load balancing (a DestinationRule's zoneAwareLbSetting) weighs zones by (node metadata ENABLE_SELF_DISCOVERY)")
	httpProxyPort := fs.Uint("http-proxy-port", 0, "a port of 127.0.0.1 on which the Envoy is its application's HTTP proxy (http_proxy=127.0.0.1:PORT): every service's HTTP ports by the host and port a request names (node metadata HTTP_PROXY_PORT)")
	proxyConfig := fs.String("proxy-config", "", "for --format envoy: the proxy's own ProxyConfig, YAML or JSON, as Istio's proxy.istio.io/config annotation (e.g. '{gatewayTopology: {numTrustedProxies: 1}}'); merged over the mesh config's defaultConfig, it is sent as node metadata PROXY_CONFIG, which the nodes take instead of the mesh's")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	switch *interception {
	case "", "REDIRECT", "NONE", "TPROXY":
	default:
		return fmt.Errorf("--interception-mode %q: want REDIRECT, TPROXY or NONE", *interception)
	}
	if *httpProxyPort > 65535 {
		return fmt.Errorf("--http-proxy-port %d: want a port, 1-65535", *httpProxyPort)
	}
	var own *meshconfig.ProxyConfig
	if *proxyConfig != "" {
		if *format != "envoy" {
			return errors.New("--proxy-config is for --format envoy (grpc-go reads no ProxyConfig)")
		}
		var err error
		if own, err = parseProxyConfig(*proxyConfig); err != nil {
			return fmt.Errorf("--proxy-config: %w", err)
		}
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	ms, err := c.Members(ctx)
	if err != nil {
		return err
	}
	// A workload with a certificate talks xDS over mTLS to the nodes' TLS port, as
	// Istio's proxies to istiod's 15012: the node takes its identity from the
	// certificate, not from what the bootstrap claims, and serves it its secrets.
	overTLS := *certs != "" && !*plaintextXDS
	servers := xdsServers(ms, !*ordered, overTLS)
	if len(servers) == 0 {
		return errors.New("no live node serves xDS")
	}
	node := bootstrapNode{ID: fmt.Sprintf("%s~%s~%s.%s~%s.svc.cluster.local", *typ, *ip, *name, *ns, *ns), Namespace: *ns,
		ServiceAccount: *sa, CertDir: *certs, Network: *network, Locality: *locality, NodeName: *nodeName, ClusterID: *clusterID, Interception: *interception, HTTPProxyPort: *httpProxyPort, SelfDiscovery: *selfDiscovery, DNSCapture: *dnsCapture, Labels: map[string]string{}}
	for _, kv := range strings.Split(*labels, ",") {
		if k, v, ok := strings.Cut(strings.TrimSpace(kv), "="); ok {
			node.Labels[k] = v
		}
	}
	if own != nil {
		var defaults *meshconfig.ProxyConfig
		mesh, err := c.Get(ctx, api.MeshConfig.Name, api.MeshConfigNamespace, api.MeshConfigName)
		switch {
		case err == nil:
			defaults = mesh.Spec.(*meshconfig.MeshConfig).GetDefaultConfig()
		case !client.IsNotFound(err):
			return fmt.Errorf("reading the mesh config's defaultConfig: %w", err)
		}
		if node.ProxyConfig, err = proxyConfigOver(defaults, own); err != nil {
			return err
		}
	}
	var doc any
	switch *format {
	case "grpc":
		node.Generator = "grpc"
		if t := dnsTarget(ms, servers); t != "" {
			// One server whose name resolves to every node: grpc-go's channel holds
			// all their addresses and moves to another node when its node dies.
			// No other servers are listed: grpc-go switches between xds_servers
			// only as "fallback" (gRFC A71), never once it has its configuration,
			// and when it reverts from a fallback server to the first one it leaves
			// the resources it fetched meanwhile unsubscribed, frozen.
			servers = []string{t}
		}
		doc = grpcBootstrap(servers, node, overTLS)
	case "envoy":
		if doc, err = envoyBootstrap(servers, node, overTLS); err != nil {
			return err
		}
	default:
		return fmt.Errorf("--format must be grpc or envoy, got %q", *format)
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, string(b))
	return nil
}

// xdsServers lists the xDS addresses of the live nodes (their TLS ones when tls is
// set), shuffled when spread is set.
func xdsServers(ms []client.MemberInfo, spread, tls bool) []string {
	var out []string
	for _, m := range ms {
		addr := m.XDS
		if tls {
			addr = m.XDSTLS
		}
		if addr != "" && (m.Gossip == "alive" || m.Self) {
			out = append(out, addr)
		}
	}
	if spread {
		rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	}
	return out
}

// dnsTarget returns a gRPC target that resolves to every node, dns://<dns>/<name>:<port>,
// when the answering node serves the xDS name and every node serves xDS on one port.
func dnsTarget(ms []client.MemberInfo, servers []string) string {
	var self *client.MemberInfo
	for i := range ms {
		if ms[i].Self {
			self = &ms[i]
		}
	}
	if self == nil || self.DNS == "" || self.XDSName == "" {
		return ""
	}
	port := ""
	for _, s := range servers {
		_, p, err := net.SplitHostPort(s)
		if err != nil || (port != "" && p != port) {
			return ""
		}
		port = p
	}
	return "dns://" + self.DNS + "/" + self.XDSName + ":" + port
}

func nodeMetadata(n bootstrapNode) map[string]any {
	md := map[string]any{"NAMESPACE": n.Namespace}
	if n.Generator != "" {
		md["GENERATOR"] = n.Generator
	}
	if n.ServiceAccount != "" {
		md["SERVICE_ACCOUNT"] = n.ServiceAccount
	}
	if len(n.Labels) > 0 {
		md["LABELS"] = n.Labels
	}
	if n.Network != "" {
		md["NETWORK"] = n.Network
	}
	if n.NodeName != "" {
		md["NODE_NAME"] = n.NodeName
	}
	if n.ClusterID != "" {
		md["CLUSTER_ID"] = n.ClusterID
	}
	if n.Interception != "" {
		md["INTERCEPTION_MODE"] = n.Interception
	}
	if n.HTTPProxyPort != 0 {
		md["HTTP_PROXY_PORT"] = strconv.FormatUint(uint64(n.HTTPProxyPort), 10)
	}
	if n.SelfDiscovery {
		md["ENABLE_SELF_DISCOVERY"] = "true"
	}
	if n.DNSCapture {
		md["DNS_CAPTURE"] = "true"
	}
	if n.ProxyConfig != nil {
		md["PROXY_CONFIG"] = n.ProxyConfig
	}
	return md
}

// parseProxyConfig reads a ProxyConfig given as YAML or JSON, strictly: an unknown
// field or a wrong type is an error that names it.
func parseProxyConfig(s string) (*meshconfig.ProxyConfig, error) {
	j, err := yaml.YAMLToJSON([]byte(s))
	if err != nil {
		return nil, err
	}
	var pc meshconfig.ProxyConfig
	if err := protojson.Unmarshal(j, &pc); err != nil {
		return nil, err
	}
	return &pc, nil
}

// proxyConfigOver is own merged over defaults (the mesh config's defaultConfig, nil
// for none), as istio-agent merges a pod's proxy.istio.io/config annotation over
// it, as the JSON of node metadata PROXY_CONFIG.
func proxyConfigOver(defaults, own *meshconfig.ProxyConfig) (map[string]any, error) {
	merged := &meshconfig.ProxyConfig{}
	if defaults != nil {
		merged = proto.Clone(defaults).(*meshconfig.ProxyConfig)
	}
	proto.Merge(merged, own)
	b, err := protojson.Marshal(merged)
	if err != nil {
		return nil, err
	}
	var out map[string]any
	err = json.Unmarshal(b, &out)
	return out, err
}

// nodeDoc is the bootstrap's node: id, metadata, locality, and extra key/value pairs.
func nodeDoc(n bootstrapNode, extra ...string) map[string]any {
	doc := map[string]any{"id": n.ID, "metadata": nodeMetadata(n)}
	if n.Locality != "" {
		l := map[string]any{}
		for i, part := range strings.SplitN(n.Locality, "/", 3) {
			if part != "" {
				l[[]string{"region", "zone", "sub_zone"}[i]] = part
			}
		}
		doc["locality"] = l
	}
	for i := 0; i+1 < len(extra); i += 2 {
		doc[extra[i]] = extra[i+1]
	}
	return doc
}

// grpcBootstrap is a grpc-go xDS bootstrap listing the servers in order; grpc-go
// uses the first and falls back to the next only for resources it never received.
func grpcBootstrap(servers []string, n bootstrapNode, overTLS bool) map[string]any {
	creds := []map[string]any{{"type": "insecure"}}
	if overTLS {
		// grpc-go's "tls" channel credentials (gRFC A65) read the same files as the
		// certificate provider below, again when they change.
		creds = []map[string]any{{"type": "tls", "config": certFiles(n.CertDir)}}
	}
	var ss []map[string]any
	for _, s := range servers {
		ss = append(ss, map[string]any{
			"server_uri":      s,
			"channel_creds":   creds,
			"server_features": []string{"xds_v3"},
		})
	}
	doc := map[string]any{
		"xds_servers": ss,
		"node":        nodeDoc(n),
		// What an xds.NewGRPCServer asks for: its inbound listener, by address.
		"server_listener_resource_name_template": xds.InboundListenerPrefix + "%s",
	}
	if n.CertDir != "" {
		// The certificate provider instance the xDS resources name ("default", with
		// the certificates "default" and "ROOTCA"), reading the files navarch agent
		// certs keeps fresh.
		doc["certificate_providers"] = map[string]any{"default": map[string]any{
			"plugin_name": "file_watcher",
			"config":      certFiles(n.CertDir),
		}}
	}
	return doc
}

// certFiles configures grpc-go's file_watcher over the files navarch agent certs
// keeps in dir.
func certFiles(dir string) map[string]any {
	return map[string]any{
		"certificate_file":    filepath.Join(dir, "cert-chain.pem"),
		"private_key_file":    filepath.Join(dir, "key.pem"),
		"ca_certificate_file": filepath.Join(dir, "root-cert.pem"),
		"refresh_interval":    "60s",
	}
}

// envoyBootstrap is an Envoy bootstrap whose ADS cluster has every node as an
// endpoint; Envoy reconnects to another when its stream breaks.
func envoyBootstrap(servers []string, n bootstrapNode, overTLS bool) (map[string]any, error) {
	var lbEndpoints []any
	for _, s := range servers {
		host, port, err := net.SplitHostPort(s)
		if err != nil {
			return nil, err
		}
		p, _ := strconv.Atoi(port)
		lbEndpoints = append(lbEndpoints, map[string]any{"endpoint": map[string]any{"address": map[string]any{
			"socket_address": map[string]any{"address": host, "port_value": p},
		}}})
	}
	ads := map[string]any{"ads": map[string]any{}, "resource_api_version": "V3"}
	xdsCluster := map[string]any{
		"name":            "xds-grpc",
		"type":            "STATIC",
		"connect_timeout": "1s",
		"lb_policy":       "ROUND_ROBIN",
		"typed_extension_protocol_options": map[string]any{
			"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": map[string]any{
				"@type":                "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
				"explicit_http_config": map[string]any{"http2_protocol_options": map[string]any{}},
			},
		},
		"load_assignment": map[string]any{
			"cluster_name": "xds-grpc",
			"endpoints":    []any{map[string]any{"lb_endpoints": lbEndpoints}},
		},
	}
	if overTLS {
		xdsCluster["transport_socket"] = envoyXDSTLS(n.CertDir)
	}
	clusters := []any{xdsCluster}
	var clusterManager map[string]any
	if n.SelfDiscovery {
		// As istio-agent's bootstrap with ISTIO_META_ENABLE_SELF_DISCOVERY: the
		// local cluster by EDS, which the nodes fill with the workload's own
		// service's endpoints (xds/endpoints.go).
		clusters = append(clusters, map[string]any{
			"name":               "local_cluster",
			"type":               "EDS",
			"connect_timeout":    "1s",
			"eds_cluster_config": map[string]any{"eds_config": ads, "service_name": "local_cluster"},
		})
		clusterManager = map[string]any{"local_cluster_name": "local_cluster"}
	}
	doc := map[string]any{
		"node": nodeDoc(n, "cluster", "navarch"),
		"dynamic_resources": map[string]any{
			"ads_config": map[string]any{
				"api_type": "GRPC", "transport_api_version": "V3", "set_node_on_first_message_only": true,
				"grpc_services": []any{map[string]any{"envoy_grpc": map[string]any{"cluster_name": "xds-grpc"}}},
			},
			"cds_config": ads,
			"lds_config": ads,
		},
		"static_resources": map[string]any{"clusters": clusters},
		"stats_config":     map[string]any{"use_all_default_tags": false, "stats_tags": envoyStatsTags()},
	}
	if clusterManager != nil {
		doc["cluster_manager"] = clusterManager
	}
	return doc, nil
}

// envoyStatsTags are the tags Envoy takes out of its statistics' names, as
// istio-agent's bootstrap has them (Envoy's defaults would cut a cluster's name at
// the first dot of its host): the nodes end a cluster's stat name and an HTTP
// connection manager's stat prefix with ';' (xds/statnames.go). In each regular
// expression the first group is what is cut out of the name, the second the tag's
// value.
func envoyStatsTags() []any {
	tags := []struct{ name, regex string }{
		{"cluster_name", `^cluster(\.(.+);)`},
		{"http_conn_manager_prefix", `^http\.(((?:[_.[:digit:]\w]*|[_\[\]aAbBcCdDeEfF[:digit:]\w\:]*));\.)`},
		{"tcp_prefix", `^tcp\.((.*?)\.)\w+?$`},
		{"response_code", `_rq(_(\d{3}))$`},
		{"response_code_class", `_rq(_(\dxx))$`},
		{"http_conn_manager_listener_prefix", `^listener(?=\.).*?\.http\.(((?:[_.[:digit:]]*|[_\[\]aAbBcCdDeEfF[:digit:]]*))\.)`},
		{"listener_address", `^listener\.(((?:[_.[:digit:]]*|[_\[\]aAbBcCdDeEfF[:digit:]]*))\.)`},
		{"thread_name", `^server(\.(.+))\.watchdog`},
		{"authz_enforce_result", `rbac(\.(allowed|denied))`},
		{"authz_dry_run_action", `(\.istio_dry_run_(allow|deny)_)`},
		{"authz_dry_run_result", `(\.shadow_(allowed|denied))`},
	}
	out := make([]any, len(tags))
	for i, t := range tags {
		out[i] = map[string]any{"tag_name": t.name, "regex": t.regex}
	}
	return out
}

// envoyXDSTLS is the ADS cluster's mTLS with the files navarch agent certs keeps in
// dir: Envoy reads them again when the agent moves a renewed file into dir
// (watched_directory), and takes the nodes for navarch's (the name every node's
// serving certificate holds).
func envoyXDSTLS(dir string) map[string]any {
	file := func(name string) map[string]any { return map[string]any{"filename": filepath.Join(dir, name)} }
	watched := map[string]any{"path": dir}
	return map[string]any{
		"name": "envoy.transport_sockets.tls",
		"typed_config": map[string]any{
			"@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
			"sni":   "navarch",
			"common_tls_context": map[string]any{
				"alpn_protocols": []string{"h2"},
				"tls_certificates": []any{map[string]any{
					"certificate_chain": file("cert-chain.pem"), "private_key": file("key.pem"), "watched_directory": watched,
				}},
				"validation_context": map[string]any{
					"trusted_ca":                    file("root-cert.pem"),
					"watched_directory":             watched,
					"match_typed_subject_alt_names": []any{map[string]any{"san_type": "DNS", "matcher": map[string]any{"exact": "navarch"}}},
				},
			},
		},
	}
}
