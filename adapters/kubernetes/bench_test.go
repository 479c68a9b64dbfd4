package kubernetes

import (
	"context"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/navarch/navarch/adapters/registrytest"
	"github.com/navarch/navarch/store"
)

// BenchmarkTranslate measures one full translation, which every write of the
// adapter does: 1,000 Services of 10 pods each over 100 nodes, as a mid-sized
// cluster holds them.
func BenchmarkTranslate(b *testing.B) {
	inv := bigInventory()
	tr := translator{domain: "cluster.local"}
	b.ReportAllocs()
	for b.Loop() {
		out, skips := tr.translate(inv)
		if len(out) != 11000 || len(skips) != 0 {
			b.Fatalf("%d resources, %d skipped", len(out), len(skips))
		}
	}
}

// BenchmarkWrite measures what a write of that cluster costs when one pod changed,
// as the adapter writes between two periodic re-syncs: its translation and the
// store's SpaceWriter (which compares with what it last wrote and writes the one
// resource that differs), against an embedded etcd. BenchmarkWriteReread reads
// and decodes the whole space first, as a term's first write and every periodic
// re-sync do.
func BenchmarkWrite(b *testing.B)       { benchmarkWrite(b, false) }
func BenchmarkWriteReread(b *testing.B) { benchmarkWrite(b, true) }

func benchmarkWrite(b *testing.B, reread bool) {
	inv := bigInventory()
	tr := translator{domain: "cluster.local"}
	st := registrytest.OpenStore(b)
	sp := store.RegistrySpace(SourceName("bench"))
	ctx := context.Background()
	desired, _ := tr.translate(inv)
	sw := st.SpaceWriter(sp)
	if _, err := sw.Sync(ctx, desired, true); err != nil {
		b.Fatal(err)
	}
	p := inv.pods[0]
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		p.Labels = map[string]string{"app": p.Labels["app"], "rev": fmt.Sprint(i)}
		desired, _ := tr.translate(inv)
		stats, err := sw.Sync(ctx, desired, reread)
		if err != nil || stats.Updated != 1 {
			b.Fatalf("sync: %+v, %v", stats, err)
		}
	}
}

// bigInventory is 1,000 Services of 10 pods each over 100 nodes.
func bigInventory() inventory {
	inv := inventory{nodes: map[string]*corev1.Node{}}
	for n := range 100 {
		name := fmt.Sprintf("node-%d", n)
		inv.nodes[name] = &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name,
			Labels: map[string]string{LabelRegion: "us-east", LabelZone: fmt.Sprintf("us-east-%d", n%3)}}}
	}
	for s := range 1000 {
		app := fmt.Sprintf("svc-%04d", s)
		inv.services = append(inv.services, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: app, Namespace: fmt.Sprintf("ns-%d", s%20)},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": app}, ClusterIPs: []string{fmt.Sprintf("10.96.%d.%d", s/250, s%250+1)},
				Ports: []corev1.ServicePort{{Name: "grpc", Port: 9090, TargetPort: intstr.FromString("grpc")}, {Name: "http-metrics", Port: 8080}}},
		})
		for p := range 10 {
			pod := fmt.Sprintf("%s-%d", app, p)
			inv.pods = append(inv.pods, &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: pod, Namespace: fmt.Sprintf("ns-%d", s%20),
					Labels: map[string]string{"app": app, "version": fmt.Sprintf("v%d", p%2+1), "pod-template-hash": "5d8f9c7b6"}},
				Spec: corev1.PodSpec{ServiceAccountName: app, NodeName: fmt.Sprintf("node-%d", (s*10+p)%100), Containers: []corev1.Container{{
					Name: "app", Ports: []corev1.ContainerPort{{Name: "grpc", ContainerPort: 7070}}}}},
				Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: fmt.Sprintf("10.%d.%d.%d", 1+s/250, s%250, p+1),
					Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
			})
		}
	}
	return inv
}
