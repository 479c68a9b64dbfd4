package node

import (
	"cmp"
	"context"
	"net/http"
	"time"

	"github.com/navarch/navarch/client"
	"github.com/navarch/navarch/store"
)

// The node's log is its audit trail: every request that may change something
// (any method but GET and HEAD on /api/ and /debug/), and every download of a
// snapshot (all the cluster keeps), is logged once answered, with where it came
// from and how it was answered, refused ones too ("api request"), and each
// configuration change it made is logged with the resource, what was done and the
// revision ("configuration changed"; writes of a registry source, which come by the
// thousand, as one line of counts, "registry written"). Bodies are never logged: a
// CA import carries a private key, a credential its secret.

// audited logs the requests to h that may change something.
func (n *Node) audited(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (r.Method == http.MethodGet || r.Method == http.MethodHead) && r.URL.Path != "/api/v1/snapshot" {
			h.ServeHTTP(w, r) // the watch stream flushes through w itself
			return
		}
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		who := new(string)
		h.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), callerKey{}, who)))
		n.log.Info("api request", "method", r.Method, "path", r.URL.Path, "status", sw.status, "token", cmp.Or(*who, "none"),
			"remote", r.RemoteAddr, "agent", r.UserAgent(), "took", time.Since(start).Round(time.Microsecond).String())
	})
}

// callerKey is the context key of the token a request carried, as authenticate
// found it (admin, reader), for the audit trail.
type callerKey struct{}

// setCaller records which token request r carried.
func setCaller(r *http.Request, token string) {
	if who, ok := r.Context().Value(callerKey{}).(*string); ok {
		*who = token
	}
}

// statusWriter remembers the status code written.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap gives http.ResponseController the writer underneath (to flush a snapshot's
// stream).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// auditChanges logs what a write of request r to space sp changed.
func (n *Node) auditChanges(r *http.Request, sp store.Space, results []client.Result, rev int64) {
	if sp != store.ConfigSpace {
		counts := map[string]int{}
		for _, res := range results {
			if res.Error == "" && res.Action != string(store.Unchanged) {
				counts[res.Action]++
			}
		}
		n.auditRegistry(r, sp, counts[string(store.Created)], counts[string(store.Configured)], counts[string(store.Deleted)])
		return
	}
	for _, res := range results {
		if res.Error != "" || res.Action == string(store.Unchanged) {
			continue
		}
		n.log.Info("configuration changed", "resource", res.Kind+" "+res.Namespace+"/"+res.Name, "action", res.Action,
			"revision", rev, "remote", r.RemoteAddr)
	}
}

// auditRegistry logs what a write of request r to registry space sp changed.
func (n *Node) auditRegistry(r *http.Request, sp store.Space, created, configured, deleted int) {
	if created+configured+deleted > 0 {
		n.log.Info("registry written", "source", sp.Source(), "created", created, "configured", configured, "deleted", deleted,
			"remote", r.RemoteAddr)
	}
}
