package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	admissionclient "k8s.io/client-go/kubernetes/typed/admissionregistration/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/navarch/navarch/adapters/kubernetes"
	"github.com/navarch/navarch/adapters/kubernetes/kubetest"
)

// warnings collects the warnings an API server returns (kubectl prints them).
type warnings struct {
	mu   sync.Mutex
	seen []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seen = append(w.seen, text)
}

func (w *warnings) all() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.seen, "\n")
}

// TestKubernetesValidatingWebhook: a real kube-apiserver with Istio's CRDs calls a
// node's validating webhook (over HTTPS, as deploy/kubernetes/validating-webhook.yaml
// says, as it would istiod's): an invalid VirtualService is refused with navarch's error
// and never stored; a valid one is stored, with navarch's warnings passed back as
// kubectl shows them.
func TestKubernetesValidatingWebhook(t *testing.T) {
	kc := kubetest.Start(t)
	kc.InstallIstioCRDs(t)
	node, caPEM, _ := startHTTPSDevNode(t, t.TempDir())
	ctx := context.Background()

	ac, err := admissionclient.NewForConfig(kc.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	// deploy/kubernetes/validating-webhook.yaml, pointed at the node.
	data, err := os.ReadFile(filepath.Join("..", "deploy", "kubernetes", "validating-webhook.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var vwc admissionregistrationv1.ValidatingWebhookConfiguration
	if err := yaml.UnmarshalStrict(data, &vwc); err != nil || len(vwc.Webhooks) != 1 {
		t.Fatalf("validating-webhook.yaml: %v (%d webhooks)", err, len(vwc.Webhooks))
	}
	url := "https://" + node.HTTP + kubernetes.WebhookPath
	vwc.Webhooks[0].ClientConfig.URL, vwc.Webhooks[0].ClientConfig.CABundle = &url, caPEM
	if _, err := ac.ValidatingWebhookConfigurations().Create(ctx, &vwc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	var seen warnings
	cfg := rest.CopyConfig(kc.RESTConfig())
	cfg.WarningHandler = &seen
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	vss := dyn.Resource(schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}).Namespace("default")
	object := func(name, spec string) *unstructured.Unstructured {
		var obj map[string]any
		if err := yaml.Unmarshal([]byte("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: "+name+"}\nspec: "+spec), &obj); err != nil {
			t.Fatal(err)
		}
		return &unstructured.Unstructured{Object: obj}
	}

	// The API server takes a moment to call a new webhook.
	bad := object("bad", `{hosts: [reviews], http: [{route: [{destination: {host: reviews}, weight: -1}]}]}`)
	const refusal = "VirtualService default/bad: spec.http[0].route[0].weight: must not be negative, got -1"
	eventually(t, 30*time.Second, "the API server refuses the invalid VirtualService through the webhook", func() error {
		_, err := vss.Create(ctx, bad, metav1.CreateOptions{})
		if err == nil {
			vss.Delete(ctx, "bad", metav1.DeleteOptions{})
			return fmt.Errorf("created")
		}
		if !strings.Contains(err.Error(), refusal) {
			return fmt.Errorf("refused with %v, want navarch's %q", err, refusal)
		}
		return nil
	})
	if _, err := vss.Get(ctx, "bad", metav1.GetOptions{}); err == nil {
		t.Fatal("the refused VirtualService is in the cluster")
	}

	good := object("good", `{hosts: [reviews], http: [{route: [{destination: {host: reviews}}]}, {match: [{uri: {prefix: /a}}], route: [{destination: {host: reviews}}]}]}`)
	if _, err := vss.Create(ctx, good, metav1.CreateOptions{}); err != nil {
		t.Fatalf("a valid VirtualService was refused: %v", err)
	}
	if want := "spec.http[1]: virtualService rule #1 not used (route without matches defined before)"; !strings.Contains(seen.all(), want) {
		t.Fatalf("the API server passed on warnings %q, want navarch's %q", seen.all(), want)
	}
}
