package node

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	meshconfig "istio.io/api/mesh/v1alpha1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/navarch/navarch/adapters/kubernetes"
	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/client"
	"github.com/navarch/navarch/store"
)

// writeTimeout bounds a write through etcd. A node without quorum fails writes after
// it rather than hanging the caller.
const writeTimeout = 10 * time.Second

func (n *Node) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", n.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(prometheus.Gatherers{n.reg, prometheus.DefaultGatherer}, promhttp.HandlerOpts{}))
	// Kubernetes' validating admission webhook: reads and writes nothing of the
	// node's, so the API server calls it without the admin token.
	mux.Handle("POST "+kubernetes.WebhookPath, kubernetes.ValidatingWebhook(n.reg))

	api := http.NewServeMux()
	api.HandleFunc("GET /api/v1/kinds", n.kinds)
	api.HandleFunc("POST /api/v1/apply", n.withParts(n.apply))
	api.HandleFunc("POST /api/v1/delete", n.withParts(n.deleteFiles))
	api.HandleFunc("POST /api/v1/analyze", n.withParts(n.analyze))
	api.HandleFunc("GET /api/v1/config/{kind}", n.withParts(n.list))
	api.HandleFunc("GET /api/v1/config/{kind}/{namespace}/{name}", n.withParts(n.get))
	api.HandleFunc("DELETE /api/v1/config/{kind}/{namespace}/{name}", n.withParts(n.deleteOne))
	api.HandleFunc("POST /api/v1/registry/{source}/apply", n.withParts(n.registryApply))
	api.HandleFunc("POST /api/v1/registry/{source}/delete", n.withParts(n.registryDelete))
	api.HandleFunc("POST /api/v1/registry/{source}/sync", n.withParts(n.registrySync))
	api.HandleFunc("GET /api/v1/members", n.withParts(n.listMembers))
	api.HandleFunc("POST /api/v1/members/{name}/remove", n.withParts(n.removeMember))
	api.HandleFunc("POST /api/v1/leave", n.withParts(n.leave))
	api.HandleFunc("GET /api/v1/snapshot", n.withParts(n.snapshot))
	api.HandleFunc("GET /debug/pprof/", pprof.Index)
	api.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	api.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	api.HandleFunc("GET /debug/config", n.withParts(n.debugConfig))
	api.HandleFunc("GET /debug/registry", n.withParts(n.debugRegistry))
	api.HandleFunc("GET /debug/proxies", n.withParts(n.debugProxies))
	api.HandleFunc("GET /debug/proxy-config", n.withParts(n.debugProxyConfig))
	api.HandleFunc("GET /debug/describe", n.withParts(n.debugDescribe))
	n.caRoutes(api)
	guarded := n.audited(n.authenticate(api))
	mux.Handle("/api/", guarded)
	mux.Handle("/debug/", guarded)
	return mux
}

// authenticate requires the admin token, when the node has one, or the read-only
// token for a request that only reads: the tokens of the moment, since they may be
// rotated in their files (adminToken). The audit trail learns which was given.
func (n *Node) authenticate(h http.Handler) http.Handler {
	if n.admin.get() == "" {
		return h // a --dev node without a token: loopback only, by its defaults
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		given := []byte(r.Header.Get("Authorization"))
		is := func(token string) bool {
			return token != "" && subtle.ConstantTimeCompare(given, []byte("Bearer "+token)) == 1
		}
		switch {
		case is(n.admin.get()):
			setCaller(r, "admin")
		case is(n.reader.get()):
			if !readOnly(r) {
				setCaller(r, "reader")
				writeError(w, http.StatusForbidden, fmt.Errorf("forbidden: the read-only token cannot %s %s (it reads configuration, the registry, members, proxies and analysis; the rest needs the admin token)", r.Method, r.URL.Path))
				return
			}
			setCaller(r, "reader")
		default:
			writeError(w, http.StatusUnauthorized, errors.New("unauthorized: this API needs the admin token (Authorization: Bearer <token>)"))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// readOnly reports whether the read-only token may make request r: reads, but not
// a snapshot (all etcd holds, the CA's encrypted key included) or a profile, and
// analysis, which writes nothing.
func readOnly(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return r.URL.Path != "/api/v1/snapshot" && !strings.HasPrefix(r.URL.Path, "/debug/pprof/")
	case http.MethodPost:
		return r.URL.Path == "/api/v1/analyze"
	}
	return false
}

// withParts runs h once the node's etcd member is up, and answers 503 with what the
// node is doing until then.
func (n *Node) withParts(h func(http.ResponseWriter, *http.Request, *parts)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p := n.parts.Load()
		if p == nil {
			writeError(w, http.StatusServiceUnavailable, errors.New("not ready: "+*n.phase.Load()))
			return
		}
		h(w, r, p)
	}
}

func (n *Node) kinds(w http.ResponseWriter, _ *http.Request) {
	type kind struct {
		Kind       string   `json:"kind"`
		Group      string   `json:"group"`
		Plural     string   `json:"plural"`
		Short      []string `json:"short,omitempty"`
		APIVersion string   `json:"apiVersion"`
		Versions   []string `json:"versions"`
	}
	var out []kind
	for _, k := range api.Kinds() {
		out = append(out, kind{k.Name, k.Group, k.Plural, k.Short, k.APIVersion(), k.Versions})
	}
	writeJSON(w, http.StatusOK, out)
}

// decodeRequest reads an apply or delete body: the JSON ApplyRequest the CLI sends,
// or raw YAML/JSON documents (curl --data-binary @file.yaml).
func decodeRequest(r *http.Request) (client.ApplyRequest, error) {
	var req client.ApplyRequest
	body := http.MaxBytesReader(nil, r.Body, 32<<20)
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") && r.URL.Query().Get("raw") == "" {
		if err := json.NewDecoder(body).Decode(&req); err != nil {
			return req, err
		}
		return req, nil
	}
	data, err := io.ReadAll(body)
	if err != nil {
		return req, err
	}
	req.Namespace = r.URL.Query().Get("namespace")
	req.DryRun = r.URL.Query().Get("dryRun") != ""
	req.Files = []client.File{{Source: "request", Data: string(data)}}
	return req, nil
}

func (n *Node) apply(w http.ResponseWriter, r *http.Request, p *parts) {
	n.applyTo(w, r, p, store.ConfigSpace)
}

// decodeFiles decodes the documents of every file of req, with its namespace for
// those that name none, and returns every error found.
func decodeFiles(req client.ApplyRequest) ([]*api.Resource, []api.Skipped, error) {
	var all []*api.Resource
	var skipped []api.Skipped
	var errs []error
	for _, f := range req.Files {
		rs, sk, err := api.Decode(f.Source, []byte(f.Data), req.Namespace)
		errs = append(errs, err)
		all, skipped = append(all, rs...), append(skipped, sk...)
	}
	return all, skipped, errors.Join(errs...)
}

// applyTo decodes the request's documents and applies them to space sp.
func (n *Node) applyTo(w http.ResponseWriter, r *http.Request, p *parts, sp store.Space) {
	req, err := decodeRequest(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	all, skipped, err := decodeFiles(req)
	if err == nil {
		err = n.checkMeshConfig(all)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), writeTimeout)
	defer cancel()
	apply := p.store.Apply
	if req.DryRun {
		apply = p.store.DryRun
	}
	results, err := apply(ctx, sp, all)
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	resp := client.ApplyResponse{Skipped: skipped}
	for _, res := range results {
		rr := result(res.Resource, res.Action)
		for _, w := range api.Warnings(res.Resource) {
			rr.Warnings = append(rr.Warnings, w.Field+": "+w.Reason)
		}
		resp.Results = append(resp.Results, rr)
		resp.Revision = max(resp.Revision, res.Resource.Meta.Revision())
	}
	if !req.DryRun {
		n.auditChanges(r, sp, resp.Results, resp.Revision)
	}
	writeJSON(w, http.StatusOK, resp)
}

// checkMeshConfig refuses a mesh config that names a trust domain other than the
// CA's: workload certificates carry the CA's, which the mesh config cannot change.
func (n *Node) checkMeshConfig(rs []*api.Resource) error {
	for _, r := range rs {
		if m, ok := r.Spec.(*meshconfig.MeshConfig); ok && m.TrustDomain != "" && m.TrustDomain != n.cfg.CA.TrustDomain {
			return fmt.Errorf("%s: trustDomain: %q is not the mesh's trust domain %q, which the CA sets (navarch ca show; navarch server --trust-domain)",
				r, m.TrustDomain, n.cfg.CA.TrustDomain)
		}
	}
	return nil
}

func result(r *api.Resource, a store.Action) client.Result {
	return client.Result{Kind: r.Kind.Name, Namespace: r.Meta.Namespace, Name: r.Meta.Name, Action: string(a), ResourceVersion: r.Meta.ResourceVersion}
}

func (n *Node) deleteFiles(w http.ResponseWriter, r *http.Request, p *parts) {
	n.deleteFrom(w, r, p, store.ConfigSpace)
}

// deleteFrom deletes the resources the request's documents name from space sp.
func (n *Node) deleteFrom(w http.ResponseWriter, r *http.Request, p *parts, sp store.Space) {
	req, err := decodeRequest(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	var keys []api.Key
	var skipped []api.Skipped
	var errs []error
	for _, f := range req.Files {
		ks, sk, err := api.DecodeKeys(f.Source, []byte(f.Data), req.Namespace)
		errs = append(errs, err)
		keys, skipped = append(keys, ks...), append(skipped, sk...)
	}
	if err := errors.Join(errs...); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), writeTimeout)
	defer cancel()
	resp := client.ApplyResponse{Skipped: skipped}
	failed := false
	for _, k := range keys {
		old, rev, err := p.store.Delete(ctx, sp, k, "")
		if err != nil {
			failed = true
			resp.Results = append(resp.Results, client.Result{Kind: k.Kind.Name, Namespace: k.Namespace, Name: k.Name, Error: err.Error()})
			continue
		}
		resp.Results = append(resp.Results, result(old, store.Deleted))
		resp.Revision = max(resp.Revision, rev)
	}
	n.auditChanges(r, sp, resp.Results, resp.Revision)
	code := http.StatusOK
	if failed {
		code = http.StatusMultiStatus
	}
	writeJSON(w, code, resp)
}

func (n *Node) lookupKind(w http.ResponseWriter, r *http.Request) (*api.Kind, bool) {
	k, ok := api.LookupKind(r.PathValue("kind"))
	if !ok {
		writeError(w, http.StatusNotFound, errors.New("unknown kind "+r.PathValue("kind")+"; known: "+strings.Join(api.KindNames(), ", ")))
	}
	return k, ok
}

// readSpace returns the space a read of configuration is from: what was applied,
// or with ?source= the configuration a registry source mirrors (a Kubernetes
// cluster's Istio resources: kubernetes.<id>.config); it answers 400 for a source
// that is not a source's name.
func readSpace(w http.ResponseWriter, r *http.Request) (store.Space, bool) {
	src := r.URL.Query().Get("source")
	if src == "" {
		return store.ConfigSpace, true
	}
	if !sourceName.MatchString(src) || src == "config" {
		writeError(w, http.StatusBadRequest, fmt.Errorf("source %q: not a registry source's name", src))
		return store.Space{}, false
	}
	return store.RegistrySpace(src), true
}

func (n *Node) list(w http.ResponseWriter, r *http.Request, p *parts) {
	k, ok := n.lookupKind(w, r)
	if !ok {
		return
	}
	sp, ok := readSpace(w, r)
	if !ok {
		return
	}
	sel, err := labels.Parse(r.URL.Query().Get("labelSelector"))
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("labelSelector: %w", err))
		return
	}
	if watch, _ := strconv.ParseBool(r.URL.Query().Get("watch")); watch {
		n.watch(w, r, p, sp, k, sel)
		return
	}
	rs, rev, err := p.store.List(r.Context(), sp, k, r.URL.Query().Get("namespace"))
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	resp := client.ListResponse{Revision: rev, Items: []json.RawMessage{}}
	for _, res := range rs {
		if !sel.Matches(labels.Set(res.Meta.Labels)) {
			continue
		}
		b, err := res.MarshalJSON()
		if err != nil {
			writeError(w, http.StatusInternalServerError, err)
			return
		}
		resp.Items = append(resp.Items, b)
	}
	writeJSON(w, http.StatusOK, resp)
}

func (n *Node) get(w http.ResponseWriter, r *http.Request, p *parts) {
	k, ok := n.lookupKind(w, r)
	if !ok {
		return
	}
	sp, ok := readSpace(w, r)
	if !ok {
		return
	}
	res, err := p.store.Get(r.Context(), sp, api.Key{Kind: k, Namespace: r.PathValue("namespace"), Name: r.PathValue("name")})
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (n *Node) deleteOne(w http.ResponseWriter, r *http.Request, p *parts) {
	k, ok := n.lookupKind(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), writeTimeout)
	defer cancel()
	key := api.Key{Kind: k, Namespace: r.PathValue("namespace"), Name: r.PathValue("name")}
	old, rev, err := p.store.Delete(ctx, store.ConfigSpace, key, r.URL.Query().Get("resourceVersion"))
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	resp := client.ApplyResponse{Results: []client.Result{result(old, store.Deleted)}, Revision: rev}
	n.auditChanges(r, store.ConfigSpace, resp.Results, rev)
	writeJSON(w, http.StatusOK, resp)
}

// statusOf maps store errors to HTTP status codes.
func statusOf(err error) int {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, store.ErrExists), errors.Is(err, store.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, store.ErrUnavailable):
		return http.StatusServiceUnavailable
	case errors.Is(err, store.ErrCompacted):
		return http.StatusGone // as Kubernetes answers a watch from a compacted revision
	case errors.Is(err, store.ErrFutureRevision):
		return http.StatusBadRequest
	}
	var derr *api.DocumentError
	if errors.As(err, &derr) {
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, client.ErrorResponse{Error: err.Error()})
}
