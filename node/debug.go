package node

import (
	"encoding/json"
	"errors"
	"net/http"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/client"
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
// with node id ?id=, or, with ?namespace= (and ?generator=), a proxy of that class.
func (n *Node) debugProxyConfig(w http.ResponseWriter, r *http.Request, p *parts) {
	q := r.URL.Query()
	var proxy *xds.Proxy
	if id := q.Get("id"); id != "" {
		if proxy = p.xds.Proxy(id); proxy == nil {
			writeError(w, http.StatusNotFound, errors.New("no connected proxy with id "+id))
			return
		}
	} else {
		ns := q.Get("namespace")
		if ns == "" {
			ns = api.DefaultNamespace
		}
		proxy = &xds.Proxy{ID: "debug", Type: xds.TypeSidecar, Namespace: ns, Generator: xds.GeneratorGRPC}
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

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
