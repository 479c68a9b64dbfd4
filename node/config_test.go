package node

import (
	"strings"
	"testing"

	"github.com/navarch/navarch/adapters/kubernetes"
)

// TestKubernetesClusters: the clusters a node follows are --kubeconfig's and each
// --kube-cluster, with the shared settings; an id given twice or not a DNS label is
// refused.
func TestKubernetesClusters(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Dev = true
	cfg.Domain = "example.internal"
	cfg.Kubernetes.Kubeconfig, cfg.Kubernetes.ClusterID = "/k/east", "east"
	cfg.Kubernetes.TokenAudiences = []string{"navarch"}
	cfg.KubernetesClusters = []KubernetesCluster{{ID: "west", Kubeconfig: "/k/west", Network: "net-west"}}
	got := cfg.kubernetesClusters()
	if len(got) != 2 {
		t.Fatalf("%d clusters, want 2", len(got))
	}
	for i, want := range []kubernetes.Config{
		{ClusterID: "east", Kubeconfig: "/k/east"},
		{ClusterID: "west", Kubeconfig: "/k/west", Network: "net-west"},
	} {
		g := got[i]
		if g.ClusterID != want.ClusterID || g.Kubeconfig != want.Kubeconfig || g.Network != want.Network ||
			g.Domain != "example.internal" || len(g.TokenAudiences) != 1 || g.TokenAudiences[0] != "navarch" {
			t.Errorf("cluster %d: %+v, want %+v with the node's domain and the shared audiences", i, g, want)
		}
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("valid clusters refused: %v", err)
	}
	cfg.KubernetesClusters = append(cfg.KubernetesClusters, KubernetesCluster{ID: "east", Kubeconfig: "/k/other"}, KubernetesCluster{ID: "North_1", Kubeconfig: "/k/n"})
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), `cluster id "east" given twice`) || !strings.Contains(err.Error(), `"North_1"`) {
		t.Fatalf("Validate = %v, want the duplicate and the bad id named", err)
	}
}

// A read-only token needs an admin token beside it: without one the API is open.
func TestReadTokenNeedsAnAdminToken(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Dev, cfg.ReadTokenFile = true, "reader"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--read-token-file needs an admin token") {
		t.Errorf("a read-only token alone: %v", err)
	}
	cfg.AdminTokenFile = "admin"
	if err := cfg.Validate(); err != nil {
		t.Errorf("with an admin token: %v", err)
	}
}
