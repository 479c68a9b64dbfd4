package kubetest

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/navarch/navarch/internal/peers"
)

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// InstallIstioCRDs creates Istio's CustomResourceDefinitions (the file `make peers`
// copies from Istio's module, .peers/istio/crd-all.gen.yaml) and waits until the
// API server serves them. Without the file the test is skipped, except in CI.
func (c *Cluster) InstallIstioCRDs(t testing.TB) {
	t.Helper()
	root, err := peers.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(root, ".peers", "istio", "crd-all.gen.yaml")
	data, err := os.ReadFile(file)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("no Istio CRDs at %s (run make peers): %v", file, err)
		}
		t.Skipf("no Istio CRDs at %s; run `make peers`", file)
	}
	dyn, err := dynamic.NewForConfig(c.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	type served struct{ groupVersion, plural string }
	var want []served
	for _, doc := range strings.Split(string(data), "\n---\n") {
		var obj map[string]any
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if obj == nil {
			continue
		}
		crd := &unstructured.Unstructured{Object: obj}
		if _, err := dyn.Resource(crdResource).Create(context.Background(), crd, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating CRD %s: %v", crd.GetName(), err)
		}
		group, _, _ := unstructured.NestedString(obj, "spec", "group")
		plural, _, _ := unstructured.NestedString(obj, "spec", "names", "plural")
		versions, _, _ := unstructured.NestedSlice(obj, "spec", "versions")
		for _, v := range versions {
			if name, _, _ := unstructured.NestedString(v.(map[string]any), "name"); name != "" {
				want = append(want, served{group + "/" + name, plural})
			}
		}
	}
	disc, err := discovery.NewDiscoveryClientForConfig(c.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, w := range want {
		for {
			l, err := disc.ServerResourcesForGroupVersion(w.groupVersion)
			if err == nil && slices.ContainsFunc(l.APIResources, func(r metav1.APIResource) bool { return r.Name == w.plural }) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the API server does not serve %s %s: %v", w.groupVersion, w.plural, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}
