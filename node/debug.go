package node

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/client"
	"github.com/navarch/navarch/registry"
	"github.com/navarch/navarch/xds"
)

// debugConfig serves every configuration resource the node's view holds, with the
// revision of the view. Two nodes at the same revision serve the same bytes.
func (n *Node) debugConfig(w http.ResponseWriter, _ *http.Request, p *parts) {
	snap := p.view.Snapshot()
	resp := client.ListResponse{Revision: snap.Revision, Items: []json.RawMessage{}}
	for _, k := range api.Kinds() {
		for _, r := range snap.Config(k) {
			b, err := r.MarshalJSON()
			if err != nil {
				writeError(w, http.StatusInternalServerError, err)
				return
			}
			resp.Items = append(resp.Items, b)
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

// debugRegistry serves the registry: every service with its endpoints.
func (n *Node) debugRegistry(w http.ResponseWriter, _ *http.Request, p *parts) {
	writeJSON(w, http.StatusOK, registryListing(p.view.Snapshot(), p.view.Sources()))
}

func (n *Node) debugProxies(w http.ResponseWriter, _ *http.Request, p *parts) {
	writeJSON(w, http.StatusOK, p.xds.Proxies())
}

// debugProxyConfig serves the resources a proxy gets, as JSON: the connected proxy
// with node id ?id=, or a proxy of the class the query describes: ?namespace=,
// ?generator= (grpc, the default, or envoy), ?type= (sidecar or router), ?labels=
// (k=v,k2=v2), ?network=, ?locality= and ?serviceAccount=.
func (n *Node) debugProxyConfig(w http.ResponseWriter, r *http.Request, p *parts) {
	q := r.URL.Query()
	var proxy *xds.Proxy
	if id := q.Get("id"); id != "" {
		if proxy = p.xds.Proxy(id); proxy == nil {
			writeError(w, http.StatusNotFound, errors.New("no connected proxy with id "+id))
			return
		}
	} else {
		var err error
		if proxy, err = describedProxy(q); err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
	}
	sets, err := p.xds.Resources(proxy)
	out := map[string]any{}
	for t, set := range sets {
		items := []json.RawMessage{}
		for _, name := range set.Names() {
			res := set.ByName[name]
			msg, uerr := res.Body.UnmarshalNew()
			if uerr != nil {
				continue
			}
			b, _ := protojson.Marshal(msg)
			items = append(items, json.RawMessage(`{"name":`+quote(name)+`,"version":`+quote(res.Version)+`,"resource":`+string(b)+`}`))
		}
		out[t] = items
	}
	if err != nil {
		out["errors"] = err.Error()
	}
	writeJSON(w, http.StatusOK, out)
}

// describedProxy is a proxy of the class a proxy-config query describes: the node
// such a proxy would send (its metadata as istio-agent names it), read as the xDS
// server reads every node (xds.ParseProxy).
func describedProxy(q url.Values) (*xds.Proxy, error) {
	typ, ns := cmp.Or(q.Get("type"), xds.TypeSidecar), cmp.Or(q.Get("namespace"), api.DefaultNamespace)
	switch typ {
	case xds.TypeSidecar, xds.TypeRouter:
	default:
		return nil, fmt.Errorf("type %q: want sidecar or router", typ)
	}
	extra, err := keyValues(q, "metadata") // what EnvoyFilters may match
	if err != nil {
		return nil, err
	}
	md := map[string]any{}
	for k, v := range extra {
		md[k] = v
	}
	for param, key := range map[string]string{"network": "NETWORK", "serviceAccount": "SERVICE_ACCOUNT", "nodeName": "NODE_NAME",
		"interceptionMode": "INTERCEPTION_MODE", "clusterId": "CLUSTER_ID", "istioVersion": "ISTIO_VERSION", "httpProxyPort": "HTTP_PROXY_PORT"} {
		if v := q.Get(param); v != "" {
			md[key] = v
		}
	}
	md["NAMESPACE"] = ns
	switch g := q.Get("generator"); g {
	case "", "grpc":
		md["GENERATOR"] = xds.GeneratorGRPC
	case "envoy":
	default:
		return nil, fmt.Errorf("generator %q: want grpc or envoy", g)
	}
	if v, ok := md["HTTP_PROXY_PORT"].(string); ok {
		// ParseProxy ignores a value that is not a port, as istiod does; a query
		// asking for one is told.
		if port, err := strconv.ParseUint(v, 10, 16); err != nil || port == 0 {
			return nil, fmt.Errorf("httpProxyPort %q: want a port, 1-65535", v)
		}
	}
	labels, err := keyValues(q, "labels")
	if err != nil {
		return nil, err
	}
	if labels != nil {
		l := map[string]any{}
		for k, v := range labels {
			l[k] = v
		}
		md["LABELS"] = l
	}
	meta, err := structpb.NewStruct(md)
	if err != nil {
		return nil, err
	}
	node := &corev3.Node{Id: typ + "~127.0.0.1~debug." + ns + "~" + ns + ".svc.cluster.local", Metadata: meta}
	if l := q.Get("locality"); l != "" {
		node.Locality = xds.ParseLocality(l)
	}
	return xds.ParseProxy(node)
}

// keyValues reads the query parameter name as k=v,k2=v2; nil when it is not given.
func keyValues(q url.Values, name string) (map[string]string, error) {
	l := q.Get(name)
	if l == "" {
		return nil, nil
	}
	out := map[string]string{}
	for _, kv := range strings.Split(l, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%s: %q is not k=v", name, kv)
		}
		out[k] = v
	}
	return out, nil
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// debugDescribe answers GET /debug/describe: with host=..., the service (a short
// name resolved in the namespace) as a proxy the query describes (describedProxy)
// sees it (xds.Server.Describe); with workload=... (a name or an address in the
// namespace, source=... to choose between sources), that workload
// (xds.Server.DescribeWorkload). Each comes with what analysis finds in the
// resources it names.
func (n *Node) debugDescribe(w http.ResponseWriter, r *http.Request, p *parts) {
	q := r.URL.Query()
	proxy, err := describedProxy(q)
	if err == nil && (q.Get("host") == "") == (q.Get("workload") == "") {
		err = errors.New("name a service (host=) or a workload (workload=), one of them")
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	snap := p.view.Snapshot()
	if name := q.Get("workload"); name != "" {
		wl, err := findWorkload(snap, proxy.Namespace, name, q.Get("source"))
		if err != nil {
			writeError(w, http.StatusNotFound, err)
			return
		}
		desc := p.xds.DescribeWorkload(snap, wl)
		desc.Workload = endpointListing(wl, p.view.Sources())
		related := map[string]bool{desc.Origin: true}
		for _, svc := range desc.Services {
			related[api.DestinationRule.Name+" "+svc.DestinationRule] = svc.DestinationRule != ""
			related[api.VirtualService.Name+" "+svc.VirtualService] = svc.VirtualService != ""
		}
		desc.Messages = relatedMessages(snap, related, desc.PeerAuthentications, desc.Authorization)
		writeJSON(w, http.StatusOK, desc)
		return
	}
	host := registry.ResolveHost(q.Get("host"), proxy.Namespace, n.cfg.Domain)
	desc, svc, err := p.xds.Describe(snap, proxy, host)
	if err != nil {
		writeError(w, http.StatusNotFound, err)
		return
	}
	desc.Service = serviceListing(snap, svc, p.view.Sources())
	related := map[string]bool{desc.Service.Origin: true}
	if dr := desc.DestinationRule; dr != nil {
		related[api.DestinationRule.Name+" "+dr.Namespace+"/"+dr.Name] = true
	}
	if vs := desc.VirtualService; vs != nil {
		related[api.VirtualService.Name+" "+vs.Namespace+"/"+vs.Name] = true
	}
	var pas []string
	var aps []client.PolicyReference
	for _, in := range desc.Inbound {
		pas, aps = append(pas, in.PeerAuthentications...), append(aps, in.Authorization...)
	}
	desc.Messages = relatedMessages(snap, related, pas, aps)
	writeJSON(w, http.StatusOK, desc)
}

// findWorkload returns the workload of namespace ns named name, or at address name,
// of source if it is given; an error when there is none or several.
func findWorkload(snap *registry.Snapshot, ns, name, source string) (*registry.Workload, error) {
	var found []*registry.Workload
	for _, w := range snap.Workloads() {
		if w.Namespace == ns && (w.Name == name || w.Address == name) && (source == "" || w.Source == source) {
			found = append(found, w)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("no workload %s in namespace %s", name, ns)
	case 1:
		return found[0], nil
	}
	var names []string
	for _, w := range found {
		names = append(names, w.Name+" ("+w.Address+", source "+w.Source+")")
	}
	return nil, fmt.Errorf("%d workloads of namespace %s have the name or address %s: %s; name one (and its source)", len(found), ns, name, strings.Join(names, ", "))
}

// relatedMessages are the analysis messages about the resources of related (by
// "Kind ns/name", those marked true) and the policies named.
func relatedMessages(snap *registry.Snapshot, related map[string]bool, peerAuths []string, authz []client.PolicyReference) []client.AnalysisMessage {
	for _, pa := range peerAuths {
		related[api.PeerAuthentication.Name+" "+pa] = true
	}
	for _, ap := range authz {
		related[api.AuthorizationPolicy.Name+" "+ap.Namespace+"/"+ap.Name] = true
	}
	var out []client.AnalysisMessage
	for _, m := range Analysis(snap).Messages {
		if related[m.Kind+" "+m.Namespace+"/"+m.Name] {
			out = append(out, m)
		}
	}
	return out
}
