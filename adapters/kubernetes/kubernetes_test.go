package kubernetes_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	networking "istio.io/api/networking/v1alpha3"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/scheme"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	discoveryv1client "k8s.io/client-go/kubernetes/typed/discovery/v1"
	rbacv1client "k8s.io/client-go/kubernetes/typed/rbac/v1"

	"github.com/navarch/navarch/adapters/kubernetes"
	"github.com/navarch/navarch/adapters/kubernetes/kubetest"
	"github.com/navarch/navarch/adapters/registrytest"
	"github.com/navarch/navarch/api"
	"github.com/navarch/navarch/registry"
	"github.com/navarch/navarch/store"
)

// TestConformance runs the registry adapter suite against a real kube-apiserver.
func TestConformance(t *testing.T) {
	registrytest.Run(t, registrytest.Harness{New: newFixture})
}

const (
	clusterID = "test"
	nodeName  = "node-1"
	locality  = "region-1/zone-1"
)

func newFixture(t *testing.T) registrytest.Fixture {
	kc := kubetest.Start(t)
	core := kc.Core(t)
	ctx := context.Background()
	// What the controllers and a kubelet would have made: the namespace's default
	// service account (pods are refused without it) and a node with its topology.
	mustCreate(t, "service account", func() error {
		_, err := core.ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
		return err
	})
	mustCreate(t, "node", func() error {
		_, err := core.Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName,
			Labels: map[string]string{kubernetes.LabelRegion: "region-1", kubernetes.LabelZone: "zone-1"}}}, metav1.CreateOptions{})
		return err
	})
	cfg := kubernetes.DefaultConfig()
	cfg.Kubeconfig, cfg.ClusterID = kc.Kubeconfig, clusterID
	src := &source{core: core, pods: map[string]registrytest.Instance{}, kc: kc}
	return registrytest.Fixture{
		Source:   src,
		Run:      func(ctx context.Context, st *store.Store, id string) error { return runAdapter(ctx, cfg, st, id) },
		Hosts:    func(svc string) []string { return []string{svc + ".default.svc.cluster.local"} },
		Sources:  []string{kubernetes.SourceName(clusterID)},
		Locality: locality,
		// The API server's own Service, without a selector, as in every cluster.
		Builtin: []string{"ServiceEntry default/kubernetes"},
	}
}

func mustCreate(t *testing.T, what string, create func() error) {
	t.Helper()
	if err := create(); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating the %s: %v", what, err)
	}
}

// runAdapter runs the adapter under its election, as a node does.
// startAdapter runs the adapter of node n1 on kc (its configuration edited by edit,
// if given) against a store of its own until the test ends, and returns the store.
func startAdapter(tb testing.TB, kc *kubetest.Cluster, edit func(*kubernetes.Config)) *store.Store {
	tb.Helper()
	st := registrytest.OpenStore(tb)
	cfg := kubernetes.DefaultConfig()
	cfg.Kubeconfig, cfg.ClusterID = kc.Kubeconfig, clusterID
	if edit != nil {
		edit(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runAdapter(ctx, cfg, st, "n1") }()
	tb.Cleanup(func() { cancel(); <-done })
	return st
}

func runAdapter(ctx context.Context, cfg kubernetes.Config, st *store.Store, id string) error {
	log := registrytest.Logger().With("node", id)
	a, err := kubernetes.New(cfg, st, id, log)
	if err != nil {
		return err
	}
	return st.RunElected(ctx, a.ElectionName(), id, log, a.Run)
}

// source expresses the suite's instances as Kubernetes has them: a pod per instance
// (labels app, version and the instance's own; a container port named after the
// protocol; its IP and readiness set as a kubelet would), and a Service per service
// selecting app, with a port per port its pods listen on, each leading to the same
// number. A service goes with its last pod.
type source struct {
	core *corev1client.CoreV1Client
	kc   *kubetest.Cluster

	mu   sync.Mutex
	pods map[string]registrytest.Instance // by pod name
}

var (
	_ registrytest.Source = (*source)(nil)
	_ registrytest.Outage = (*source)(nil)
)

func (s *source) Register(t *testing.T, in registrytest.Instance) {
	t.Helper()
	ctx := context.Background()
	labels := map[string]string{"app": in.Service, "version": in.Version}
	maps.Copy(labels, in.Labels)
	pods := s.core.Pods("default")
	p, err := pods.Get(ctx, in.ID, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		p = &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: in.ID, Labels: labels},
			Spec: corev1.PodSpec{NodeName: nodeName, Containers: []corev1.Container{{
				Name: "app", Image: "registry.example/app:1",
				Ports: []corev1.ContainerPort{{Name: in.Protocol, ContainerPort: int32(in.Port)}},
			}}},
		}
		if p, err = pods.Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating pod %s: %v", in.ID, err)
		}
		s.setStatus(t, p, in.Address, true)
	case err != nil:
		t.Fatalf("reading pod %s: %v", in.ID, err)
	default:
		p.Labels = labels
		if _, err := pods.Update(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("updating pod %s: %v", in.ID, err)
		}
	}
	s.mu.Lock()
	s.pods[in.ID] = in
	s.mu.Unlock()
	s.writeService(t, in.Service)
}

// setStatus sets a pod's IP and readiness, as its kubelet would.
func (s *source) setStatus(t *testing.T, p *corev1.Pod, ip string, ready bool) {
	t.Helper()
	cond := corev1.ConditionTrue
	if !ready {
		cond = corev1.ConditionFalse
	}
	p.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: cond}}}
	if _, err := s.core.Pods(p.Namespace).UpdateStatus(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("setting the status of pod %s: %v", p.Name, err)
	}
}

func (s *source) SetHealthy(t *testing.T, in registrytest.Instance, healthy bool) {
	t.Helper()
	p, err := s.core.Pods("default").Get(context.Background(), in.ID, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("reading pod %s: %v", in.ID, err)
	}
	s.setStatus(t, p, in.Address, healthy)
}

func (s *source) Deregister(t *testing.T, in registrytest.Instance) {
	t.Helper()
	// No kubelet confirms a graceful deletion here: delete at once.
	zero := int64(0)
	if err := s.core.Pods("default").Delete(context.Background(), in.ID, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatalf("deleting pod %s: %v", in.ID, err)
	}
	s.mu.Lock()
	delete(s.pods, in.ID)
	s.mu.Unlock()
	s.writeService(t, in.Service)
}

// writeService makes the Service of name match its pods: a port per port they
// listen on, or no Service without pods.
func (s *source) writeService(t *testing.T, name string) {
	t.Helper()
	s.mu.Lock()
	byPort := map[uint32]string{}
	for _, in := range s.pods {
		if in.Service == name {
			byPort[in.Port] = in.Protocol
		}
	}
	s.mu.Unlock()
	ctx := context.Background()
	svcs := s.core.Services("default")
	if len(byPort) == 0 {
		if err := svcs.Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Fatalf("deleting service %s: %v", name, err)
		}
		return
	}
	var ports []corev1.ServicePort
	for _, n := range slices.Sorted(maps.Keys(byPort)) {
		ports = append(ports, corev1.ServicePort{Name: fmt.Sprintf("%s-%d", byPort[n], n), Port: int32(n),
			TargetPort: intstr.FromInt32(int32(n))})
	}
	svc, err := svcs.Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		svc = &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": name}, Ports: ports}}
		_, err = svcs.Create(ctx, svc, metav1.CreateOptions{})
	case err == nil:
		svc.Spec.Ports = ports
		_, err = svcs.Update(ctx, svc, metav1.UpdateOptions{})
	}
	if err != nil {
		t.Fatalf("writing service %s: %v", name, err)
	}
}

func (s *source) Stop(t *testing.T)  { s.kc.Stop(t) }
func (s *source) Start(t *testing.T) { s.kc.Start(t) }

// TestNewRefusesBadConfig checks that New names the offending value.
func TestNewRefusesBadConfig(t *testing.T) {
	cfg := kubernetes.DefaultConfig()
	cfg.Kubeconfig = "/nonexistent/kubeconfig"
	cfg.ClusterID = "Cluster_1"
	if _, err := kubernetes.New(cfg, nil, "n1", registrytest.Logger()); err == nil || !strings.Contains(err.Error(), `"Cluster_1"`) {
		t.Fatalf("New with a bad cluster id: %v", err)
	}
	cfg.ClusterID = "c1"
	if _, err := kubernetes.New(cfg, nil, "n1", registrytest.Logger()); err == nil || !strings.Contains(err.Error(), "/nonexistent/kubeconfig") {
		t.Fatalf("New with a missing kubeconfig: %v", err)
	}
}

// TestServiceWithoutSelector: a Service whose endpoints are kept by hand gets the
// ready endpoints of its EndpointSlices; slices of Kubernetes' own EndpointSlice
// controller are not read (they repeat what the pods say).
func TestServiceWithoutSelector(t *testing.T) {
	kc := kubetest.Start(t)
	core := kc.Core(t)
	disc, err := discoveryv1client.NewForConfig(kc.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "legacy"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}
	if _, err := core.Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	httpName, port := "http", int32(8080)
	slice := func(name, manager string, ready bool, ips ...string) *discoveryv1.EndpointSlice {
		sl := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
				discoveryv1.LabelServiceName: "legacy", discoveryv1.LabelManagedBy: manager}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: &httpName, Port: &port}},
		}
		for _, ip := range ips {
			sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{Addresses: []string{ip},
				Conditions: discoveryv1.EndpointConditions{Ready: &ready}})
		}
		return sl
	}
	sliceAPI := disc.EndpointSlices("default")
	mine, err := sliceAPI.Create(ctx, slice("legacy-inventory", "inventory.example.com", true, "192.168.0.1"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sliceAPI.Create(ctx, slice("legacy-controller", "endpointslice-controller.k8s.io", true, "192.168.0.2"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	st := startAdapter(t, kc, func(cfg *kubernetes.Config) { cfg.Metrics = kubernetes.NewMetrics(reg) })

	expect := func(what string, want ...string) {
		t.Helper()
		awaitEqual(t, what, func() []string { return legacyEndpoints(t, st) }, want...)
	}
	expect("the hand-kept slice's endpoint, not the controller's", "192.168.0.1:8080")
	mine.Endpoints[0].Conditions.Ready = new(bool)
	ready := true
	mine.Endpoints = append(mine.Endpoints, discoveryv1.Endpoint{Addresses: []string{"192.168.0.3"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}})
	if _, err := sliceAPI.Update(ctx, mine, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	expect("an unready endpoint leaves, a new one joins", "192.168.0.3:8080")
	// The informers counted what they saw, under istiod's names.
	expectEvents(t, reg, map[string]float64{
		"pilot_k8s_reg_events Services add":      2, // the API server's own and legacy
		"pilot_k8s_reg_events EndpointSlice add": 1, "pilot_k8s_reg_events EndpointSlice update": 1,
	})
}

// expectEvents checks that reg counts at least least["<metric> <type> <event>"] of
// each.
func expectEvents(t *testing.T, reg *prometheus.Registry, least map[string]float64) {
	t.Helper()
	events := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			events[mf.GetName()+" "+labels["type"]+" "+labels["event"]] = m.GetCounter().GetValue()
		}
	}
	for key, n := range least {
		if events[key] < n {
			t.Errorf("%s: %v, want at least %v (all: %v)", key, events[key], n, events)
		}
	}
}

// TestDiscoverySelectorsFollowNamespaces: with a discovery selector, the adapter
// mirrors only the namespaces whose labels match it, and follows a namespace as it
// gains or loses the label; the system namespace's network label is the network of
// the cluster's pods, and a change of it reaches them.
func TestDiscoverySelectorsFollowNamespaces(t *testing.T) {
	kc := kubetest.Start(t)
	core := kc.Core(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, ns := range []*corev1.Namespace{
		{ObjectMeta: metav1.ObjectMeta{Name: "istio-system", Labels: map[string]string{kubernetes.LabelNetwork: "net-1"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"mesh": "on"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "lab"}},
	} {
		if _, err := core.Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "app"},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "app"}, Ports: []corev1.ServicePort{{Name: "grpc", Port: 7070}}}}
		if _, err := core.Services(ns.Name).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := core.ServiceAccounts("shop").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p, err := core.Pods("shop").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "app-0", Labels: map[string]string{"app": "app"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	(&source{core: core}).setStatus(t, p, "10.1.0.1", true)

	st := startAdapter(t, kc, func(cfg *kubernetes.Config) { cfg.DiscoverySelectors = []string{"mesh=on"} })

	// mirrored returns what the store holds of the cluster: "kind ns/name", and a
	// WorkloadEntry's network after it.
	mirrored := func() []string {
		entries, _, err := st.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, en := range entries {
			r := en.Resource
			if r == nil || en.Space.Source() != kubernetes.SourceName(clusterID) {
				continue
			}
			s := r.Kind.Name + " " + r.Meta.Namespace + "/" + r.Meta.Name
			if we, ok := r.Spec.(*networking.WorkloadEntry); ok {
				s += " " + we.Network
			}
			out = append(out, s)
		}
		slices.Sort(out)
		return out
	}
	expect := func(what string, want ...string) {
		t.Helper()
		awaitEqual(t, what, mirrored, want...)
	}
	label := func(name string, labels map[string]string) {
		t.Helper()
		ns, err := core.Namespaces().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ns.Labels = labels
		if _, err := core.Namespaces().Update(ctx, ns, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	expect("only the selected namespace, its pod in the system namespace's network",
		"ServiceEntry shop/app", "WorkloadEntry shop/app-0 net-1")
	label("lab", map[string]string{"mesh": "on"})
	expect("a namespace that gains the label joins",
		"ServiceEntry lab/app", "ServiceEntry shop/app", "WorkloadEntry shop/app-0 net-1")
	label("istio-system", map[string]string{kubernetes.LabelNetwork: "net-2"})
	expect("the system namespace's network changes",
		"ServiceEntry lab/app", "ServiceEntry shop/app", "WorkloadEntry shop/app-0 net-2")
	label("shop", nil)
	expect("a namespace that loses the label leaves", "ServiceEntry lab/app")
}

// TestDiscoverySelectorsOfTheMeshConfig: without selectors of its own, the adapter
// follows the namespaces the mesh config's discoverySelectors choose, as soon as the
// mesh config changes (nothing in the cluster changes meanwhile, and the full
// re-sync is a minute away).
func TestDiscoverySelectorsOfTheMeshConfig(t *testing.T) {
	kc := kubetest.Start(t)
	core := kc.Core(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, ns := range []*corev1.Namespace{
		{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"mesh": "on"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "lab"}},
	} {
		if _, err := core.Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "app"}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "grpc", Port: 7070}}}}
		if _, err := core.Services(ns.Name).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	st := startAdapter(t, kc, nil)
	services := func() []string {
		var out []string
		for _, s := range registrySnapshot(t, st).Services() {
			if s.Source == kubernetes.SourceName(clusterID) {
				out = append(out, s.Namespace)
			}
		}
		slices.Sort(out)
		return out
	}
	awaitEqual(t, "every namespace without selectors", services, "default", "lab", "shop") // default: the API server's own

	rs, _, err := api.Decode("mesh.yaml", []byte(`apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |-
    discoverySelectors: [{matchExpressions: [{key: mesh, operator: In, values: ["on"]}]}]
`), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Apply(ctx, store.ConfigSpace, rs); err != nil {
		t.Fatal(err)
	}
	awaitEqual(t, "the mesh config's selectors", services, "shop")
	if _, _, err := st.Delete(ctx, store.ConfigSpace, rs[0].Key(), ""); err != nil {
		t.Fatal(err)
	}
	awaitEqual(t, "every namespace again without a mesh config", services, "default", "lab", "shop")
}

// TestTrafficDistributionFollowsTheCluster: a Service's spec.trafficDistribution,
// and its namespace's annotation as it changes, reach its ServiceEntry.
func TestTrafficDistributionFollowsTheCluster(t *testing.T) {
	kc := kubetest.Start(t)
	core := kc.Core(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := core.Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"near", "any"} {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": name}, Ports: []corev1.ServicePort{{Name: "grpc", Port: 7070}}}}
		if name == "near" {
			preferClose := corev1.ServiceTrafficDistributionPreferClose
			svc.Spec.TrafficDistribution = &preferClose
		}
		if _, err := core.Services("shop").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	st := startAdapter(t, kc, nil)
	distributions := func() []string {
		entries, _, err := st.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, en := range entries {
			if r := en.Resource; r != nil && r.Kind == api.ServiceEntry && r.Meta.Namespace == "shop" && en.Space.Source() == kubernetes.SourceName(clusterID) {
				out = append(out, r.Meta.Name+" "+r.Meta.Annotations[registry.TrafficDistributionAnnotation])
			}
		}
		slices.Sort(out)
		return out
	}
	awaitEqual(t, "the Service's field", distributions, "any ", "near PreferSameZone")
	ns, err := core.Namespaces().Get(ctx, "shop", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ns.Annotations = map[string]string{registry.TrafficDistributionAnnotation: "PreferSameNode"}
	if _, err := core.Namespaces().Update(ctx, ns, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	awaitEqual(t, "the namespace's annotation, where the Service has no field", distributions, "any PreferSameNode", "near PreferSameZone")
}

// TestNetworkGatewayByHostName: a network's gateway Service whose load balancer has
// a host name (AWS's) is that network's gateway at the addresses the name has.
func TestNetworkGatewayByHostName(t *testing.T) {
	kc := kubetest.Start(t)
	core := kc.Core(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	svc, err := core.Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "eastwest", Labels: map[string]string{kubernetes.LabelNetwork: "net-1"}},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"istio": "eastwestgateway"},
			Ports: []corev1.ServicePort{{Name: "tls", Port: 15443}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// What a cloud's load balancer controller writes; localhost's addresses are in
	// /etc/hosts, so the lookup stays on this machine.
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{Hostname: "localhost"}}
	if _, err := core.Services("default").UpdateStatus(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	st := startAdapter(t, kc, nil)
	deadline := time.Now().Add(30 * time.Second)
	for {
		gws := registrySnapshot(t, st).Gateways("net-1")
		if slices.ContainsFunc(gws, func(g registry.Gateway) bool { return g.Address == "127.0.0.1" && g.Port == 15443 }) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateways of net-1: %+v, want 127.0.0.1:15443 among them", gws)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestNetworkGatewayOnNodePorts: a NodePort network gateway annotated with a node
// selector has the external IPs of the selected nodes as its gateways, on the node
// port the API server gave it; a node that gains an external IP joins them.
func TestNetworkGatewayOnNodePorts(t *testing.T) {
	kc := kubetest.Start(t)
	core := kc.Core(t)
	ctx := context.Background()
	setNode := func(name, role, externalIP string) {
		t.Helper()
		n, err := core.Nodes().Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			n, err = core.Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"role": role}}}, metav1.CreateOptions{})
		}
		if err != nil {
			t.Fatal(err)
		}
		n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.0.0.9"}}
		if externalIP != "" {
			n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: externalIP})
		}
		if _, err := core.Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	setNode("edge-1", "edge", "198.51.100.10")
	setNode("edge-2", "edge", "")
	setNode("worker-1", "worker", "198.51.100.20")
	svc, err := core.Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "eastwest", Labels: map[string]string{kubernetes.LabelNetwork: "net-1"},
			Annotations: map[string]string{kubernetes.AnnotationNodeSelector: `{"role": "edge"}`}},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Selector: map[string]string{"istio": "eastwestgateway"},
			Ports: []corev1.ServicePort{{Name: "tls", Port: 15443}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nodePort := svc.Spec.Ports[0].NodePort
	st := startAdapter(t, kc, nil)
	gateways := func() []string {
		var out []string
		for _, g := range registrySnapshot(t, st).Gateways("net-1") {
			out = append(out, fmt.Sprintf("%s:%d", g.Address, g.Port))
		}
		return out
	}
	awaitEqual(t, "the edge node with an external IP", gateways, fmt.Sprintf("198.51.100.10:%d", nodePort))
	setNode("edge-2", "edge", "198.51.100.11")
	awaitEqual(t, "the other edge node, once it has an external IP", gateways,
		fmt.Sprintf("198.51.100.10:%d", nodePort), fmt.Sprintf("198.51.100.11:%d", nodePort))
}

// awaitEqual waits up to 30 s until got returns want, and fails the test with what
// it last returned if it does not.
func awaitEqual(t *testing.T, what string, got func() []string, want ...string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last []string
	for time.Now().Before(deadline) {
		if last = got(); slices.Equal(last, want) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: got %q, want %q", what, last, want)
}

// legacyEndpoints returns the endpoints of legacy.default.svc.cluster.local's port
// 80 in the store, as every node's registry reads them.
func legacyEndpoints(t *testing.T, st *store.Store) []string {
	t.Helper()
	snap := registrySnapshot(t, st)
	var out []string
	for _, s := range snap.Services() {
		if s.Hostname != "legacy.default.svc.cluster.local" {
			continue
		}
		p, _ := s.Port(80)
		for _, w := range snap.Endpoints(s) {
			out = append(out, fmt.Sprintf("%s:%d", w.Address, w.PortFor(p)))
		}
	}
	slices.Sort(out)
	return out
}

// BenchmarkPodReadinessToStore measures how long a pod's readiness change takes to
// reach the store (and from there every node's registry), through a real API
// server: its watch, the adapter's batching (50 ms of quiet;
// NAVARCH_BENCH_COALESCE=1ms makes it 1 ms) and its write. One op is one change,
// flipped and awaited in turn.
func BenchmarkPodReadinessToStore(b *testing.B) {
	kc := kubetest.Start(b)
	core := kc.Core(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := core.ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "ratings"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "ratings"}, Ports: []corev1.ServicePort{{Name: "grpc", Port: 9090}}}}
	if _, err := core.Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	p, err := core.Pods("default").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "ratings-1", Labels: map[string]string{"app": "ratings"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}}}, metav1.CreateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	st := startAdapter(b, kc, func(cfg *kubernetes.Config) {
		if d, err := time.ParseDuration(os.Getenv("NAVARCH_BENCH_COALESCE")); err == nil {
			cfg.Coalesce = d // to see what the batching costs
		}
	})

	key := api.Key{Kind: api.WorkloadEntry, Namespace: "default", Name: "ratings-1"}
	space := store.RegistrySpace(kubernetes.SourceName(clusterID))
	await := func(healthy bool) {
		for {
			r, err := st.Get(ctx, space, key)
			if err == nil && (r.Meta.Annotations[registry.HealthAnnotation] != "unhealthy") == healthy {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
	ready := false
	flip := func() {
		ready = !ready
		cond := corev1.ConditionFalse
		if ready {
			cond = corev1.ConditionTrue
		}
		p.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.1.0.1",
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: cond}}}
		if p, err = core.Pods("default").UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
			b.Fatal(err)
		}
		await(ready)
	}
	flip()
	for b.Loop() {
		flip()
	}
}

// TestDeployRBAC applies deploy/kubernetes/rbac.yaml to a real API server and runs
// the adapter with a token of the service account it makes: the rights are enough
// to follow the cluster and review a pod's token. The same adapter with a service
// account the file binds nothing to is refused, and says so.
func TestDeployRBAC(t *testing.T) {
	kc := kubetest.Start(t)
	kc.InstallIstioCRDs(t)
	createStrictPeerAuthentication(t, kc)
	core := kc.Core(t)
	rbac, err := rbacv1client.NewForConfig(kc.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	data, err := os.ReadFile(filepath.Join("..", "..", "deploy", "kubernetes", "rbac.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for i, doc := range strings.Split(string(data), "\n---\n") {
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode([]byte(doc), nil, nil)
		if err != nil {
			t.Fatalf("rbac.yaml document %d: %v", i, err)
		}
		switch o := obj.(type) {
		case *corev1.Namespace:
			_, err = core.Namespaces().Create(ctx, o, metav1.CreateOptions{})
		case *corev1.ServiceAccount:
			_, err = core.ServiceAccounts(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.ClusterRole:
			_, err = rbac.ClusterRoles().Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.ClusterRoleBinding:
			_, err = rbac.ClusterRoleBindings().Create(ctx, o, metav1.CreateOptions{})
		default:
			t.Fatalf("rbac.yaml document %d: unexpected %T", i, obj)
		}
		if err != nil {
			t.Fatalf("applying rbac.yaml document %d: %v", i, err)
		}
	}
	// A service account rbac.yaml binds nothing to, and a pod's (what the controllers
	// would have made).
	for _, sa := range []struct{ ns, name string }{{"navarch", "unbound"}, {"default", "default"}} {
		if _, err := core.ServiceAccounts(sa.ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa.name}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	token := func(ns, sa, audience string) string {
		tr, err := core.ServiceAccounts(ns).CreateToken(ctx, sa, &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{Audiences: []string{audience}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	// The API server's own default audience: that of a token kubectl create token makes.
	const apiAudience = "https://kubernetes.default.svc.cluster.local"

	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "legacy"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}
	if _, err := core.Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Istio's mesh ConfigMap, which the ClusterRole lets navarch read by name.
	if _, err := core.Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "istio-system"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	meshCM := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "istio", Namespace: "istio-system"}, Data: map[string]string{"mesh": "connectTimeout: 3s"}}
	if _, err := core.ConfigMaps("istio-system").Create(ctx, meshCM, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	run := func(id, kubeconfig string) (*store.Store, *kubernetes.Adapter) {
		st := registrytest.OpenStore(t)
		cfg := kubernetes.DefaultConfig()
		cfg.Kubeconfig, cfg.ClusterID = kubeconfig, clusterID
		a, err := kubernetes.New(cfg, st, id, registrytest.Logger())
		if err != nil {
			t.Fatal(err)
		}
		rctx, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); st.RunElected(rctx, a.ElectionName(), id, registrytest.Logger(), a.Run) }()
		go func() {
			defer wg.Done()
			st.RunElected(rctx, a.ConfigElectionName(), id, registrytest.Logger(), a.RunConfig)
		}()
		t.Cleanup(func() { stop(); wg.Wait() })
		return st, a
	}
	status := func(st *store.Store) (store.SourceStatus, bool) {
		entries, _, err := st.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, en := range entries {
			if en.Status != nil && en.Status.Source == kubernetes.SourceName(clusterID) {
				return *en.Status, true
			}
		}
		return store.SourceStatus{}, false
	}
	await := func(what string, cond func() error) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			err := cond()
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %v", what, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	st, a := run("n1", kc.KubeconfigFor(t, token("navarch", "navarch", apiAudience)))
	await("the adapter syncs with the rights of rbac.yaml", func() error {
		if s, ok := status(st); !ok || s.Stale {
			return fmt.Errorf("status %+v", s)
		}
		if got := legacyEndpoints(t, st); got != nil {
			return fmt.Errorf("endpoints %v", got)
		}
		for _, s := range registrySnapshot(t, st).Services() {
			if s.Hostname == "legacy.default.svc.cluster.local" {
				return nil
			}
		}
		return errors.New("no service legacy")
	})
	await("the Istio configuration is mirrored with the rights of rbac.yaml", func() error {
		if s := readStatus(t, st, a.ConfigSource()); s == nil || s.Stale {
			return fmt.Errorf("status %+v", s)
		}
		if got := registrySnapshot(t, st).Config(api.PeerAuthentication); len(got) != 1 {
			return fmt.Errorf("PeerAuthentications %v", got)
		}
		if got := registrySnapshot(t, st).Config(api.MeshConfig); len(got) != 1 {
			return fmt.Errorf("mesh configs %v", got)
		}
		return nil
	})
	ns, sa, rejected, err := a.ReviewToken(ctx, token("default", "default", "istio-ca"))
	if err != nil || rejected != "" || ns != "default" || sa != "default" {
		t.Fatalf("reviewing a pod's token with the rights of rbac.yaml: %s/%s rejected %q, %v", ns, sa, rejected, err)
	}

	st2, _ := run("n2", kc.KubeconfigFor(t, token("navarch", "unbound", apiAudience)))
	await("an adapter without those rights reports why", func() error {
		if s, ok := status(st2); !ok || !s.Stale || !strings.Contains(s.Error, "403 Forbidden") {
			return fmt.Errorf("status %+v", s)
		}
		return nil
	})

	// Every right of rbac.yaml but one: the missing one is named, and stays named
	// while the other resources are read.
	role, err := rbac.ClusterRoles().Get(ctx, "navarch", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	partial := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "navarch-partial"}}
	for _, r := range role.Rules {
		r.Resources = slices.DeleteFunc(slices.Clone(r.Resources), func(res string) bool { return res == "namespaces" })
		partial.Rules = append(partial.Rules, r)
	}
	if _, err := rbac.ClusterRoles().Create(ctx, partial, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := core.ServiceAccounts("navarch").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "partial"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := rbac.ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "navarch-partial"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "navarch-partial"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "partial", Namespace: "navarch"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	st3, _ := run("n3", kc.KubeconfigFor(t, token("navarch", "partial", apiAudience)))
	missing := func() error {
		if s, ok := status(st3); !ok || !s.Stale || !strings.Contains(s.Error, "/api/v1/namespaces: the API server answered 403 Forbidden") {
			return fmt.Errorf("status %+v", s)
		}
		return nil
	}
	await("an adapter missing one right names it", missing)
	// The other informers' reads succeed meanwhile (and their watches restart).
	for range 20 {
		if err := missing(); err != nil {
			t.Fatalf("an adapter missing one right: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The rights of an rbac.yaml from before the mesh ConfigMap was read: the Istio
	// configuration is mirrored without it.
	earlier := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "navarch-earlier"}}
	for _, r := range role.Rules {
		if !slices.Contains(r.Resources, "configmaps") {
			earlier.Rules = append(earlier.Rules, r)
		}
	}
	if _, err := rbac.ClusterRoles().Create(ctx, earlier, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := core.ServiceAccounts("navarch").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "earlier"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := rbac.ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "navarch-earlier"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "navarch-earlier"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "earlier", Namespace: "navarch"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	st4, a4 := run("n4", kc.KubeconfigFor(t, token("navarch", "earlier", apiAudience)))
	await("the Istio configuration mirrored without the mesh ConfigMap it may not read", func() error {
		if s := readStatus(t, st4, a4.ConfigSource()); s == nil || s.Stale {
			return fmt.Errorf("status %+v", s)
		}
		if got := registrySnapshot(t, st4).Config(api.PeerAuthentication); len(got) != 1 {
			return fmt.Errorf("PeerAuthentications %v", got)
		}
		if got := registrySnapshot(t, st4).Config(api.MeshConfig); len(got) != 0 {
			return fmt.Errorf("mesh configs %v", got)
		}
		return nil
	})
}

// registrySnapshot is the registry every node would build from the store.
func registrySnapshot(t *testing.T, st *store.Store) *registry.Snapshot {
	t.Helper()
	entries, rev, err := st.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var resources []store.Entry
	for _, en := range entries {
		if en.Status == nil {
			resources = append(resources, en)
		}
	}
	return registry.NewSnapshot(resources, rev, "cluster.local")
}
