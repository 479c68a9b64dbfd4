package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	discoveryv1client "k8s.io/client-go/kubernetes/typed/discovery/v1"

	"github.com/navarch/navarch/adapters/kubernetes/kubetest"
	"github.com/navarch/navarch/e2e/grpcapp"
	"github.com/navarch/navarch/internal/peers"
)

// reviewsCluster is a Kubernetes cluster as its controllers and kubelets leave it:
// Service reviews (port grpc 9080 to the pods' port named grpc), a pod per version
// at its backend's address, listening on its port, and the EndpointSlices
// Kubernetes' controller keeps for them (istiod reads endpoints from those; navarch
// from the pods, and leaves the controller's slices alone). v2 is ready or not;
// the Service has cluster IP clusterIP ("None": headless).
func reviewsCluster(v1, v2 *grpcapp.Backend, v2Ready bool, clusterIP string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  selector: {app: reviews}
  clusterIP: %s
  ports: [{name: grpc, port: 9080, targetPort: grpc}]
`, clusterIP)
	for _, p := range []struct {
		version string
		b       *grpcapp.Backend
		ready   bool
	}{{"v1", v1, true}, {"v2", v2, v2Ready}} {
		ip, _, _ := strings.Cut(p.b.Addr, ":")
		status := "True"
		if !p.ready {
			status = "False"
		}
		fmt.Fprintf(&b, `---
apiVersion: v1
kind: Pod
metadata: {name: reviews-%[1]s, namespace: default, labels: {app: reviews, version: %[1]s}}
spec:
  serviceAccountName: default
  containers: [{name: reviews, image: registry.example/reviews:1, ports: [{name: grpc, containerPort: %[2]d}]}]
status:
  phase: Running
  podIP: %[5]s
  podIPs: [{ip: %[5]s}]
  conditions: [{type: Ready, status: "%[3]s"}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: reviews-%[1]s
  namespace: default
  labels: {kubernetes.io/service-name: reviews, endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io}
addressType: IPv4
endpoints: [{addresses: [%[5]s], conditions: {ready: %[4]v}, targetRef: {kind: Pod, name: reviews-%[1]s, namespace: default}}]
ports: [{name: grpc, port: %[2]d, protocol: TCP}]
`, p.version, p.b.Port, status, p.ready, ip)
	}
	return b.String()
}

// createKubeObjects creates the objects of a YAML stream in a real API server, as
// their controllers would have: a pod's status is set after it is created. The
// EndpointSlices of Kubernetes' own controller are left out: navarch does not read
// them (it reads the pods), and the API server refuses their loopback addresses.
func createKubeObjects(t *testing.T, kc *kubetest.Cluster, objects string) {
	t.Helper()
	ctx := context.Background()
	core := kc.Core(t)
	disc, err := discoveryv1client.NewForConfig(kc.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := core.ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	for i, doc := range strings.Split(objects, "\n---\n") {
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode([]byte(doc), nil, nil)
		if err != nil {
			t.Fatalf("Kubernetes object %d: %v", i, err)
		}
		switch o := obj.(type) {
		case *corev1.Service:
			_, err = core.Services(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *corev1.Pod:
			var p *corev1.Pod
			if p, err = core.Pods(o.Namespace).Create(ctx, o, metav1.CreateOptions{}); err == nil {
				p.Status = o.Status
				_, err = core.Pods(o.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{})
			}
		case *discoveryv1.EndpointSlice:
			if o.Labels[discoveryv1.LabelManagedBy] == "endpointslice-controller.k8s.io" {
				continue
			}
			_, err = disc.EndpointSlices(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		default:
			t.Fatalf("Kubernetes object %d: unexpected %T", i, obj)
		}
		if err != nil {
			t.Fatalf("creating Kubernetes object %d: %v", i, err)
		}
	}
}

// TestSameKubernetesRoutingAsIstiod gives istiod (its Kubernetes registry over a
// fake client, as Istio's tests run it) and a navarch node (its Kubernetes adapter
// over a real API server) the same cluster and the same Istio configuration, and
// sends the same RPCs through the same grpc-go xDS client to each: subsets by pod
// labels, a weighted split, a pod that is not ready, and a headless Service.
func TestSameKubernetesRoutingAsIstiod(t *testing.T) {
	t.Parallel()
	bin := peers.Binary(t, "istiod-xds", "NAVARCH_ISTIOD_XDS_BIN")
	// Pods have addresses of their own (istiod finds a pod by its address).
	var backends []*grpcapp.Backend
	for i, name := range []string{"v1", "v2"} {
		b, err := grpcapp.StartBackendAt(name, fmt.Sprintf("127.0.0.%d", 11+i))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(b.Stop)
		backends = append(backends, b)
	}
	v1, v2 := backends[0], backends[1]
	subsets := `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews.default.svc.cluster.local
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
`
	split := subsets + "---\n" + virtualService("reviews", `  - route:
    - {destination: {host: reviews, subset: v1}, weight: 80}
    - {destination: {host: reviews, subset: v2}, weight: 20}
`)
	for _, sc := range []struct {
		name      string
		v2Ready   bool
		config    string
		clusterIP string
	}{
		{"an 80/20 split between subsets by pod labels", true, split, "10.96.0.50"},
		{"both pods by default", true, subsets, "10.96.0.50"},
		{"a pod that is not ready gets nothing", false, subsets, "10.96.0.50"},
		{"a headless Service: both pods", true, subsets, "None"},
	} {
		t.Run(sc.name, func(t *testing.T) {
			objects := reviewsCluster(v1, v2, sc.v2Ready, sc.clusterIP)
			istiod := startIstiod(t, bin, "127.0.0.1:0", sc.config, "--kube", writeFile(t, t.TempDir(), "kube.yaml", objects))
			kc := kubetest.Start(t)
			createKubeObjects(t, kc, objects)
			node := startDevNode(t, "--kubeconfig", kc.Kubeconfig)
			applyServed(t, node, sc.config)
			ps := parityScenario{name: sc.name, rpcs: []parityRPCs{{n: 1000}}}
			want := runParity(t, "istiod", istiod, reviewsTarget, ps, ps.rpcs)
			// The adapter writes the cluster a moment after the node is ready.
			eventually(t, 30*time.Second, "navarch has the cluster's ready pods", func() error {
				tl := runParity(t, "navarch", node.XDS, reviewsTarget, ps, []parityRPCs{{n: 50}})[0]
				if tl.By["v1"] == 0 || (sc.v2Ready && tl.By["v2"] == 0) {
					return fmt.Errorf("%v %v", tl.By, tl.Failed)
				}
				return nil
			})
			got := runParity(t, "navarch", node.XDS, reviewsTarget, ps, ps.rpcs)
			t.Logf("istiod %v, navarch %v", want[0].By, got[0].By)
			compareTallies(t, "1000 RPCs", want[0], got[0], 0)
		})
	}
}

// kubeGatewayCluster is an ingress gateway pod as Istio's gateway chart deploys it:
// unprivileged, behind its Service, whose ports 80 and 443 go to the pod's 8080 and
// 8443.
const kubeGatewayCluster = `apiVersion: v1
kind: Service
metadata: {name: istio-ingressgateway, namespace: default}
spec:
  selector: {istio: ingressgateway}
  clusterIP: 10.96.0.80
  ports:
  - {name: http2, port: 80, targetPort: 8080}
  - {name: https, port: 443, targetPort: 8443}
---
apiVersion: v1
kind: Pod
metadata: {name: ingressgateway-0, namespace: default, labels: {istio: ingressgateway}}
spec:
  serviceAccountName: default
  containers: [{name: istio-proxy, image: registry.example/proxyv2:1, ports: [{containerPort: 8080}, {containerPort: 8443}]}]
status:
  phase: Running
  podIP: 127.0.0.70
  podIPs: [{ip: 127.0.0.70}]
  conditions: [{type: Ready, status: "True"}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: istio-ingressgateway-0
  namespace: default
  labels: {kubernetes.io/service-name: istio-ingressgateway, endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io}
addressType: IPv4
endpoints: [{addresses: [127.0.0.70], conditions: {ready: true}, targetRef: {kind: Pod, name: ingressgateway-0, namespace: default}}]
ports: [{name: http2, port: 8080, protocol: TCP}, {name: https, port: 8443, protocol: TCP}]
`

// TestSameKubernetesGatewayAsIstiod gives istiod (over a fake client) and a navarch
// node (its Kubernetes adapter over a real API server) an unprivileged ingress
// gateway pod behind its Service, with a Gateway on ports 80 and 443, and compares
// the gateway's listeners (settings and filter chains, field by field) and route
// configurations: both listen on the Service's target ports, 8080 and 8443.
func TestSameKubernetesGatewayAsIstiod(t *testing.T) {
	bin := peers.Binary(t, "istiod-xds", "NAVARCH_ISTIOD_XDS_BIN")
	config := `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - {port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}
  - {port: {number: 443, name: https, protocol: HTTPS}, hosts: ["*"], tls: {mode: SIMPLE, credentialName: cert}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: public, namespace: default}
spec:
  hosts: ["*"]
  gateways: [public]
  http: [{route: [{destination: {host: istio-ingressgateway.default.svc.cluster.local, port: {number: 80}}}]}]
`
	istiod := startIstiod(t, bin, "127.0.0.1:0", config, "--kube", writeFile(t, t.TempDir(), "kube.yaml", kubeGatewayCluster))
	kc := kubetest.Start(t)
	createKubeObjects(t, kc, kubeGatewayCluster)
	node := startDevNode(t, "--kubeconfig", kc.Kubeconfig)
	applyServed(t, node, config)
	id := "router~127.0.0.70~ingressgateway-0.default~default.svc.cluster.local"
	md := map[string]any{"NAMESPACE": "default", "LABELS": map[string]any{"istio": "ingressgateway"}, "UNPRIVILEGED_POD": "true", "ISTIO_VERSION": "1.28.0"}
	describe := func(server string) map[string]map[string]string {
		ls := envoyConfig(t, server, id, md).listeners
		out := chainFields(t, ls)
		for name, settings := range listenerSettings(t, ls) {
			out["listener "+name] = map[string]string{"settings": settings}
		}
		_, routes := gatewayChains(t, ls)
		for _, name := range routes {
			out["route "+name] = protoFields(t, envoyRoutes(t, server, id, md, name), gatewayRouteFieldsNotCompared, grpcTimeoutAsReplacement)
		}
		return out
	}
	want := describe(istiod)
	if want["listener 0.0.0.0_8080"] == nil || want["listener 0.0.0.0_8443"] == nil {
		t.Fatalf("istiod's gateway does not listen on the Service's target ports: %v", want)
	}
	var got map[string]map[string]string
	// The adapter writes the cluster a moment after the node is ready.
	eventually(t, 30*time.Second, "navarch's gateway listeners", func() error {
		if got = describe(node.XDS); got["listener 0.0.0.0_8080"] == nil || got["listener 0.0.0.0_8443"] == nil {
			return fmt.Errorf("navarch's gateway listens on %v", got)
		}
		return nil
	})
	compareFields(t, want, got)
}
