package kubetest

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/clientcmd"
)

// TestStopKeepsObjects: an API server stopped and started again serves the objects
// it had (etcd keeps running), on the same address, to the kubeconfig it wrote.
func TestStopKeepsObjects(t *testing.T) {
	c := Start(t)
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kept"}}
	if _, err := c.Core(t).Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.Stop(t)
	if _, err := c.Core(t).Namespaces().Get(ctx, "kept", metav1.GetOptions{}); err == nil {
		t.Fatal("a stopped API server answered")
	}
	c.Start(t)
	rc, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if rc.Host != c.Server {
		t.Fatalf("kubeconfig names %s, the server is at %s", rc.Host, c.Server)
	}
	core, err := corev1client.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := core.Namespaces().Get(ctx, "kept", metav1.GetOptions{}); err != nil {
		t.Fatalf("after a restart, through the kubeconfig: %v", err)
	}
}
