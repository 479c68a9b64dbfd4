package kubernetes_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	meshconfig "istio.io/api/mesh/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/navarch/navarch/adapters/kubernetes"
	"github.com/navarch/navarch/adapters/kubernetes/kubetest"
	"github.com/navarch/navarch/adapters/registrytest"
	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/store"
)

// TestIstioConfigFromTheCluster: Istio configuration stored in the cluster as
// Istio's custom resources is mirrored into navarch's configuration, where every
// node's registry reads it; an edit the cluster stores but navarch's validation
// refuses leaves the last valid version; a deletion removes it.
func TestIstioConfigFromTheCluster(t *testing.T) {
	kc := kubetest.Start(t)
	kc.InstallIstioCRDs(t)
	dyn, err := dynamic.NewForConfig(kc.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	vsAPI := dyn.Resource(schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}).Namespace("default")
	drAPI := dyn.Resource(schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1beta1", Resource: "destinationrules"}).Namespace("default")
	object := func(doc string) *unstructured.Unstructured {
		t.Helper()
		var obj map[string]any
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			t.Fatal(err)
		}
		return &unstructured.Unstructured{Object: obj}
	}
	const vs = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, annotations: {kubectl.kubernetes.io/last-applied-configuration: "{}"}}
spec:
  hosts: [reviews]
  http:
  - route:
    - {destination: {host: reviews, subset: v1}, weight: %d}
    - {destination: {host: reviews, subset: v2}, weight: %d}
`
	if _, err := vsAPI.Create(ctx, object(fmt.Sprintf(vs, 80, 20)), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := drAPI.Create(ctx, object(`apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
`), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// EnvoyFilter, which Istio serves as v1alpha3 only.
	efAPI := dyn.Resource(schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1alpha3", Resource: "envoyfilters"}).Namespace("default")
	if _, err := efAPI.Create(ctx, object(`apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: limits}
spec:
  workloadSelector: {labels: {app: reviews}}
  configPatches:
  - applyTo: CLUSTER
    match: {context: SIDECAR_OUTBOUND}
    patch: {operation: MERGE, value: {per_connection_buffer_limit_bytes: 32768}}
`), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	st := registrytest.OpenStore(t)
	cfg := kubernetes.DefaultConfig()
	cfg.Kubeconfig, cfg.ClusterID, cfg.IstioConfig = kc.Kubeconfig, clusterID, true
	reg := prometheus.NewRegistry()
	cfg.Metrics = kubernetes.NewMetrics(reg)
	a, err := kubernetes.New(cfg, st, "n1", registrytest.Logger()) // for its names
	if err != nil {
		t.Fatal(err)
	}
	run := func(node string) (stop func()) {
		a, err := kubernetes.New(cfg, st, node, registrytest.Logger())
		if err != nil {
			t.Fatal(err)
		}
		rctx, rcancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			st.RunElected(rctx, a.ConfigElectionName(), node, registrytest.Logger(), a.RunConfig)
		}()
		return func() { rcancel(); <-done }
	}
	stop := run("n1")
	defer func() { stop() }()

	// config returns the configuration every node's registry holds: each resource
	// with its route weights (VirtualServices) or subsets (DestinationRules).
	config := func() []string {
		var out []string
		snap := registrySnapshot(t, st)
		for _, r := range snap.Config(api.VirtualService) {
			var w []int32
			for _, d := range r.Spec.(*networking.VirtualService).Http[0].Route {
				w = append(w, d.Weight)
			}
			if r.Meta.Annotations[lastApplied] != "" {
				t.Errorf("%s keeps kubectl's last-applied annotation", r)
			}
			out = append(out, fmt.Sprintf("%s %v", r, w))
		}
		for _, r := range snap.Config(api.DestinationRule) {
			out = append(out, fmt.Sprintf("%s %d subsets", r, len(r.Spec.(*networking.DestinationRule).Subsets)))
		}
		for _, r := range snap.Config(api.EnvoyFilter) {
			out = append(out, fmt.Sprintf("%s %d patches", r, len(r.Spec.(*networking.EnvoyFilter).ConfigPatches)))
		}
		return out
	}
	expect := func(what string, want ...string) {
		t.Helper()
		awaitEqual(t, what, config, want...)
	}
	expect("every resource mirrored", "VirtualService default/reviews [80 20]", "DestinationRule default/reviews 2 subsets", "EnvoyFilter default/limits 1 patches")
	expectEvents(t, reg, map[string]float64{"pilot_k8s_cfg_events VirtualService add": 1,
		"pilot_k8s_cfg_events DestinationRule add": 1, "pilot_k8s_cfg_events EnvoyFilter add": 1})

	// Istio's mesh config, its ConfigMap, is mirrored as navarch's MeshConfig.
	core := kc.Core(t)
	if _, err := core.Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "istio-system"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	meshCM := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "istio", Namespace: "istio-system"},
		Data: map[string]string{"mesh": "accessLogFile: /dev/stdout\nconnectTimeout: 3s", "meshNetworks": "networks: {}"}}
	if _, err := core.ConfigMaps("istio-system").Create(ctx, meshCM, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	mesh := func() []string {
		var out []string
		for _, r := range registrySnapshot(t, st).Config(api.MeshConfig) {
			m := r.Spec.(*meshconfig.MeshConfig)
			out = append(out, fmt.Sprintf("%s %s %s", r, m.AccessLogFile, m.GetConnectTimeout().AsDuration()))
		}
		return out
	}
	awaitEqual(t, "the mesh ConfigMap mirrored", mesh, "MeshConfig istio-system/istio /dev/stdout 3s")
	meshCM.Data["mesh"] = "accessLogFile: /tmp/access.log\nconnectTimeout: 3s"
	if _, err := core.ConfigMaps("istio-system").Update(ctx, meshCM, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	awaitEqual(t, "an edit of the mesh ConfigMap", mesh, "MeshConfig istio-system/istio /tmp/access.log 3s")
	meshCM.Data["mesh"] = "connectTimeout: 2h" // Istio's validation refuses it
	if _, err := core.ConfigMaps("istio-system").Update(ctx, meshCM, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	awaitEqual(t, "an invalid mesh ConfigMap leaves the last valid version", mesh, "MeshConfig istio-system/istio /tmp/access.log 3s")
	if err := core.ConfigMaps("istio-system").Delete(ctx, "istio", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	awaitEqual(t, "the mesh ConfigMap deleted", mesh)

	update := func(doc string) {
		t.Helper()
		cur, err := vsAPI.Get(ctx, "reviews", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		next := object(doc)
		next.SetResourceVersion(cur.GetResourceVersion())
		if _, err := vsAPI.Update(ctx, next, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	update(fmt.Sprintf(vs, 0, 100))
	expect("an edit reaches the registry", "VirtualService default/reviews [0 100]", "DestinationRule default/reviews 2 subsets", "EnvoyFilter default/limits 1 patches")
	// Weights that are all zero: the CRD's schema takes them, Istio's validation
	// (and navarch's) does not.
	update(fmt.Sprintf(vs, 0, 0))
	time.Sleep(time.Second) // a write would have happened by now (50 ms batches)
	expect("an invalid edit leaves the last valid version", "VirtualService default/reviews [0 100]", "DestinationRule default/reviews 2 subsets", "EnvoyFilter default/limits 1 patches")
	if sp := readStatus(t, st, a.ConfigSource()); sp == nil || sp.Stale {
		t.Fatalf("status of %s: %+v", a.ConfigSource(), sp)
	}
	// Another node takes over while the cluster's version is still invalid: it keeps
	// the valid version it finds in the store.
	stop()
	stop = run("n2")
	deadline := time.Now().Add(30 * time.Second)
	for {
		if sp := readStatus(t, st, a.ConfigSource()); sp != nil && sp.Node == "n2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("n2 does not take over")
		}
		time.Sleep(50 * time.Millisecond)
	}
	expect("after a takeover, the last valid version still", "VirtualService default/reviews [0 100]", "DestinationRule default/reviews 2 subsets", "EnvoyFilter default/limits 1 patches")
	if err := vsAPI.Delete(ctx, "reviews", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	expect("a deletion reaches the registry", "DestinationRule default/reviews 2 subsets", "EnvoyFilter default/limits 1 patches")
}

const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// readStatus returns the status of a registry source in the store, nil if none.
func readStatus(t *testing.T, st *store.Store, source string) *store.SourceStatus {
	t.Helper()
	entries, _, err := st.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range entries {
		if en.Status != nil && en.Status.Source == source {
			return en.Status
		}
	}
	return nil
}

// BenchmarkConfigEditToStore measures how long an edit of a VirtualService stored
// in the cluster takes to reach the store (and from there every node's registry),
// through a real API server: its watch, the adapter's batching (50 ms of quiet;
// NAVARCH_BENCH_COALESCE=1ms makes it 1 ms), the decoding and validation, and the
// write. One op is one edit, made and awaited in turn.
func BenchmarkConfigEditToStore(b *testing.B) {
	kc := kubetest.Start(b)
	kc.InstallIstioCRDs(b)
	dyn, err := dynamic.NewForConfig(kc.RESTConfig())
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	vsAPI := dyn.Resource(schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}).Namespace("default")
	vs := func(weight int64) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": map[string]any{"name": "reviews"},
			"spec": map[string]any{"hosts": []any{"reviews"}, "http": []any{map[string]any{"route": []any{
				map[string]any{"destination": map[string]any{"host": "reviews", "subset": "v1"}, "weight": weight},
				map[string]any{"destination": map[string]any{"host": "reviews", "subset": "v2"}, "weight": 100 - weight},
			}}}},
		}}
	}
	cur, err := vsAPI.Create(ctx, vs(0), metav1.CreateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	st := registrytest.OpenStore(b)
	cfg := kubernetes.DefaultConfig()
	cfg.Kubeconfig, cfg.ClusterID, cfg.IstioConfig = kc.Kubeconfig, clusterID, true
	if d, err := time.ParseDuration(os.Getenv("NAVARCH_BENCH_COALESCE")); err == nil {
		cfg.Coalesce = d
	}
	a, err := kubernetes.New(cfg, st, "n1", registrytest.Logger())
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		st.RunElected(ctx, a.ConfigElectionName(), "n1", registrytest.Logger(), a.RunConfig)
	}()
	defer func() { cancel(); <-done }()
	key := api.Key{Kind: api.VirtualService, Namespace: "default", Name: "reviews"}
	space := store.RegistrySpace(a.ConfigSource())
	weight := int64(0)
	edit := func() {
		weight = (weight + 1) % 100
		next := vs(weight)
		next.SetResourceVersion(cur.GetResourceVersion())
		if cur, err = vsAPI.Update(ctx, next, metav1.UpdateOptions{}); err != nil {
			b.Fatal(err)
		}
		for {
			r, err := st.Get(ctx, space, key)
			if err == nil && int64(r.Spec.(*networking.VirtualService).Http[0].Route[0].Weight) == weight {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
	edit()
	for b.Loop() {
		edit()
	}
}

// TestIstioCRDsInstalledLater: a cluster without Istio's CRDs mirrors no
// configuration; once they are installed, the syncing node follows them within a
// status interval.
func TestIstioCRDsInstalledLater(t *testing.T) {
	kc := kubetest.Start(t)
	st := registrytest.OpenStore(t)
	cfg := kubernetes.DefaultConfig()
	cfg.Kubeconfig, cfg.ClusterID, cfg.IstioConfig = kc.Kubeconfig, clusterID, true
	cfg.StatusInterval = time.Second
	a, err := kubernetes.New(cfg, st, "n1", registrytest.Logger())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		st.RunElected(ctx, a.ConfigElectionName(), "n1", registrytest.Logger(), a.RunConfig)
	}()
	defer func() { cancel(); <-done }()
	awaitEqual(t, "no CRDs: an empty, fresh source", func() []string {
		if s := readStatus(t, st, a.ConfigSource()); s != nil && !s.Stale {
			return []string{"fresh"}
		}
		return nil
	}, "fresh")

	kc.InstallIstioCRDs(t)
	createStrictPeerAuthentication(t, kc)
	awaitEqual(t, "the CRDs installed: the PeerAuthentication mirrored", func() []string {
		var out []string
		for _, r := range registrySnapshot(t, st).Config(api.PeerAuthentication) {
			out = append(out, r.String())
		}
		return out
	}, "PeerAuthentication default/default")
}

// createStrictPeerAuthentication stores the PeerAuthentication default/default
// (mode STRICT) in the cluster, as Istio's custom resource.
func createStrictPeerAuthentication(t *testing.T, kc *kubetest.Cluster) {
	t.Helper()
	dyn, err := dynamic.NewForConfig(kc.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	pa := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
		"metadata": map[string]any{"name": "default"}, "spec": map[string]any{"mtls": map[string]any{"mode": "STRICT"}}}}
	if _, err := dyn.Resource(schema.GroupVersionResource{Group: "security.istio.io", Version: "v1", Resource: "peerauthentications"}).
		Namespace("default").Create(context.Background(), pa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}
