package registry

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/internal/ports"
	"github.com/navarch/navarch/store"
)

// freePort is a loopback URL for the test's etcd to listen on, picked below the
// ephemeral range (internal/ports), where no outgoing connection takes it first.
func freePort(t *testing.T) string {
	addr, err := ports.Loopback()
	if err != nil {
		t.Fatal(err)
	}
	return "http://" + addr
}

// TestViewFollowsTheStore: a view loads what the store holds, follows writes in
// order, and hands out a new snapshot only when something changed.
func TestViewFollowsTheStore(t *testing.T) {
	cfg := store.DefaultConfig()
	cfg.DataDir, cfg.ClientURL, cfg.PeerURL, cfg.UnsafeNoFsync = t.TempDir(), freePort(t), freePort(t), true
	st, err := store.Open(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	apply := func(space store.Space, doc string) {
		t.Helper()
		rs, _, err := api.Decode("test", []byte(doc), "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Apply(ctx, space, rs); err != nil {
			t.Fatal(err)
		}
	}
	apply(store.ConfigSpace, `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: shop}
spec: {hosts: [web], ports: [{number: 80, name: http, protocol: HTTP}], resolution: STATIC, workloadSelector: {labels: {app: web}}}
`)
	v := NewView(st, "cluster.local", slog.New(slog.DiscardHandler))
	go v.Run(ctx)
	select {
	case <-v.Ready():
	case <-ctx.Done():
		t.Fatal("view not ready")
	}
	first := v.Snapshot()
	if first.Service("web.shop.svc.cluster.local", "shop") == nil {
		t.Fatal("the view did not load the service")
	}
	if v.Snapshot() != first {
		t.Fatal("an unchanged view must hand out the same snapshot")
	}
	if !slices.Equal(first.Reasons, []string{ReasonGlobal}) {
		t.Errorf("the first snapshot's reasons: %v, want global (everything loaded)", first.Reasons)
	}
	apply(store.RegistrySpace("vm"), `apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web-1, namespace: shop}
spec: {address: 10.0.0.1, labels: {app: web}}
`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		<-v.Changes()
		snap := v.Snapshot()
		svc := snap.Service("web.shop.svc.cluster.local", "shop")
		if eps := snap.Endpoints(svc); len(eps) == 1 && eps[0].Source == "vm" {
			if snap.Revision <= first.Revision {
				t.Fatalf("revision %d after a write, was %d", snap.Revision, first.Revision)
			}
			if !slices.Equal(snap.Reasons, []string{ReasonEndpoint}) {
				t.Errorf("reasons of the snapshot with a new workload: %v, want endpoint", snap.Reasons)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the view did not follow the write")
		}
	}
	// A route and the mesh config, in one write: each says why.
	rs, _, err := api.Decode("test", []byte(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: shop}
spec: {hosts: [web], http: [{route: [{destination: {host: web}}]}]}
---
apiVersion: navarch.io/v1
kind: MeshConfig
metadata: {name: istio, namespace: istio-system}
spec: {connectTimeout: 5s}
`), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Apply(ctx, store.ConfigSpace, rs); err != nil {
		t.Fatal(err)
	}
	snap := v.Snapshot()
	for len(snap.Config(api.VirtualService)) == 0 || snap.MeshConfig().GetConnectTimeout() == nil {
		if time.Now().After(deadline) {
			t.Fatal("the view did not follow the write")
		}
		<-v.Changes()
		snap = v.Snapshot()
	}
	if !slices.Equal(snap.Reasons, []string{ReasonConfig, ReasonGlobal}) {
		t.Errorf("reasons of the snapshot with a route and the mesh config: %v, want config and global", snap.Reasons)
	}
}
