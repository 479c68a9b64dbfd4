package kubernetes_test

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"

	"github.com/navarch/navarch/adapters/kubernetes"
	"github.com/navarch/navarch/adapters/kubernetes/kubetest"
	"github.com/navarch/navarch/adapters/registrytest"
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
	}
}

func mustCreate(t *testing.T, what string, create func() error) {
	t.Helper()
	if err := create(); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating the %s: %v", what, err)
	}
}

// runAdapter runs the adapter under its election, as a node does.
func runAdapter(ctx context.Context, cfg kubernetes.Config, st *store.Store, id string) error {
	log := testLogger().With("node", id)
	a, err := kubernetes.New(cfg, st, id, log)
	if err != nil {
		return err
	}
	return st.RunElected(ctx, a.ElectionName(), id, log, a.Run)
}

func testLogger() *slog.Logger {
	if os.Getenv("NAVARCH_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
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
	if _, err := kubernetes.New(cfg, nil, "n1", testLogger()); err == nil || !strings.Contains(err.Error(), `"Cluster_1"`) {
		t.Fatalf("New with a bad cluster id: %v", err)
	}
	cfg.ClusterID = "c1"
	if _, err := kubernetes.New(cfg, nil, "n1", testLogger()); err == nil || !strings.Contains(err.Error(), "/nonexistent/kubeconfig") {
		t.Fatalf("New with a missing kubeconfig: %v", err)
	}
}
