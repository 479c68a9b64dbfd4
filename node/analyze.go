package node

import (
	"net/http"
	"time"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/client"
	"github.com/navarch/navarch/registry"
	"github.com/navarch/navarch/registry/analyze"
	"github.com/navarch/navarch/store"
)

// analyze answers POST /api/v1/analyze: analysis of everything the node's view holds,
// with the request's documents put in as apply would put them (a resource of the same
// kind, namespace and name replaced, keeping its creation time). Nothing is written.
func (n *Node) analyze(w http.ResponseWriter, r *http.Request, p *parts) {
	req, err := decodeRequest(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	proposed, _, err := decodeFiles(req)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	entries, rev := p.view.Entries()
	snap := registry.NewSnapshot(withProposed(entries, proposed, time.Now()), rev, n.cfg.Domain)
	writeJSON(w, http.StatusOK, Analysis(snap))
}

// withProposed returns entries with the configuration resources proposed put in, as
// applying them would.
func withProposed(entries []store.Entry, proposed []*api.Resource, now time.Time) []store.Entry {
	at := map[api.Key]int{}
	for i, e := range entries {
		if e.Space == store.ConfigSpace {
			at[e.Resource.Key()] = i
		}
	}
	for _, r := range proposed {
		r = r.Clone()
		if i, ok := at[r.Key()]; ok {
			r.Meta.CreationTimestamp = entries[i].Resource.Meta.CreationTimestamp
			entries[i] = store.Entry{Space: store.ConfigSpace, Resource: r}
			continue
		}
		r.Meta.CreationTimestamp = &now
		at[r.Key()] = len(entries)
		entries = append(entries, store.Entry{Space: store.ConfigSpace, Resource: r})
	}
	return entries
}

// Analysis returns what package analyze finds in snap, as the API answers it.
func Analysis(snap *registry.Snapshot) client.AnalyzeResponse {
	resp := client.AnalyzeResponse{Revision: snap.Revision, Messages: []client.AnalysisMessage{}}
	for _, m := range analyze.Analyze(snap) {
		resp.Messages = append(resp.Messages, client.AnalysisMessage{
			Code: m.Code, Level: m.Level.String(),
			Kind: m.Resource.Kind.Name, Namespace: m.Resource.Namespace, Name: m.Resource.Name,
			Message: m.Text,
		})
	}
	return resp
}
