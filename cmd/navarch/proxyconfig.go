package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/navarch/navarch/xds"
)

// proxyConfigViews are the summaries `navarch proxy-config <view>` prints, as
// istioctl proxy-config's subcommands do: one row per cluster, listener filter
// chain, route or endpoint, filtered by the view's flags.
var proxyConfigViews = []string{"clusters", "listeners", "routes", "endpoints"}

// proxyConfigFilter narrows a view's rows, as istioctl's flags do.
type proxyConfigFilter struct {
	fqdn, subset, direction string // clusters
	port                    uint   // clusters, listeners, endpoints
	address                 string // listeners, endpoints
	name                    string // routes
	cluster, status         string // endpoints
}

// dumpItem is one resource of /debug/proxy-config.
type dumpItem struct {
	Name     string          `json:"name"`
	Resource json.RawMessage `json:"resource"`
}

// decodeDump reads the resources of typeURL in a /debug/proxy-config answer into
// messages made by newMsg.
func decodeDump[M proto.Message](raw []byte, typeURL string, newMsg func() M) ([]M, error) {
	var dump map[string]json.RawMessage
	if err := json.Unmarshal(raw, &dump); err != nil {
		return nil, err
	}
	var items []dumpItem
	if b := dump[typeURL]; b != nil {
		if err := json.Unmarshal(b, &items); err != nil {
			return nil, err
		}
	}
	out := make([]M, 0, len(items))
	for _, it := range items {
		m := newMsg()
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(it.Resource, m); err != nil {
			return nil, fmt.Errorf("%s: %w", it.Name, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// writeProxyConfigView prints one view of a /debug/proxy-config answer.
func writeProxyConfigView(w io.Writer, view string, raw []byte, f proxyConfigFilter) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	var err error
	switch view {
	case "clusters":
		err = writeClusters(tw, raw, f)
	case "listeners":
		err = writeListeners(tw, raw, f)
	case "routes":
		err = writeRoutesView(tw, raw, f)
	case "endpoints":
		err = writeEndpoints(tw, raw, f)
	}
	if err != nil {
		return err
	}
	return tw.Flush()
}

// writeClusters prints SERVICE FQDN, PORT, SUBSET, DIRECTION, TYPE and the
// DestinationRule of each cluster, as istioctl proxy-config clusters.
func writeClusters(w io.Writer, raw []byte, f proxyConfigFilter) error {
	clusters, err := decodeDump(raw, xds.ClusterType, func() *clusterv3.Cluster { return &clusterv3.Cluster{} })
	if err != nil {
		return err
	}
	type row struct {
		host, direction, subset, typ, rule string
		port                               int
	}
	var rows []row
	for _, c := range clusters {
		r := row{host: c.Name, direction: "-", subset: "-"}
		if parts := strings.Split(c.Name, "|"); len(parts) == 4 {
			r.port, _ = strconv.Atoi(parts[1])
			r.direction, r.subset, r.host = parts[0], dash(parts[2]), parts[3]
		}
		if f.fqdn != "" && !strings.HasPrefix(r.host, f.fqdn) || f.subset != "" && r.subset != f.subset ||
			f.direction != "" && r.direction != f.direction || f.port != 0 && uint(r.port) != f.port {
			continue
		}
		r.typ = c.GetType().String()
		if c.GetClusterType() != nil {
			r.typ = strings.ToUpper(strings.TrimPrefix(c.GetClusterType().GetName(), "envoy.clusters."))
		}
		r.rule = dash(configName(c.GetMetadata()))
		rows = append(rows, r)
	}
	// By host, port, direction, the service's own cluster before its subsets'.
	slices.SortFunc(rows, func(a, b row) int {
		return cmp.Or(strings.Compare(a.host, b.host), cmp.Compare(a.port, b.port), strings.Compare(a.direction, b.direction),
			strings.Compare(strings.Replace(a.subset, "-", "", 1), strings.Replace(b.subset, "-", "", 1)))
	})
	fmt.Fprintln(w, "SERVICE FQDN\tPORT\tSUBSET\tDIRECTION\tTYPE\tDESTINATION RULE")
	for _, r := range rows {
		port := "-"
		if r.port != 0 {
			port = strconv.Itoa(r.port)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", r.host, port, r.subset, r.direction, r.typ, r.rule)
	}
	return nil
}

// configName is "name.namespace" of the Istio resource an istio.config metadata
// path names (/apis/<group>/<version>/namespaces/<ns>/<kind>/<name>), as istioctl
// shows it; "" without one.
func configName(md *corev3.Metadata) string {
	path := md.GetFilterMetadata()["istio"].GetFields()["config"].GetStringValue()
	parts := strings.Split(path, "/")
	if len(parts) < 4 || parts[len(parts)-4] != "namespaces" {
		return ""
	}
	return parts[len(parts)-1] + "." + parts[len(parts)-3]
}

// writeListeners prints, for each listener filter chain, the listener's address and
// port, what the chain matches and where it sends traffic; an API listener (a
// proxyless gRPC client's) is one row, its route configuration.
func writeListeners(w io.Writer, raw []byte, f proxyConfigFilter) error {
	listeners, err := decodeDump(raw, xds.ListenerType, func() *listenerv3.Listener { return &listenerv3.Listener{} })
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "NAME\tADDRESS\tPORT\tMATCH\tDESTINATION")
	for _, l := range listeners {
		addr, port := endpointAddress(l.GetAddress()) // a pipe's as unix://<path>
		api := l.GetApiListener().GetApiListener()
		if api != nil { // a proxyless client's, named host:port
			if _, p, err := net.SplitHostPort(l.Name); err == nil {
				n, _ := strconv.ParseUint(p, 10, 32)
				port = uint32(n)
			}
		}
		if f.address != "" && addr != f.address || f.port != 0 && uint(port) != f.port {
			continue
		}
		portText := "-"
		if port != 0 {
			portText = strconv.FormatUint(uint64(port), 10)
		}
		if api != nil {
			var hcm hcmv3.HttpConnectionManager
			dest := "-"
			if api.UnmarshalTo(&hcm) == nil {
				dest = hcmDestination(&hcm)
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", l.Name, addr, portText, "ALL", dest)
			continue
		}
		chains := slices.Clone(l.FilterChains)
		if l.DefaultFilterChain != nil {
			chains = append(chains, l.DefaultFilterChain)
		}
		for _, fc := range chains {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", l.Name, addr, portText, chainMatch(fc.GetFilterChainMatch()), chainDestination(fc))
		}
	}
	return nil
}

// chainMatch says what a filter chain matches: destination port and addresses,
// transport, application protocols and server names; ALL for no condition.
func chainMatch(m *listenerv3.FilterChainMatch) string {
	var parts []string
	if p := m.GetDestinationPort(); p != nil {
		parts = append(parts, "port "+strconv.FormatUint(uint64(p.GetValue()), 10))
	}
	for _, r := range m.GetPrefixRanges() {
		parts = append(parts, "addr "+r.GetAddressPrefix()+"/"+strconv.FormatUint(uint64(r.GetPrefixLen().GetValue()), 10))
	}
	if t := m.GetTransportProtocol(); t != "" {
		parts = append(parts, "transport "+t)
	}
	if len(m.GetApplicationProtocols()) > 0 {
		parts = append(parts, "alpn "+strings.Join(m.GetApplicationProtocols(), ","))
	}
	if len(m.GetServerNames()) > 0 {
		parts = append(parts, "sni "+strings.Join(m.GetServerNames(), ","))
	}
	if len(parts) == 0 {
		return "ALL"
	}
	return strings.Join(parts, "; ")
}

// chainDestination says where a filter chain sends traffic: the route
// configuration of its HTTP connection manager (or its inline one's name), or its
// TCP proxy's cluster.
func chainDestination(fc *listenerv3.FilterChain) string {
	for _, filter := range fc.GetFilters() {
		tc := filter.GetTypedConfig()
		if tc == nil {
			continue
		}
		var hcm hcmv3.HttpConnectionManager
		if tc.MessageIs(&hcm) && tc.UnmarshalTo(&hcm) == nil {
			return hcmDestination(&hcm)
		}
		var tcp tcpv3.TcpProxy
		if tc.MessageIs(&tcp) && tc.UnmarshalTo(&tcp) == nil {
			if c := tcp.GetCluster(); c != "" {
				return "Cluster: " + c
			}
			var names []string
			for _, wc := range tcp.GetWeightedClusters().GetClusters() {
				names = append(names, wc.GetName())
			}
			return "Clusters: " + strings.Join(names, ", ")
		}
	}
	if len(fc.GetFilters()) > 0 {
		return fc.GetFilters()[len(fc.GetFilters())-1].GetName()
	}
	return "-"
}

func hcmDestination(hcm *hcmv3.HttpConnectionManager) string {
	if rds := hcm.GetRds(); rds != nil {
		return "Route: " + rds.GetRouteConfigName()
	}
	if rc := hcm.GetRouteConfig(); rc != nil {
		return "Inline Route: " + cmp.Or(rc.GetName(), "-")
	}
	return "HTTP"
}

// writeRoutesView prints, for each route of each virtual host, the route
// configuration's name, the virtual host's, its domains, the route's path match
// and the VirtualService it comes from, as istioctl proxy-config routes.
func writeRoutesView(w io.Writer, raw []byte, f proxyConfigFilter) error {
	rcs, err := decodeDump(raw, xds.RouteType, func() *routev3.RouteConfiguration { return &routev3.RouteConfiguration{} })
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "NAME\tVHOST NAME\tDOMAINS\tMATCH\tVIRTUAL SERVICE")
	for _, rc := range rcs {
		if f.name != "" && rc.Name != f.name {
			continue
		}
		for _, vh := range rc.VirtualHosts {
			domains := shortDomains(vh.Domains)
			if len(vh.Routes) == 0 {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", rc.Name, vh.Name, domains, "-", "-")
			}
			for _, r := range vh.Routes {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", rc.Name, vh.Name, domains, pathMatch(r.GetMatch()), dash(configName(r.GetMetadata())))
			}
		}
	}
	return nil
}

// shortDomains names a virtual host's domains as istioctl does: the shortest
// without a port, and how many more there are.
func shortDomains(domains []string) string {
	if len(domains) == 0 {
		return "-"
	}
	short := domains[0]
	for _, d := range domains {
		if !strings.Contains(d, ":") && len(d) < len(short) || strings.Contains(short, ":") && !strings.Contains(d, ":") {
			short = d
		}
	}
	if len(domains) == 1 {
		return short
	}
	return fmt.Sprintf("%s +%d more", short, len(domains)-1)
}

// pathMatch is a route's path condition as istioctl writes it: an exact path, a
// prefix followed by "*", a regex, with " (+headers)" where headers or query
// parameters narrow it.
func pathMatch(m *routev3.RouteMatch) string {
	var out string
	switch {
	case m.GetPath() != "":
		out = m.GetPath()
	case m.GetSafeRegex() != nil:
		out = m.GetSafeRegex().GetRegex()
	case m.GetPathSeparatedPrefix() != "":
		out = m.GetPathSeparatedPrefix() + "/*"
	default:
		out = m.GetPrefix() + "*"
	}
	if len(m.GetHeaders()) > 0 || len(m.GetQueryParameters()) > 0 {
		out += " (+headers)"
	}
	return out
}

// writeEndpoints prints each endpoint of each load assignment: its address, health
// status, locality, weight and cluster.
func writeEndpoints(w io.Writer, raw []byte, f proxyConfigFilter) error {
	las, err := decodeDump(raw, xds.EndpointType, func() *endpointv3.ClusterLoadAssignment { return &endpointv3.ClusterLoadAssignment{} })
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "ENDPOINT\tSTATUS\tLOCALITY\tWEIGHT\tCLUSTER")
	for _, la := range las {
		if f.cluster != "" && la.ClusterName != f.cluster {
			continue
		}
		for _, loc := range la.Endpoints {
			locality := strings.Trim(strings.Join([]string{loc.GetLocality().GetRegion(), loc.GetLocality().GetZone(), loc.GetLocality().GetSubZone()}, "/"), "/")
			for _, e := range loc.LbEndpoints {
				addr, port := endpointAddress(e.GetEndpoint().GetAddress())
				status := strings.TrimPrefix(e.GetHealthStatus().String(), "UNKNOWN")
				status = cmp.Or(status, "HEALTHY") // unset: Envoy takes it as healthy
				if f.address != "" && addr != f.address || f.port != 0 && uint(port) != f.port || f.status != "" && !strings.EqualFold(status, f.status) {
					continue
				}
				ep := addr
				if port != 0 {
					ep = net.JoinHostPort(addr, strconv.FormatUint(uint64(port), 10))
				}
				weight := "-"
				if lw := e.GetLoadBalancingWeight(); lw != nil {
					weight = strconv.FormatUint(uint64(lw.GetValue()), 10)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", ep, status, dash(locality), weight, la.ClusterName)
			}
		}
	}
	return nil
}

func endpointAddress(a *corev3.Address) (string, uint32) {
	if sa := a.GetSocketAddress(); sa != nil {
		return sa.GetAddress(), sa.GetPortValue()
	}
	if p := a.GetPipe(); p != nil {
		return "unix://" + p.GetPath(), 0
	}
	if ea := a.GetEnvoyInternalAddress(); ea != nil {
		return "envoy://" + ea.GetServerListenerName(), 0
	}
	return "-", 0
}
