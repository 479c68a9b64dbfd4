package xds

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/navarch/navarch/registry"
)

func TestPeerAuthMode(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "inputs", "security.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	snap := snapshotOf(t, string(data), `
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: DISABLE}}
`)
	ratings := map[string]string{"app": "ratings"}
	tests := []struct {
		name   string
		ns     string
		labels map[string]string
		port   uint32
		want   mtlsMode
	}{
		{"the namespace policy", "shop", nil, 9090, mtlsStrict},
		{"a workload policy set to UNSET inherits the namespace's", "shop", ratings, 9090, mtlsStrict},
		{"a workload port-level setting wins", "shop", ratings, 8081, mtlsPermissive},
		{"the mesh policy where the namespace has none", "other", nil, 9090, mtlsDisable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := peerAuthMode(snap, "istio-system", tt.ns, tt.labels, tt.port); got != tt.want {
				t.Fatalf("mode %d, want %d", got, tt.want)
			}
		})
	}
	empty := registry.NewSnapshot(nil, 1, "cluster.local")
	if got := peerAuthMode(empty, "istio-system", "shop", nil, 80); got != mtlsPermissive {
		t.Fatalf("without any policy: %d, want PERMISSIVE", got)
	}
}

// TestTranslateSecurity compares what a client and a server in namespace shop get
// for testdata/inputs/security.yaml with its golden file: the client's cluster
// carries mTLS with the server's SPIFFE ID; the server's inbound listener requires
// client certificates and runs the DENY then ALLOW RBAC filters.
func TestTranslateSecurity(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "inputs", "security.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	snap := snapshotOf(t, string(data))
	client := grpcProxy("shop", map[string]string{"app": "frontend"})
	sets, err := grpcProfile().build(newContext(snap, client, "cluster.local", "istio-system"))
	if err != nil {
		t.Fatal(err)
	}
	server := grpcProxy("shop", map[string]string{"app": "ratings"})
	s := &Server{cfg: DefaultConfig()}
	for _, port := range []string{"9090", "8081"} {
		r := s.buildNamed(snap, server, ListenerType, InboundListenerPrefix+"10.0.0.1:"+port)
		if r == nil {
			t.Fatalf("no inbound listener for port %s", port)
		}
		sets[ListenerType].ByName[r.Name] = r
	}
	checkGolden(t, filepath.Join("testdata", "security.golden.yaml"), dump(t, sets))
}
