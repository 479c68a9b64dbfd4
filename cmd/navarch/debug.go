package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/navarch/navarch/client"
	"github.com/navarch/navarch/xds"
)

func runRegistry(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "sync" {
		return runRegistrySync(ctx, args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("navarch registry", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf clientFlags
	cf.register(fs)
	out := fs.String("o", "", "output: table (default) or json")
	source := fs.String("source", "", "only services and endpoints of this source (serviceentry, vm, consul.<dc>, ...)")
	ns := fs.String("n", "", "only services and endpoints of this namespace")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	if *out == "json" && *source == "" && *ns == "" {
		raw, err := c.Raw(ctx, "/debug/registry")
		if err != nil {
			return err
		}
		_, err = stdout.Write(raw)
		return err
	}
	reg, err := c.Registry(ctx)
	if err != nil {
		return err
	}
	filterRegistry(reg, *source, *ns)
	if *out == "json" {
		return json.NewEncoder(stdout).Encode(reg)
	}
	for _, src := range reg.Sources {
		if src.Stale {
			fmt.Fprintf(stdout, "warning: source %s is stale, its entries are as of %s: %s\n", src.Source, dash(src.LastSync), src.Error)
		}
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tADDRESSES\tPORTS\tSOURCE\tENDPOINT\tHEALTH\tLOCALITY\tLABELS")
	for _, s := range reg.Services {
		var ports []string
		for _, p := range s.Ports {
			ports = append(ports, fmt.Sprintf("%d/%s", p.Number, strings.ToLower(p.Protocol)))
		}
		source := s.Source
		if s.Stale {
			source += " (stale)"
		}
		addrs := dash(strings.Join(s.Addresses, ","))
		if len(s.AutoAddresses) > 0 { // allocated, for proxies with DNS capture
			addrs = strings.Join(s.AutoAddresses, ",") + " (auto)"
		}
		if len(s.Endpoints) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t-\t-\t-\t-\n", s.Host, addrs, strings.Join(ports, ","), source)
		}
		for _, e := range s.Endpoints {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Host, addrs, strings.Join(ports, ","), source,
				e.Address+portSuffix(e.Ports), health(e), dash(e.Locality), dash(labelPairs(e.Labels)))
		}
	}
	for _, e := range reg.Unselected { // no service selects them: listed so that they can be found
		fmt.Fprintf(tw, "(none: %s/%s)\t-\t-\t%s\t%s\t%s\t%s\t%s\n", e.Namespace, e.Name, e.Source,
			e.Address+portSuffix(e.Ports), health(e), dash(e.Locality), dash(labelPairs(e.Labels)))
	}
	return tw.Flush()
}

// runRegistrySync makes a registry source's inventory what the files say: navarch's
// static inventory, for VMs and services listed by another system (a CMDB, a
// Terraform output) rather than registering themselves.
func runRegistrySync(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("navarch registry sync", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf clientFlags
	cf.register(fs)
	source := fs.String("source", "", "the inventory's source name (inventory, cmdb, ...): its entries are replaced by the files'")
	var docs docFlags
	docs.register(fs, "of ServiceEntries and WorkloadEntries")
	ns := fs.String("n", "", "namespace of the documents that name none (default \"default\")")
	dryRun := fs.Bool("dry-run", false, "say what the sync would create, update and delete, writing nothing")
	if pos, err := parseFlags(fs, args); err != nil {
		return err
	} else if len(pos) > 0 || *source == "" || !docs.given() {
		return errors.New("usage: navarch registry sync --source <name> -f <file|dir|-> [-n namespace] [-R] [--dry-run]")
	}
	in, err := docs.read()
	if err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	st, err := c.RegistrySync(ctx, *source, *ns, in, *dryRun)
	if err != nil {
		return err
	}
	suffix := ""
	if st.DryRun {
		suffix = " (dry run)"
	}
	for _, r := range st.Changes {
		fmt.Fprintf(stdout, "%s (%s) %s%s\n", resultName(r), r.Namespace, r.Action, suffix)
	}
	fmt.Fprintf(stdout, "source %s: %d created, %d updated, %d deleted, %d unchanged%s\n", *source, st.Created, st.Updated, st.Deleted, st.Unchanged, suffix)
	return nil
}

// filterRegistry keeps what is of source and namespace ns (either empty: any): the
// endpoints of that source, and the services that are of it or keep an endpoint.
func filterRegistry(reg *client.RegistryListing, source, ns string) {
	if source == "" && ns == "" {
		return
	}
	keep := func(e client.EndpointListing) bool {
		return (source == "" || e.Source == source) && (ns == "" || e.Namespace == ns)
	}
	services := reg.Services[:0]
	for _, s := range reg.Services {
		if ns != "" && s.Namespace != ns {
			continue
		}
		eps := []client.EndpointListing{}
		for _, e := range s.Endpoints {
			if keep(e) {
				eps = append(eps, e)
			}
		}
		if s.Source == source || source == "" || len(eps) > 0 {
			s.Endpoints = eps
			services = append(services, s)
		}
	}
	reg.Services = services
	var unselected []client.EndpointListing
	for _, e := range reg.Unselected {
		if keep(e) {
			unselected = append(unselected, e)
		}
	}
	reg.Unselected = unselected
}

func health(e client.EndpointListing) string {
	if e.Healthy {
		return "healthy"
	}
	return "unhealthy"
}

func portSuffix(ports map[string]uint32) string {
	if len(ports) == 0 {
		return ""
	}
	var ps []string
	for name, p := range ports {
		ps = append(ps, fmt.Sprintf("%s=%d", name, p))
	}
	sort.Strings(ps)
	return " (" + strings.Join(ps, ",") + ")"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func runProxyStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("navarch proxy-status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf clientFlags
	cf.register(fs)
	out := fs.String("o", "", "output: table (default) or json")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	nodes, silent := clusterProxies(ctx, c)
	for _, s := range silent {
		fmt.Fprintf(stderr, "warning: not listed: the proxies of %s\n", s)
	}
	if len(nodes) == 0 {
		return errors.New("no node listed its proxies")
	}
	type served struct {
		xds.ProxyStatus
		Navarch string `json:"navarch,omitempty"` // the node serving the proxy
	}
	var proxies []served
	for _, n := range nodes {
		for _, p := range n.proxies {
			proxies = append(proxies, served{p, n.name})
		}
	}
	sort.SliceStable(proxies, func(i, j int) bool { return proxies[i].ID < proxies[j].ID })
	if *out == "json" {
		b, err := json.MarshalIndent(proxies, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s\n", b)
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROXY\tNAVARCH\tSTREAM\tCONNECTED\tREVISION\tCDS\tLDS\tEDS\tRDS\tNACKS\tVERSION")
	for _, p := range proxies {
		mode := "sotw"
		if p.Delta {
			mode = "delta"
		}
		nacks := 0
		for _, t := range p.Types {
			nacks += t.Nacks
		}
		rev := "-" // taking a change, or rejected one
		if p.Synced > 0 {
			rev = strconv.FormatInt(p.Synced, 10)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", p.ID, dash(p.Navarch), mode, shortDuration(time.Since(p.ConnectedAt)), rev,
			syncState(p.Types["cds"]), syncState(p.Types["lds"]), syncState(p.Types["eds"]), syncState(p.Types["rds"]), nacks, dash(proxyVersion(p.ProxyStatus)))
	}
	return tw.Flush()
}

// proxyVersion is the release a proxy runs, as istioctl proxy-status shows it: its
// ISTIO_VERSION, else its xDS client's ("gRPC Go 1.75.0"), else "".
func proxyVersion(p xds.ProxyStatus) string {
	return cmp.Or(p.IstioVersion, p.UserAgent)
}

// syncState says whether the proxy acknowledged what it was sent last, as istioctl
// proxy-status does.
func syncState(t *xds.TypeStatus) string {
	switch {
	case t == nil:
		return "-"
	case t.Nacked != "" && t.Nacked == t.Sent:
		return "REJECTED"
	case t.Sent == "":
		return "NOT SENT"
	case t.Acked == t.Sent:
		return "SYNCED"
	}
	return "STALE"
}

// runProxyConfig prints the resources a proxy gets (a connected proxy by id, or a
// hypothetical one the flags describe): all of them as JSON, or, for a view
// (clusters, listeners, routes, endpoints), a table of one type, as istioctl
// proxy-config's subcommands print them.
func runProxyConfig(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	view := ""
	if len(args) > 0 && slices.Contains(proxyConfigViews, args[0]) {
		view, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet(strings.TrimSpace("navarch proxy-config "+view), flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf clientFlags
	cf.register(fs)
	var f proxyConfigFilter
	out := fs.String("o", "", "with a view: table (default) or json (the view's resources in full)")
	fs.StringVar(&f.fqdn, "fqdn", "", "clusters: of this service host (or hosts it begins)")
	fs.StringVar(&f.subset, "subset", "", "clusters: of this subset")
	fs.StringVar(&f.direction, "direction", "", "clusters: outbound or inbound")
	fs.UintVar(&f.port, "port", 0, "clusters, listeners, endpoints: on this port")
	fs.StringVar(&f.address, "address", "", "listeners, endpoints: on this address")
	fs.StringVar(&f.name, "name", "", "routes: the route configuration of this name")
	fs.StringVar(&f.cluster, "cluster", "", "endpoints: of this cluster")
	fs.StringVar(&f.status, "status", "", "endpoints: of this health status (healthy, unhealthy, ...)")
	ns := fs.String("n", "", "namespace of a hypothetical proxy, when no proxy id is given")
	generator := fs.String("generator", "grpc", "a hypothetical proxy's kind: grpc (proxyless) or envoy")
	typ := fs.String("type", "sidecar", "a hypothetical proxy's type: sidecar or router (a gateway)")
	labels := fs.String("labels", "", "a hypothetical proxy's labels, k=v,k2=v2")
	network := fs.String("network", "", "a hypothetical proxy's network")
	locality := fs.String("locality", "", "a hypothetical proxy's locality, region/zone/sub-zone")
	sa := fs.String("service-account", "", "a hypothetical proxy's service account")
	nodeName := fs.String("node-name", "", "a hypothetical proxy's node (NODE_NAME)")
	interception := fs.String("interception-mode", "", "a hypothetical proxy's INTERCEPTION_MODE: NONE binds its listeners' ports, TPROXY makes its virtual listeners transparent")
	clusterID := fs.String("cluster-id", "", "a hypothetical proxy's Kubernetes cluster (CLUSTER_ID)")
	httpProxyPort := fs.String("http-proxy-port", "", "a hypothetical Envoy's HTTP_PROXY_PORT: the port of 127.0.0.1 on which it is an HTTP proxy")
	metadata := fs.String("metadata", "", "a hypothetical Envoy's node metadata (what EnvoyFilters match; ENABLE_SELF_DISCOVERY=true for its local cluster), k=v,k2=v2")
	version := fs.String("istio-version", "", "a hypothetical Envoy's ISTIO_VERSION (what EnvoyFilters match); with one, the Envoy is istio-proxy and gets Istio's telemetry filters")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	q := url.Values{}
	if len(pos) > 0 {
		q.Set("id", pos[0])
	} else {
		q.Set("namespace", namespaceOr(*ns))
		for k, v := range map[string]string{"generator": *generator, "type": *typ, "labels": *labels, "network": *network, "locality": *locality, "serviceAccount": *sa, "nodeName": *nodeName, "interceptionMode": *interception, "httpProxyPort": *httpProxyPort, "clusterId": *clusterID,
			"metadata": *metadata, "istioVersion": *version} {
			if v != "" {
				q.Set(k, v)
			}
		}
	}
	raw, err := c.Raw(ctx, "/debug/proxy-config?"+q.Encode())
	if len(pos) > 0 && client.IsNotFound(err) {
		// The proxy is connected to another node: ask the one that serves it.
		nodes, _ := clusterProxies(ctx, c)
		for _, n := range nodes {
			if slices.ContainsFunc(n.proxies, func(p xds.ProxyStatus) bool { return p.ID == pos[0] }) {
				raw, err = n.api.Raw(ctx, "/debug/proxy-config?"+q.Encode())
				break
			}
		}
	}
	if err != nil {
		return err
	}
	if view == "" {
		_, err = stdout.Write(raw)
		return err
	}
	if *out == "json" {
		var dump map[string]json.RawMessage
		if err := json.Unmarshal(raw, &dump); err != nil {
			return err
		}
		typeURL := map[string]string{"clusters": xds.ClusterType, "listeners": xds.ListenerType, "routes": xds.RouteType, "endpoints": xds.EndpointType}[view]
		_, err = fmt.Fprintf(stdout, "%s\n", cmp.Or(string(dump[typeURL]), "[]"))
		return err
	}
	return writeProxyConfigView(stdout, view, raw, f)
}
