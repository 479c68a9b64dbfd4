package kubernetes

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sort"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/navarch/navarch/adapters/mirror"
	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/internal/wait"
	"github.com/navarch/navarch/registry"
	"github.com/navarch/navarch/store"
)

// Istio's configuration stored in a cluster (VirtualServices and the rest, as custom
// resources of Istio's CRDs) can be mirrored into navarch, so that a cluster run
// with istiod keeps its configuration where it is: RunConfig follows every kind
// navarch serves whose CRD the cluster has and writes it into a registry space of
// its own (ConfigSource), where every node reads it as configuration, beside what
// navarch apply wrote. Each resource is decoded and validated as navarch apply does
// it; one that is not valid is left out (logged) and the last valid version
// mirrored stays, so a bad edit in the cluster changes nothing.
//
// Istio's mesh config, the ConfigMap istio of istio-system, is mirrored too (as
// MeshConfig istio-system/istio; api/meshconfig.go), whether or not Istio's CRDs are
// installed. Reading it needs get, list and watch on that ConfigMap; without those
// rights the rest is mirrored without it (logged).

// ConfigSource returns the registry source the cluster's Istio configuration is
// written as: "kubernetes.<id>.config".
func (a *Adapter) ConfigSource() string { return ConfigSourceName(a.cfg.ClusterID) }

// ConfigSourceName is the registry source the Istio configuration of cluster id is
// mirrored into (--kube-istio-config).
func ConfigSourceName(id string) string { return registry.KubernetesConfigSource(id) }

// ConfigElectionName returns the name of the election whose winner mirrors the
// cluster's Istio configuration: "kubernetes-config/<id>" (not under ElectionName's,
// whose candidates it would share).
func (a *Adapter) ConfigElectionName() string { return "kubernetes-config/" + a.cfg.ClusterID }

// lastApplied is kubectl's copy of what it applied: large, and not configuration.
const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// RunConfig mirrors the cluster's Istio configuration into the store until ctx ends,
// as Run mirrors its inventory: nothing is written until every kind was listed
// once, only differences are written, and while the API server cannot be reached
// the last mirrored configuration stays and the source is marked stale. The kinds
// followed are those whose CRD the cluster serves (under the first of the kind's
// versions it serves), looked up again every StatusInterval: when they change, it
// returns, ending the term, and the next term follows them. It blocks; the caller
// owns the goroutine.
func (a *Adapter) RunConfig(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c := &cluster{changed: make(chan struct{}, 1), metrics: a.cfg.Metrics}
	rc := rest.CopyConfig(a.rest)
	rc.Wrap(func(rt http.RoundTripper) http.RoundTripper { return &healthTransport{next: rt, c: c} })
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return err
	}
	disc, err := discovery.NewDiscoveryClientForConfig(rc)
	if err != nil {
		return err
	}
	w := &mirror.Writer{St: a.st, Source: a.ConfigSource(), Node: a.node, What: "the cluster's Istio configuration",
		Interval: a.cfg.StatusInterval, Retry: c.signal, Log: a.log}
	var served map[*api.Kind]schema.GroupVersionResource
	for backoff := time.Second; ; backoff = min(2*backoff, 30*time.Second) {
		if served, err = servedKinds(ctx, disc); err == nil {
			break
		}
		a.log.Warn("finding Istio's CRDs in the cluster failed", "err", err, "retry_in", backoff)
		w.Flush(ctx, mirror.State{Err: err}) // stale, nothing written
		if !wait.Sleep(ctx, backoff) {
			return nil
		}
	}
	a.log.Info("mirroring the cluster's Istio configuration", "source", a.ConfigSource(), "kinds", len(served))
	kept := a.mirroredConfig(ctx)
	var informers []cache.SharedIndexInformer
	kinds := map[cache.SharedIndexInformer]*api.Kind{}
	for k, gvr := range served {
		inf := dynamicinformer.NewFilteredDynamicInformer(dyn, gvr, "", 0, cache.Indexers{}, nil).Informer()
		c.notify(inf, sameConfig, newEvents(c.metrics.cfgVec(), k.Name))
		informers = append(informers, inf)
		kinds[inf] = k
	}
	// The mesh ConfigMap, unless the credentials may not read it (a deployment whose
	// rights predate it): then the rest is mirrored without it.
	// (Asked outside the health transport, whose record of a refusal would mark the
	// whole source stale.)
	configMaps := schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	probe, err := dynamic.NewForConfig(a.rest)
	if err != nil {
		return err
	}
	if _, err := probe.Resource(configMaps).Namespace(api.MeshConfigNamespace).Get(ctx, api.MeshConfigName, metav1.GetOptions{}); apierrors.IsForbidden(err) {
		a.log.Warn("may not read Istio's mesh ConfigMap; mirroring the rest without it", "configmap", api.MeshConfigNamespace+"/"+api.MeshConfigName, "err", err)
	} else {
		mesh := dynamicinformer.NewFilteredDynamicInformer(dyn, configMaps, api.MeshConfigNamespace, 0,
			cache.Indexers{}, func(o *metav1.ListOptions) { o.FieldSelector = "metadata.name=" + api.MeshConfigName }).Informer()
		c.notify(mesh, sameConfig, events{}) // istiod does not count its mesh config's changes
		informers = append(informers, mesh)
		kinds[mesh] = api.MeshConfig
	}
	// Every StatusInterval, the CRDs are looked up again: when the kinds served
	// changed (Istio installed or upgraded), the term ends, and the next one (here or
	// on another node) follows them.
	lctx, stop := context.WithCancel(ctx)
	defer stop()
	rediscover := func() {
		now, err := servedKinds(lctx, disc)
		if err == nil && !maps.Equal(now, served) {
			a.log.Info("Istio's CRDs in the cluster changed; following them anew", "kinds", len(now))
			stop()
		}
	}
	a.mirrorLoop(lctx, c, informers, w, rediscover, func() ([]*api.Resource, []mirror.Skipped) {
		var objs []configObject
		for _, inf := range informers {
			for _, o := range inf.GetStore().List() {
				objs = append(objs, configObject{kind: kinds[inf], obj: o.(*unstructured.Unstructured)})
			}
		}
		return translateConfig(objs, kept)
	})
	return nil
}

// servedKinds returns, for every kind navarch serves whose CRD the cluster has, the
// resource under the first of the kind's versions the cluster serves.
func servedKinds(ctx context.Context, disc *discovery.DiscoveryClient) (map[*api.Kind]schema.GroupVersionResource, error) {
	out := map[*api.Kind]schema.GroupVersionResource{}
	lists := map[string]*metav1.APIResourceList{}
	for _, k := range api.Kinds() {
		for _, v := range k.Versions {
			gv := k.Group + "/" + v
			l, ok := lists[gv]
			if !ok {
				res, err := disc.ServerResourcesForGroupVersionWithContext(ctx, gv)
				switch {
				case apierrors.IsNotFound(err):
					res = nil // the group or version is not served
				case err != nil:
					return nil, fmt.Errorf("discovering %s: %w", gv, err)
				}
				l = res
				lists[gv] = l
			}
			if l != nil && slices.ContainsFunc(l.APIResources, func(r metav1.APIResource) bool { return r.Name == k.Plural }) {
				out[k] = schema.GroupVersionResource{Group: k.Group, Version: v, Resource: k.Plural}
				break
			}
		}
	}
	return out, nil
}

// mirroredConfig returns what the space holds now, by key: the last valid version of
// each resource, kept while the cluster's version is not valid. A store that cannot
// be read gives none (an invalid resource is then left out until it is fixed).
func (a *Adapter) mirroredConfig(ctx context.Context) map[api.Key]*api.Resource {
	out := map[api.Key]*api.Resource{}
	for _, k := range api.Kinds() {
		rs, _, err := a.st.List(ctx, store.RegistrySpace(a.ConfigSource()), k, "")
		if err != nil {
			a.log.Warn("reading the mirrored Istio configuration failed", "err", err)
			return out
		}
		for _, r := range rs {
			out[r.Key()] = r
		}
	}
	return out
}

// configObject is one custom resource of an Istio CRD, as the cluster has it.
type configObject struct {
	kind *api.Kind
	obj  *unstructured.Unstructured
}

// translateConfig decodes and validates each object as navarch apply does: its
// apiVersion, kind, name, namespace, labels, annotations (but kubectl's
// last-applied copy) and spec. One that is not valid is reported and its last
// valid version in kept, if any, stands for it; kept is updated with every valid
// one, and forgets the resources the cluster no longer has.
func translateConfig(objs []configObject, kept map[api.Key]*api.Resource) ([]*api.Resource, []mirror.Skipped) {
	sort.Slice(objs, func(i, j int) bool {
		a, b := objs[i], objs[j]
		if a.kind.Name != b.kind.Name {
			return a.kind.Name < b.kind.Name
		}
		if a.obj.GetNamespace() != b.obj.GetNamespace() {
			return a.obj.GetNamespace() < b.obj.GetNamespace()
		}
		return a.obj.GetName() < b.obj.GetName()
	})
	var out []*api.Resource
	var skips []mirror.Skipped
	present := map[api.Key]bool{}
	for _, o := range objs {
		object := o.kind.Name + " " + o.obj.GetNamespace() + "/" + o.obj.GetName()
		key := api.Key{Kind: o.kind, Namespace: o.obj.GetNamespace(), Name: o.obj.GetName()}
		present[key] = true
		r, err := decodeConfig(o.obj)
		if err != nil {
			if last := kept[key]; last != nil {
				err = fmt.Errorf("%w (its last valid version stays)", err)
				out = append(out, last)
			}
			skips = append(skips, mirror.Skipped{Object: object, Err: err})
			continue
		}
		kept[key] = r
		out = append(out, r)
	}
	maps.DeleteFunc(kept, func(k api.Key, _ *api.Resource) bool { return !present[k] })
	return out, skips
}

// decodeConfig decodes one custom resource, or the mesh ConfigMap, as navarch apply
// would its YAML.
func decodeConfig(o *unstructured.Unstructured) (*api.Resource, error) {
	ann := maps.Clone(o.GetAnnotations())
	delete(ann, lastApplied)
	meta := map[string]any{"name": o.GetName(), "namespace": o.GetNamespace()}
	if l := o.GetLabels(); len(l) > 0 {
		meta["labels"] = l
	}
	if len(ann) > 0 {
		meta["annotations"] = ann
	}
	doc := map[string]any{"apiVersion": o.GetAPIVersion(), "kind": o.GetKind(), "metadata": meta}
	if spec, ok := o.Object["spec"]; ok {
		doc["spec"] = spec
	}
	if data, ok := o.Object["data"]; ok && o.GetKind() == "ConfigMap" {
		doc["data"] = data
	}
	data, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	rs, _, err := api.Decode("the cluster", data, o.GetNamespace())
	if err != nil {
		return nil, err
	}
	if len(rs) != 1 {
		return nil, fmt.Errorf("decoded %d resources, want 1", len(rs))
	}
	return rs[0], nil
}

// sameConfig reports whether two versions of a custom resource are the same to the
// translation: the same generation (which Istio's CRDs bump on spec changes only,
// not on status), labels and annotations. A ConfigMap has no generation: every
// version is new.
func sameConfig(old, cur any) bool {
	o, ok1 := old.(*unstructured.Unstructured)
	n, ok2 := cur.(*unstructured.Unstructured)
	return ok1 && ok2 && o.GetGeneration() == n.GetGeneration() && o.GetGeneration() != 0 &&
		maps.Equal(o.GetLabels(), n.GetLabels()) && maps.Equal(o.GetAnnotations(), n.GetAnnotations())
}
