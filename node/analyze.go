package node

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/client"
	"github.com/navarch/navarch/internal/wait"
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

// analysisInterval is how often a node looks whether its view changed and, if so,
// analyzes it again for navarch_config_analysis_messages. Under constant change a
// large mesh's analysis (about 0.4 s for 10,000 services, BenchmarkAnalyze) waits
// analysisShare times its last duration, so that it takes at most about 5% of a core.
const (
	analysisInterval = 5 * time.Second
	analysisShare    = 20
)

func newAnalysisGauge(reg prometheus.Registerer) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "navarch_config_analysis_messages",
		Help: "What navarch analyze finds in the configuration the node serves, by level and code (absent: none).",
	}, []string{"level", "code"})
	reg.MustRegister(g)
	return g
}

// analysisLoop keeps navarch_config_analysis_messages to what analysis finds in the
// view, away from the push path: every analysisInterval, when the view changed. It
// logs when the number of errors changes, so that an operator learns of a route to
// nowhere without running navarch analyze.
func (n *Node) analysisLoop(ctx context.Context, view *registry.View) {
	var last *registry.Snapshot
	var next time.Time
	errs := 0
	wait.Every(ctx, analysisInterval, func() {
		if time.Now().Before(next) {
			return
		}
		snap := view.Snapshot()
		if snap == last {
			return
		}
		last = snap
		start := time.Now()
		defer func() { next = start.Add(analysisShare * time.Since(start)) }()
		type key struct{ level, code string }
		counts := map[key]int{}
		found := 0
		for _, m := range analyze.Analyze(snap) {
			counts[key{m.Level.String(), m.Code}]++
			if m.Level == analyze.Error {
				found++
			}
		}
		n.analysis.Reset()
		for k, c := range counts {
			n.analysis.WithLabelValues(k.level, k.code).Set(float64(c))
		}
		switch {
		case found > 0 && found != errs:
			n.log.Warn("configuration analysis found errors; navarch analyze lists them", "errors", found, "revision", snap.Revision)
		case found == 0 && errs > 0:
			n.log.Info("configuration analysis finds no errors", "revision", snap.Revision)
		}
		errs = found
	})
}
