package vm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/navarch/navarch/adapters/registrytest"
	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/registry"
	"github.com/navarch/navarch/store"
)

const groupDoc = `
apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {name: ratings, namespace: vms}
spec:
  metadata:
    labels: {app: ratings, tier: backend}
    annotations: {team: ratings}
  template:
    serviceAccount: ratings
    labels: {app: ratings-template, version: v1}
    ports: {grpc: 9080}
    weight: 3
`

const grace = time.Second

type fixture struct {
	st  *store.Store
	ctx context.Context
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	st := registrytest.OpenStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	f := &fixture{st: st, ctx: ctx}
	f.apply(t, groupDoc)
	return f
}

// apply applies the WorkloadGroup of doc, as navarch apply writes it.
func (f *fixture) apply(t testing.TB, doc string) {
	t.Helper()
	rs, _, err := api.Decode("group.yaml", []byte(doc), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.Apply(f.ctx, store.ConfigSpace, rs); err != nil {
		t.Fatal(err)
	}
}

// registered starts node n1's registrar and registers req's proxy through it.
func (f *fixture) registered(t *testing.T, req Request) (*Registrar, *Registration) {
	t.Helper()
	r, _ := f.node(t, "n1")
	g, err := r.Register(f.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	return r, g
}

// node starts a registrar as node name would; stopping it is the node dying.
func (f *fixture) node(t *testing.T, name string) (*Registrar, context.CancelFunc) {
	t.Helper()
	r := NewRegistrar(f.st, Config{Node: name, Grace: grace}, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	for {
		if _, _, err := r.lease(); err == nil {
			return r, cancel
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func request() Request {
	return Request{Group: "ratings", Namespace: "vms", ServiceAccount: "ratings", Authenticated: true,
		IP: "10.0.0.5", Locality: "eu/west/a", Labels: map[string]string{"version": "v2", "istio-locality": "eu.west.a"},
		ProxyID: "sidecar~10.0.0.5~vm1.vms~vms.svc.cluster.local"}
}

func (f *fixture) get(t *testing.T, name string) (*api.Resource, error) {
	t.Helper()
	return f.st.Get(f.ctx, Space, api.Key{Kind: api.WorkloadEntry, Namespace: "vms", Name: name})
}

// eventually polls check until it passes, for up to ten grace periods.
func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * grace)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (f *fixture) absent(t *testing.T, name string) func() error {
	return func() error {
		if r, err := f.get(t, name); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("entry %s: %v, %v; want it gone", name, r, err)
		}
		return nil
	}
}

func TestRegisterWritesTheEntryIstiodWould(t *testing.T) {
	f := newFixture(t)
	r, g := f.registered(t, request())
	if g.Name() != "ratings-10.0.0.5" {
		t.Errorf("name %q, want ratings-10.0.0.5", g.Name())
	}
	res, err := f.get(t, "ratings-10.0.0.5")
	if err != nil {
		t.Fatal(err)
	}
	we := res.Spec.(*networking.WorkloadEntry)
	wantLabels := map[string]string{"app": "ratings", "tier": "backend", "version": "v2"}
	if fmt.Sprint(we.Labels) != fmt.Sprint(wantLabels) || fmt.Sprint(res.Meta.Labels) != fmt.Sprint(wantLabels) {
		t.Errorf("labels %v (metadata %v), want %v: template < group metadata < proxy, without istio-locality", we.Labels, res.Meta.Labels, wantLabels)
	}
	if we.Address != "10.0.0.5" || we.Locality != "eu/west/a" || we.ServiceAccount != "ratings" || we.Weight != 3 || we.Ports["grpc"] != 9080 {
		t.Errorf("spec %v: want the template with the proxy's address and locality", we)
	}
	ann := res.Meta.Annotations
	if ann[AnnotationGroup] != "ratings" || ann[AnnotationController] != "n1" || ann[AnnotationConnectedAt] == "" || ann["team"] != "ratings" {
		t.Errorf("annotations %v", ann)
	}
	if ann[registry.HealthAnnotation] != "" || ann[AnnotationHealthChecks] != "" {
		t.Errorf("a proxy that reports no health: annotations %v", ann)
	}

	req := request()
	req.IP, req.Network = "fd00::5", "net-2"
	if g, err := r.Register(f.ctx, req); err != nil || g.Name() != "ratings-fd00--5-net-2" {
		t.Errorf("IPv6 in a network: %v, %v; want ratings-fd00--5-net-2", g, err)
	}
}

func TestRegisterRefusesOthers(t *testing.T) {
	f := newFixture(t)
	r, _ := f.node(t, "n1")
	for _, tc := range []struct {
		name string
		edit func(*Request)
		want error
	}{
		{"plaintext", func(q *Request) { q.Authenticated = false }, ErrForbidden},
		{"another service account", func(q *Request) { q.ServiceAccount = "reviews" }, ErrForbidden},
		{"a group of another namespace", func(q *Request) { q.Namespace = "default" }, ErrNoGroup},
		{"no such group", func(q *Request) { q.Group = "nope" }, ErrNoGroup},
	} {
		req := request()
		tc.edit(&req)
		if _, err := r.Register(f.ctx, req); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		} else {
			t.Logf("%s: %v", tc.name, err)
		}
	}
	if rs, _, err := f.st.List(f.ctx, Space, api.WorkloadEntry, ""); err != nil || len(rs) != 0 {
		t.Errorf("entries after refused requests: %v, %v", rs, err)
	}
}

// TestGroupFromAMirroredSource: a WorkloadGroup that a Kubernetes cluster's Istio
// configuration gives (mirrored into a registry source) registers proxies too when
// the registrar reads that source after what navarch apply wrote.
func TestGroupFromAMirroredSource(t *testing.T) {
	st := registrytest.OpenStore(t)
	ctx := context.Background()
	mirrored := store.RegistrySpace("kubernetes.c1.config")
	rs, _, err := api.Decode("group.yaml", []byte(groupDoc), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Apply(ctx, mirrored, rs); err != nil {
		t.Fatal(err)
	}
	register := func(groups store.Layered) error {
		r := NewRegistrar(st, Config{Node: "n1", Grace: grace, Groups: groups}, slog.New(slog.DiscardHandler))
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { r.Run(runCtx); close(done) }()
		defer func() { cancel(); <-done }()
		for _, _, err := r.lease(); err != nil; _, _, err = r.lease() {
			time.Sleep(10 * time.Millisecond)
		}
		reg, err := r.Register(ctx, request())
		if err == nil {
			reg.Close()
		}
		return err
	}
	if err := register(store.Layered{}); !errors.Is(err, ErrNoGroup) {
		t.Errorf("reading what was applied only: %v, want ErrNoGroup", err)
	}
	if err := register(store.Layered{St: st, Spaces: []store.Space{store.ConfigSpace, mirrored}}); err != nil {
		t.Errorf("reading the mirrored source too: %v", err)
	}
}

func TestEntryOutlivesItsProxyByTheGracePeriod(t *testing.T) {
	f := newFixture(t)
	r, _ := f.node(t, "n1")
	m := NewMetrics(prometheus.NewRegistry())
	r.cfg.Metrics = m
	g, err := r.Register(f.ctx, request())
	if err != nil {
		t.Fatal(err)
	}
	g.Close()
	res, err := f.get(t, g.Name())
	if err != nil || res.Meta.Annotations[AnnotationDisconnectedAt] == "" || res.Meta.Annotations[AnnotationConnectedAt] != "" {
		t.Fatalf("right after the proxy left: %v, %v; want the entry marked disconnected, not connected", res, err)
	}
	// Back within the grace period: the entry stays, connected again.
	g, err = r.Register(f.ctx, request())
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * grace)
	res, err = f.get(t, g.Name())
	if err != nil || res.Meta.Annotations[AnnotationDisconnectedAt] != "" || res.Meta.Annotations[AnnotationConnectedAt] == "" {
		t.Fatalf("a proxy back within the grace period: %v, %v", res, err)
	}
	g.Close()
	eventually(t, "the proxy gone for good", f.absent(t, g.Name()))
	eventually(t, "the registrar forgetting the entry", func() error {
		if held := testutil.ToFloat64(m.held); held != 0 {
			return fmt.Errorf("%v entries held", held)
		}
		return nil
	})
	for name, c := range map[string]prometheus.Counter{"success": m.success, "unregister": m.unregister, "deletes": m.deletes, "errors": m.errors} {
		want := map[string]float64{"success": 2, "unregister": 2, "deletes": 1}[name]
		if got := testutil.ToFloat64(c); got != want {
			t.Errorf("%s: %v, want %v", name, got, want)
		}
	}
}

func TestProxyMovingToAnotherNodeKeepsItsEntry(t *testing.T) {
	f := newFixture(t)
	n1, _ := f.node(t, "n1")
	n2, _ := f.node(t, "n2")
	g1, err := n1.Register(f.ctx, request())
	if err != nil {
		t.Fatal(err)
	}
	g2, err := n2.Register(f.ctx, request()) // the proxy reconnected to n2 first...
	if err != nil {
		t.Fatal(err)
	}
	g1.Close() // ...and n1 saw its old stream end
	time.Sleep(3 * grace)
	res, err := f.get(t, g2.Name())
	if err != nil || res.Meta.Annotations[AnnotationController] != "n2" || res.Meta.Annotations[AnnotationDisconnectedAt] != "" {
		t.Fatalf("after n1's grace period: %v, %v; want the entry held by n2", res, err)
	}
}

func TestNodeDeathTakesItsEntriesAfterTheGracePeriod(t *testing.T) {
	f := newFixture(t)
	n1, stop1 := f.node(t, "n1")
	n2, _ := f.node(t, "n2")
	if _, err := n1.Register(f.ctx, request()); err != nil {
		t.Fatal(err)
	}
	moved := request()
	moved.IP = "10.0.0.6"
	if _, err := n1.Register(f.ctx, moved); err != nil {
		t.Fatal(err)
	}
	stop1()                                              // n1 dies without closing anything: its lease is left to expire
	if _, err := n2.Register(f.ctx, moved); err != nil { // one proxy reconnects to n2
		t.Fatal(err)
	}
	eventually(t, "the entry of the proxy that did not come back", f.absent(t, "ratings-10.0.0.5"))
	if res, err := f.get(t, "ratings-10.0.0.6"); err != nil || res.Meta.Annotations[AnnotationController] != "n2" {
		t.Fatalf("the proxy that reconnected to n2: %v, %v", res, err)
	}
}

func TestLostLeaseIsTakenAgainWithTheEntries(t *testing.T) {
	f := newFixture(t)
	r, g := f.registered(t, request())
	_, lease, _ := r.lease()
	// What etcd does when the node stayed cut off from its quorum too long.
	if _, err := f.st.Client().Revoke(f.ctx, lease); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the entry written again with a new lease", func() error {
		_, now, err := r.lease()
		if err != nil || now == lease {
			return fmt.Errorf("lease %x, %v", now, err)
		}
		_, err = f.get(t, g.Name())
		return err
	})
}

func TestHealthReports(t *testing.T) {
	f := newFixture(t)
	req := request()
	unhealthy := false
	req.Healthy = &unhealthy
	_, g := f.registered(t, req)
	health := func() (string, string, string) {
		res, err := f.get(t, g.Name())
		if err != nil {
			t.Fatal(err)
		}
		a := res.Meta.Annotations
		return a[registry.HealthAnnotation], a[AnnotationHealthMessage], a[AnnotationHealthChecks]
	}
	if h, _, checks := health(); h != "unhealthy" || checks != "true" {
		t.Fatalf("registered failing its probe: health %q, checks %q", h, checks)
	}
	if err := g.SetHealth(f.ctx, true, ""); err != nil {
		t.Fatal(err)
	}
	if h, _, _ := health(); h != "" {
		t.Fatalf("after a healthy report: %q", h)
	}
	if err := g.SetHealth(f.ctx, false, "connection refused"); err != nil {
		t.Fatal(err)
	}
	if h, msg, _ := health(); h != "unhealthy" || msg != "connection refused" {
		t.Fatalf("after an unhealthy report: %q %q", h, msg)
	}
	snap, err := registrySnapshot(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range snap.Workloads() {
		if w.Name == g.Name() && (w.Healthy || w.Source != Source) {
			t.Errorf("registry workload %s: healthy %v, source %q", w.Name, w.Healthy, w.Source)
		}
	}
}

func registrySnapshot(f *fixture) (*registry.Snapshot, error) {
	entries, rev, err := f.st.Snapshot(f.ctx)
	if err != nil {
		return nil, err
	}
	return registry.NewSnapshot(entries, rev, "cluster.local"), nil
}

// BenchmarkRegister measures registrations of distinct workloads through one
// node's registrar, each a read of the group and a write of the entry in etcd (one
// member, fsync off).
func BenchmarkRegister(b *testing.B) {
	f := newFixture(b)
	r := NewRegistrar(f.st, Config{Node: "n1", Grace: grace}, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	for {
		if _, _, err := r.lease(); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	var n atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			req := request()
			req.IP = fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
			if _, err := r.Register(f.ctx, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// TestLeaseAtRiskMovesProxiesAway stops the etcd member under a registrar: its lease
// can no longer be renewed, so new registrations are refused and the registered
// proxies are asked to move to another node.
func TestLeaseAtRiskMovesProxiesAway(t *testing.T) {
	f := newFixture(t)
	atRisk := make(chan struct{}, 1)
	r := NewRegistrar(f.st, Config{Node: "n1", Grace: grace, OnLeaseAtRisk: func() { atRisk <- struct{}{} }}, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	eventually(t, "a lease", func() error { _, _, err := r.lease(); return err })
	g, err := r.Register(f.ctx, request())
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-atRisk:
		t.Fatal("at risk while etcd renews the lease")
	case <-time.After(3 * grace):
	}
	f.st.Etcd().Server.HardStop()
	select {
	case <-atRisk:
	case <-time.After(10 * grace):
		t.Fatal("no call of OnLeaseAtRisk after etcd stopped")
	}
	req := request()
	req.IP = "10.0.0.9"
	rctx, rcancel := context.WithTimeout(f.ctx, 5*time.Second)
	defer rcancel()
	if _, err := r.Register(rctx, req); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("registering while the lease is at risk: %v, want ErrUnavailable", err)
	}
	// The proxy leaves (its stream ended): its entry is still removed after the grace
	// period, in case the lease is renewed after all.
	g.Close()
	if got := r.Registered(); len(got) != 1 {
		t.Fatalf("right after the proxy left: holding %v, want its entry until the grace period ends", got)
	}
	eventually(t, "the entry let go after the grace period", func() error {
		if got := r.Registered(); len(got) != 0 {
			return fmt.Errorf("holding %v", got)
		}
		return nil
	})
}

// A change of the group reaches the entries of its connected proxies (labels,
// ports, metadata), keeping their health and connection time; an unchanged group
// writes nothing.
func TestGroupChangeRewritesConnectedEntries(t *testing.T) {
	f := newFixture(t)
	req := request()
	unhealthy := false
	req.Healthy = &unhealthy
	_, g := f.registered(t, req)
	before, err := f.get(t, g.Name())
	if err != nil {
		t.Fatal(err)
	}
	apply := func(doc string) { f.apply(t, doc) }
	changed := strings.NewReplacer("tier: backend", "tier: storage", "grpc: 9080", "grpc: 9090", "weight: 3", "weight: 5").Replace(groupDoc)
	apply(changed)
	var after *api.Resource
	eventually(t, "the entry written for the group's change", func() error {
		after, err = f.get(t, g.Name())
		if err != nil {
			return err
		}
		we := after.Spec.(*networking.WorkloadEntry)
		if we.Labels["tier"] != "storage" || after.Meta.Labels["tier"] != "storage" || we.Ports["grpc"] != 9090 || we.Weight != 5 {
			return fmt.Errorf("entry %v, labels %v", we, after.Meta.Labels)
		}
		return nil
	})
	we := after.Spec.(*networking.WorkloadEntry)
	if we.Labels["version"] != "v2" || we.Address != "10.0.0.5" || we.Locality != "eu/west/a" {
		t.Errorf("the proxy's own labels, address or locality lost: %v", we)
	}
	ann := after.Meta.Annotations
	if ann[registry.HealthAnnotation] != "unhealthy" || ann[AnnotationConnectedAt] != before.Meta.Annotations[AnnotationConnectedAt] || ann[AnnotationController] != "n1" {
		t.Errorf("annotations %v, want the health, connection time and controller kept (before: %v)", ann, before.Meta.Annotations)
	}

	// Applied again unchanged but for a field entries do not carry: nothing written.
	apply(strings.Replace(changed, "weight: 5", "weight: 5\n  probe: {tcpSocket: {port: 9090}}", 1))
	time.Sleep(grace / 2)
	if now, err := f.get(t, g.Name()); err != nil || now.Meta.ResourceVersion != after.Meta.ResourceVersion {
		t.Errorf("a group change that does not touch the entry rewrote it: %v, %v", now, err)
	}
}

// A deleted group takes the entries of its connected proxies with it (as
// Kubernetes collects istiod's, which the group owns); the group applied again
// brings them back, with the health reported meanwhile; a proxy that disconnects
// meanwhile leaves nothing behind.
func TestDeletedGroupTakesItsEntries(t *testing.T) {
	f := newFixture(t)
	r, g := f.registered(t, request())
	other := request()
	other.IP = "10.0.0.6"
	g2, err := r.Register(f.ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	key := api.Key{Kind: api.WorkloadGroup, Namespace: "vms", Name: "ratings"}
	if _, _, err := f.st.Delete(f.ctx, store.ConfigSpace, key, ""); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the entries gone with their group", func() error {
		return errors.Join(f.absent(t, g.Name())(), f.absent(t, g2.Name())())
	})
	if err := g.SetHealth(f.ctx, false, "connection refused"); err != nil {
		t.Fatal(err)
	}
	if err := f.absent(t, g.Name())(); err != nil {
		t.Errorf("a health report wrote the entry of a deleted group: %v", err)
	}
	g2.Close()

	f.apply(t, groupDoc)
	eventually(t, "the connected proxy's entry back with its group", func() error {
		res, err := f.get(t, g.Name())
		if err != nil {
			return err
		}
		if ann := res.Meta.Annotations; ann[registry.HealthAnnotation] != "unhealthy" || ann[AnnotationHealthMessage] != "connection refused" {
			return fmt.Errorf("annotations %v, want the health reported while the group was gone", ann)
		}
		return nil
	})
	time.Sleep(grace / 2)
	if err := f.absent(t, g2.Name())(); err != nil {
		t.Errorf("the proxy that disconnected while its group was gone: %v", err)
	}
	if got := r.Registered(); len(got) != 1 || got[0] != "vms/"+g.Name() {
		t.Errorf("the registrar holds %v, want only the connected proxy's entry", got)
	}
}

// A group whose template names another service account turns its connected
// proxies of the old identity out of the registry, and takes them back with it.
func TestGroupThatNoLongerAdmitsTheProxyTakesItsEntry(t *testing.T) {
	f := newFixture(t)
	r, g := f.registered(t, request())
	f.apply(t, strings.Replace(groupDoc, "serviceAccount: ratings", "serviceAccount: ratings-v2", 1))
	eventually(t, "the entry gone when its group names another service account", f.absent(t, g.Name()))
	if _, err := r.Register(f.ctx, request()); !errors.Is(err, ErrForbidden) {
		t.Errorf("a proxy of the old identity registered again: %v, want ErrForbidden", err)
	}

	f.apply(t, groupDoc)
	eventually(t, "the entry back when the group admits its proxy again", func() error {
		_, err := f.get(t, g.Name())
		return err
	})
}
