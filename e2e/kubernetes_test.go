package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/navarch/navarch/adapters/kubernetes"
	"github.com/navarch/navarch/adapters/kubernetes/kubetest"
	"github.com/navarch/navarch/client"
	"github.com/navarch/navarch/e2e/grpcapp"
	"github.com/navarch/navarch/node/devcluster"
)

const (
	kubeRatingsHost = "ratings.default.svc.cluster.local"
	kubeRatingsPort = 9090
	kubeClusterID   = "east"
)

// kubeMesh is the state of TestKubernetesClusterInTheMesh: an API server, a navarch
// cluster following it, the gRPC backends standing behind its pods, and a client.
type kubeMesh struct {
	t        *testing.T
	kc       *kubetest.Cluster
	core     *corev1client.CoreV1Client
	c        *devcluster.Cluster
	backends map[string]*grpcapp.Backend // by pod name
	target   string
}

// TestKubernetesClusterInTheMesh: a Service and its pods in a real kube-apiserver
// are routed by Istio's DestinationRule and VirtualService for a grpc-go xDS client,
// through the Service's named target port; a pod turning unready, deleted or added
// moves traffic; the node that syncs the cluster dies and another takes over; the
// API server stops (the registry is kept, marked stale) and comes back (resynced).
func TestKubernetesClusterInTheMesh(t *testing.T) {
	t.Parallel()
	kc := kubetest.Start(t)
	m := newKubeMesh(t, kc)
	if _, err := m.core.Nodes().Create(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "worker-1",
		Labels: map[string]string{kubernetes.LabelRegion: "us-east", kubernetes.LabelZone: "us-east-1a"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	m.c = startCluster(t, 3, "--kubeconfig", kc.Kubeconfig, "--kube-cluster-id", kubeClusterID)
	m.addPod("ratings-v1", "v1")
	m.addPod("ratings-v2", "v2")
	dir := t.TempDir()
	writeFile(t, dir, "ratings.yaml", ratingsRouting(kubeRatingsHost, 50, 50))
	mustNodeCLI(t, m.c, "n1", "apply", "-f", dir)

	t.Run("a 50/50 VirtualService splits traffic between the Service's pods", m.split)
	t.Run("a pod that turns unready gets no traffic", m.unready)
	t.Run("a deleted pod leaves the registry", m.deletePod)
	t.Run("a new pod joins and gets traffic", m.newPod)
	t.Run("a pod's service-account token gets a certificate for its own identity", m.podCertificate)
	t.Run("another node takes over when the syncing node is killed", m.takeover)
	t.Run("a stopped API server leaves the registry kept and stale, a restarted one resyncs", m.outage)
}

// newKubeMesh makes in kc what the tests of this file share: the default
// namespace's service account (what the controllers would have made) and the
// Service ratings, selecting app: ratings, its port leading to the pods' port named
// grpc.
func newKubeMesh(t *testing.T, kc *kubetest.Cluster) *kubeMesh {
	t.Helper()
	m := &kubeMesh{t: t, kc: kc, core: kc.Core(t), backends: map[string]*grpcapp.Backend{},
		target: fmt.Sprintf("xds:///%s:%d", kubeRatingsHost, kubeRatingsPort)}
	ctx := context.Background()
	if _, err := m.core.ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "ratings"}, Spec: corev1.ServiceSpec{
		Selector: map[string]string{"app": "ratings"},
		Ports:    []corev1.ServicePort{{Name: "grpc-ratings", Port: kubeRatingsPort, TargetPort: intstr.FromString("grpc")}},
	}}
	if _, err := m.core.Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return m
}

// addPod starts a gRPC backend and creates the pod it stands for, labelled app:
// ratings and version, its container port "grpc" the backend's port, on worker-1;
// then sets its status as the kubelet would: running at 127.0.0.1, ready.
func (m *kubeMesh) addPod(name, version string) {
	m.t.Helper()
	m.addPodOn(name, version, "worker-1")
}

// addPodOn is addPod on another node.
func (m *kubeMesh) addPodOn(name, version, node string) {
	m.t.Helper()
	b, err := grpcapp.StartBackend(name)
	if err != nil {
		m.t.Fatal(err)
	}
	m.t.Cleanup(b.Stop)
	m.backends[name] = b
	ctx := context.Background()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "ratings", "version": version}},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "ratings", Image: "registry.example/ratings:1",
			Ports: []corev1.ContainerPort{{Name: "grpc", ContainerPort: int32(b.Port)}}}}},
	}
	p, err = m.core.Pods("default").Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		m.t.Fatal(err)
	}
	m.setReady(p, true)
}

func (m *kubeMesh) setReady(p *corev1.Pod, ready bool) {
	m.t.Helper()
	cond := corev1.ConditionTrue
	if !ready {
		cond = corev1.ConditionFalse
	}
	p.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "127.0.0.1", PodIPs: []corev1.PodIP{{IP: "127.0.0.1"}},
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: cond}}}
	if _, err := m.core.Pods("default").UpdateStatus(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		m.t.Fatal(err)
	}
}

func (m *kubeMesh) pod(name string) *corev1.Pod {
	m.t.Helper()
	p, err := m.core.Pods("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		m.t.Fatal(err)
	}
	return p
}

// ratingsEndpoints returns ratings' endpoints by pod name, as node name shows them,
// and the cluster source's status.
func (m *kubeMesh) ratingsEndpoints(name string) (map[string]client.EndpointListing, client.SourceListing, error) {
	var reg client.RegistryListing
	res := nodeCLI(m.t, m.c, name, "registry", "-o", "json")
	if res.Code != 0 {
		return nil, client.SourceListing{}, fmt.Errorf("navarch registry: exit %d: %s", res.Code, res.Stderr)
	}
	if err := json.Unmarshal([]byte(res.Stdout), &reg); err != nil {
		return nil, client.SourceListing{}, err
	}
	eps := map[string]client.EndpointListing{}
	for _, s := range reg.Services {
		if s.Host == kubeRatingsHost {
			for _, e := range s.Endpoints {
				eps[e.Name] = e
			}
		}
	}
	var src client.SourceListing
	for _, s := range reg.Sources {
		if s.Source == kubernetes.SourceName(kubeClusterID) {
			src = s
		}
	}
	return eps, src, nil
}

// expectEndpoints waits until node name lists exactly the pods for ratings, each
// at its backend's port, in worker-1's locality, with the unready ones unhealthy.
func (m *kubeMesh) expectEndpoints(name string, pods []string, unready ...string) {
	m.t.Helper()
	eventually(m.t, 30*time.Second, fmt.Sprintf("%s lists %v (unready %v)", name, pods, unready), func() error {
		eps, _, err := m.ratingsEndpoints(name)
		if err != nil {
			return err
		}
		if len(eps) != len(pods) {
			return fmt.Errorf("endpoints %v", eps)
		}
		for _, p := range pods {
			e, ok := eps[p]
			if !ok {
				return fmt.Errorf("no endpoint for %s in %v", p, eps)
			}
			if got, want := e.Ports["grpc-ratings"], m.backends[p].Port; got != want {
				return fmt.Errorf("%s: port %d, want the container port %d", p, got, want)
			}
			if e.Locality != "us-east/us-east-1a" || e.ServiceAccount != "default" {
				return fmt.Errorf("%s: locality %q, service account %q", p, e.Locality, e.ServiceAccount)
			}
			bad := false
			for _, u := range unready {
				bad = bad || u == p
			}
			if e.Healthy == bad {
				return fmt.Errorf("%s healthy=%v", p, e.Healthy)
			}
		}
		return nil
	})
}

func (m *kubeMesh) calls(n int) grpcapp.Tally {
	m.t.Helper()
	return callsVia(m.t, m.c, runningNodes(m.c)[0], m.target, n)
}

func (m *kubeMesh) split(t *testing.T) {
	m.expectEndpoints("n1", []string{"ratings-v1", "ratings-v2"})
	var tl grpcapp.Tally
	eventually(t, 30*time.Second, "traffic reaches both pods", func() error {
		tl = m.calls(1000)
		if tl.By["ratings-v1"] == 0 || tl.By["ratings-v2"] == 0 || len(tl.Failed) > 0 {
			return fmt.Errorf("%v %v", tl.By, tl.Failed)
		}
		return nil
	})
	v1, v2 := tl.Share("ratings-v1"), tl.Share("ratings-v2")
	t.Logf("1000 RPCs: v1 %.1f%%, v2 %.1f%%", 100*v1, 100*v2)
	if math.Abs(v1-0.5) > 0.06 || math.Abs(v2-0.5) > 0.06 {
		t.Fatalf("split v1 %.3f v2 %.3f, want 50/50 within 6 points", v1, v2)
	}
}

func (m *kubeMesh) unready(t *testing.T) {
	m.setReady(m.pod("ratings-v2"), false)
	m.expectEndpoints("n1", []string{"ratings-v1", "ratings-v2"}, "ratings-v2")
	eventually(t, 30*time.Second, "no RPC reaches the unready pod", func() error {
		tl := m.calls(200)
		if tl.By["ratings-v2"] > 0 || tl.By["ratings-v1"] == 0 {
			return fmt.Errorf("%v %v", tl.By, tl.Failed)
		}
		return nil
	})
	m.setReady(m.pod("ratings-v2"), true)
	eventually(t, 30*time.Second, "the pod gets traffic again once ready", func() error {
		if tl := m.calls(100); tl.By["ratings-v2"] == 0 {
			return fmt.Errorf("%v %v", tl.By, tl.Failed)
		}
		return nil
	})
}

func (m *kubeMesh) deletePod(t *testing.T) {
	zero := int64(0)
	if err := m.core.Pods("default").Delete(context.Background(), "ratings-v2", metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	for _, n := range m.c.Names() {
		m.expectEndpoints(n, []string{"ratings-v1"})
	}
}

func (m *kubeMesh) newPod(t *testing.T) {
	m.addPod("ratings-v2b", "v2")
	m.expectEndpoints("n1", []string{"ratings-v1", "ratings-v2b"})
	eventually(t, 30*time.Second, "the new pod gets the v2 half of the traffic", func() error {
		tl := m.calls(200)
		if tl.By["ratings-v2b"] == 0 || len(tl.Failed) > 0 {
			return fmt.Errorf("%v %v", tl.By, tl.Failed)
		}
		return nil
	})
}

// syncingNode returns the node the cluster source's status names, as node from
// shows it.
func (m *kubeMesh) syncingNode(from string) (string, error) {
	_, src, err := m.ratingsEndpoints(from)
	if err != nil {
		return "", err
	}
	return syncer(src)
}

func (m *kubeMesh) takeover(t *testing.T) {
	killed, survivor := killSyncer(t, m.c, m.syncingNode)
	m.addPod("ratings-v1b", "v1")
	m.expectEndpoints(survivor, []string{"ratings-v1", "ratings-v1b", "ratings-v2b"})
	awaitTakeover(t, killed, survivor, m.syncingNode)
}

func (m *kubeMesh) outage(t *testing.T) {
	node := runningNodes(m.c)[0]
	src := kubernetes.SourceName(kubeClusterID)
	m.kc.Stop(t)
	eventually(t, 30*time.Second, "navarch registry warns that the cluster is stale", func() error {
		out := nodeCLI(t, m.c, node, "registry")
		if !strings.Contains(out.Stdout, "warning: source "+src+" is stale") {
			return fmt.Errorf("navarch registry printed:\n%s%s", out.Stdout, out.Stderr)
		}
		return nil
	})
	m.expectEndpoints(node, []string{"ratings-v1", "ratings-v1b", "ratings-v2b"})
	if tl := m.calls(100); len(tl.Failed) > 0 || tl.By["ratings-v2b"] == 0 {
		t.Fatalf("with the API server down, traffic should keep flowing to the last known pods: %v %v", tl.By, tl.Failed)
	}
	m.kc.Start(t)
	eventually(t, 60*time.Second, "the source is fresh again", func() error {
		_, err := m.syncingNode(node)
		return err
	})
	zero := int64(0)
	if err := m.core.Pods("default").Delete(context.Background(), "ratings-v1b", metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	m.expectEndpoints(node, []string{"ratings-v1", "ratings-v2b"})
}

// podCertificate: a service-account token of audience istio-ca, as a kubelet
// projects it for istio-agent, gets a certificate for that service account's SPIFFE
// identity from any node (reviewed by the API server); a token of another audience,
// a forged one, or a CSR for another identity is refused and nothing is signed.
func (m *kubeMesh) podCertificate(t *testing.T) {
	ctx := context.Background()
	if _, err := m.core.ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "ratings"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	token := func(audience string) string {
		ttl := int64(600)
		tr, err := m.core.ServiceAccounts("default").CreateToken(ctx, "ratings", &authnv1.TokenRequest{
			Spec: authnv1.TokenRequestSpec{Audiences: []string{audience}, ExpirationSeconds: &ttl}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	dir := t.TempDir()
	rootPEM := mustNodeCLI(t, m.c, "n1", "ca", "show", "-o", "pem")
	rootFile := writeFile(t, dir, "root.pem", rootPEM)
	node, _ := m.c.Node("n2")
	certs := func(out, tokenFile string) cliResult {
		return cli(t, "", "agent", "certs", "--once", "--token-file", tokenFile, "--out", out, "--server", node.XDSTLS, "--ca-file", rootFile)
	}
	signedBefore := issued(t, m.c)
	const want = "spiffe://cluster.local/ns/default/sa/ratings"
	good := token("istio-ca")
	if res := certs(filepath.Join(dir, "pod"), writeFile(t, dir, "token", good)); res.Code != 0 {
		t.Fatalf("agent certs with the pod's token: exit %d: %s", res.Code, res.Stderr)
	}
	if leaf, _ := readChain(t, filepath.Join(dir, "pod", "cert-chain.pem")); len(leaf.URIs) != 1 || leaf.URIs[0].String() != want {
		t.Fatalf("certificate URI SANs %v, want only %s", leaf.URIs, want)
	}
	for _, tt := range []struct{ name, token, want string }{
		{"a token of another audience", token("other"), `is invalid for the target audiences ["istio-ca"]`},
		{"a forged token", "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZGVmYXVsdDphZG1pbiJ9.c2ln", "Kubernetes service-account token refused"},
	} {
		out := filepath.Join(dir, "refused")
		res := certs(out, writeFile(t, dir, "bad-token", tt.token))
		if res.Code == 0 || !strings.Contains(res.Stderr, "Unauthenticated") || !strings.Contains(res.Stderr, tt.want) {
			t.Errorf("%s: agent exit %d, stderr %q; want Unauthenticated, %q", tt.name, res.Code, res.Stderr, tt.want)
		}
		if _, err := os.Stat(filepath.Join(out, "cert-chain.pem")); err == nil {
			t.Errorf("%s: the agent wrote a certificate", tt.name)
		}
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other := csr(t, key, &x509.CertificateRequest{URIs: []*url.URL{mustParseURL(t, "spiffe://cluster.local/ns/default/sa/admin")}})
	if err := sendCSR(t, node.XDSTLS, rootPEM, good, other); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "is not the caller's identity "+want) {
		t.Errorf("a CSR for another identity with the pod's token: %v; want InvalidArgument", err)
	}
	if after := issued(t, m.c); after != signedBefore+1 {
		t.Errorf("the nodes issued %d certificates, want 1 (the pod's own)", after-signedBefore)
	}
}

// TestTwoKubernetesClusters: one navarch node follows two clusters (--kubeconfig and
// --kube-cluster). A Service of the same name and namespace in both is one service,
// as Istio's namespace sameness has it: a grpc-go client's RPCs reach the pods of
// both clusters. Labelling each cluster's istio-system namespace with a network
// puts its pods there: a client in one network then reaches its own cluster's
// pods only, and a Service labelled as the other network's gateway lists it at its
// external address. Each cluster's pod tokens get certificates. One API server
// down leaves that cluster's entries kept and stale and the other's fresh.
func TestTwoKubernetesClusters(t *testing.T) {
	t.Parallel()
	east, west := kubetest.Start(t), kubetest.Start(t)
	ctx := context.Background()
	backends := map[string]*grpcapp.Backend{}
	for name, kc := range map[string]*kubetest.Cluster{"east": east, "west": west} {
		m := newKubeMesh(t, kc)
		m.backends = backends
		m.addPod("ratings-"+name, "v1")
	}
	c := startCluster(t, 1, "--kubeconfig", east.Kubeconfig, "--kube-cluster-id", "east", "--kube-cluster", "west="+west.Kubeconfig)
	target := fmt.Sprintf("xds:///%s:%d", kubeRatingsHost, kubeRatingsPort)
	eventually(t, 30*time.Second, "RPCs reach the pods of both clusters", func() error {
		tl := callsVia(t, c, "n1", target, 200)
		if tl.By["ratings-east"] == 0 || tl.By["ratings-west"] == 0 || len(tl.Failed) > 0 {
			return fmt.Errorf("%v %v", tl.By, tl.Failed)
		}
		return nil
	})

	// Each cluster's network, as Istio's installation labels its system namespace,
	// and west's east-west gateway at its load balancer's (external) address.
	for name, kc := range map[string]*kubetest.Cluster{"east": east, "west": west} {
		core := kc.Core(t)
		if _, err := core.Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "istio-system",
			Labels: map[string]string{kubernetes.LabelNetwork: "net-" + name}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	gw := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "istio-eastwestgateway", Labels: map[string]string{kubernetes.LabelNetwork: "net-west"}},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"istio": "eastwestgateway"},
			ExternalIPs: []string{"192.0.2.10"}, Ports: []corev1.ServicePort{{Name: "tls", Port: 15443}}}}
	if _, err := west.Core(t).Services("istio-system").Create(ctx, gw, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "each cluster's pods in its network, west's gateway listed", func() error {
		var reg client.RegistryListing
		res := nodeCLI(t, c, "n1", "registry", "-o", "json")
		if err := json.Unmarshal([]byte(res.Stdout), &reg); err != nil {
			return fmt.Errorf("navarch registry: %v: %s", err, res.Stderr)
		}
		networks, gateway := map[string]string{}, ""
		for _, s := range reg.Services {
			for _, e := range s.Endpoints {
				switch s.Host {
				case kubeRatingsHost:
					networks[e.Name] = e.Network
				case "network-gateway.istio-eastwestgateway.istio-system.svc.cluster.local":
					gateway = fmt.Sprintf("%s:%d", e.Address, e.Ports["tls"])
				}
			}
		}
		if networks["ratings-east"] != "net-east" || networks["ratings-west"] != "net-west" || gateway != "192.0.2.10:15443" {
			return fmt.Errorf("networks %v, gateway %q", networks, gateway)
		}
		return nil
	})
	// A proxyless client in east's network reaches east's pods only (grpc-go cannot
	// go through a gateway); one in no network reaches both.
	conn, err := grpcapp.Dial([]byte(mustNodeCLI(t, c, "n1", "bootstrap", "--format", "grpc", "--network", "net-east")), target)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if tl := grpcapp.Call(cctx, conn, 100); tl.By["ratings-east"] != 100 {
		t.Fatalf("a client in net-east: %v %v, want every RPC on ratings-east", tl.By, tl.Failed)
	}
	if tl := callsVia(t, c, "n1", target, 200); tl.By["ratings-east"] == 0 || tl.By["ratings-west"] == 0 || len(tl.Failed) > 0 {
		t.Fatalf("a client in no network: %v %v, want both clusters' pods", tl.By, tl.Failed)
	}

	// A cluster-local service (the mesh config's serviceSettings; the Kubernetes API
	// and kube-system's are by default): a client of east reaches east's pods only,
	// one of west west's, one that names no cluster both.
	mustNodeCLI(t, c, "n1", "apply", "-f", writeFile(t, t.TempDir(), "mesh.yaml", `apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |-
    serviceSettings: [{settings: {clusterLocal: true}, hosts: [`+kubeRatingsHost+`]}]
`))
	for _, cluster := range []string{"east", "west"} {
		conn, err := grpcapp.Dial([]byte(mustNodeCLI(t, c, "n1", "bootstrap", "--format", "grpc", "--cluster-id", cluster)), target)
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, "a client of "+cluster+" reaches its own cluster's pods only", func() error {
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			if tl := grpcapp.Call(cctx, conn, 100); tl.By["ratings-"+cluster] != 100 {
				return fmt.Errorf("%v %v", tl.By, tl.Failed)
			}
			return nil
		})
		conn.Close()
	}
	if tl := callsVia(t, c, "n1", target, 200); tl.By["ratings-east"] == 0 || tl.By["ratings-west"] == 0 || len(tl.Failed) > 0 {
		t.Fatalf("a client of no cluster, of a cluster-local service: %v %v, want both clusters' pods", tl.By, tl.Failed)
	}
	mustNodeCLI(t, c, "n1", "delete", "meshconfig", "istio")

	rootFile := writeFile(t, t.TempDir(), "root.pem", mustNodeCLI(t, c, "n1", "ca", "show", "-o", "pem"))
	node, _ := c.Node("n1")
	for name, kc := range map[string]*kubetest.Cluster{"east": east, "west": west} {
		tr, err := kc.Core(t).ServiceAccounts("default").CreateToken(ctx, "default", &authnv1.TokenRequest{
			Spec: authnv1.TokenRequestSpec{Audiences: []string{"istio-ca"}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		res := cli(t, "", "agent", "certs", "--once", "--token-file", writeFile(t, dir, "token", tr.Status.Token),
			"--out", dir, "--server", node.XDSTLS, "--ca-file", rootFile)
		if res.Code != 0 {
			t.Fatalf("a pod token of %s: agent certs exit %d: %s", name, res.Code, res.Stderr)
		}
	}

	west.Stop(t)
	eventually(t, 30*time.Second, "west stale, east fresh", func() error {
		out := nodeCLI(t, c, "n1", "registry")
		if !strings.Contains(out.Stdout, "warning: source kubernetes.west is stale") || strings.Contains(out.Stdout, "kubernetes.east is stale") {
			return fmt.Errorf("navarch registry printed:\n%s%s", out.Stdout, out.Stderr)
		}
		return nil
	})
	if tl := callsVia(t, c, "n1", target, 200); tl.By["ratings-east"] == 0 || tl.By["ratings-west"] == 0 || len(tl.Failed) > 0 {
		t.Fatalf("with west's API server down, both clusters' pods should keep their traffic: %v %v", tl.By, tl.Failed)
	}
}

// TestIstioConfigInKubernetes: with --kube-istio-config, the DestinationRule and
// VirtualService a cluster stores as Istio's custom resources (as an istiod
// installation has them) route a grpc-go xDS client's RPCs between the Service's
// pods; an edit in the cluster moves them, on every node.
func TestIstioConfigInKubernetes(t *testing.T) {
	t.Parallel()
	kc := kubetest.Start(t)
	kc.InstallIstioCRDs(t)
	m := newKubeMesh(t, kc)
	ctx := context.Background()
	m.addPod("ratings-v1", "v1")
	m.addPod("ratings-v2", "v2")
	dyn, err := dynamic.NewForConfig(kc.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	// apply creates or replaces the DestinationRule and VirtualService of
	// ratingsRouting in the cluster, as kubectl apply would.
	apply := func(v1, v2 int) {
		t.Helper()
		for _, doc := range strings.Split(ratingsRouting(kubeRatingsHost, v1, v2), "---\n") {
			var obj map[string]any
			if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
				t.Fatal(err)
			}
			u := &unstructured.Unstructured{Object: obj}
			res := dyn.Resource(schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1",
				Resource: strings.ToLower(u.GetKind()) + "s"}).Namespace("default")
			cur, err := res.Get(ctx, u.GetName(), metav1.GetOptions{})
			if err == nil {
				u.SetResourceVersion(cur.GetResourceVersion())
				_, err = res.Update(ctx, u, metav1.UpdateOptions{})
			} else {
				_, err = res.Create(ctx, u, metav1.CreateOptions{})
			}
			if err != nil {
				t.Fatalf("applying %s in the cluster: %v", u.GetKind(), err)
			}
		}
	}
	apply(0, 100)
	m.c = startCluster(t, 2, "--kubeconfig", kc.Kubeconfig, "--kube-cluster-id", kubeClusterID, "--kube-istio-config")
	for _, want := range []struct {
		v1, v2 int
		pod    string
	}{{0, 100, "ratings-v2"}, {100, 0, "ratings-v1"}} {
		if want.v1 == 100 {
			apply(100, 0)
		}
		for _, node := range []string{"n1", "n2"} {
			eventually(t, 30*time.Second, fmt.Sprintf("%d/%d from the cluster's VirtualService, through %s", want.v1, want.v2, node), func() error {
				tl := callsVia(t, m.c, node, m.target, 100)
				if tl.By[want.pod] != 100 {
					return fmt.Errorf("%v %v", tl.By, tl.Failed)
				}
				return nil
			})
		}
	}
	// navarch get lists what was applied to navarch; --source, what the cluster gives.
	if out := mustNodeCLI(t, m.c, "n1", "get", "vs,dr"); !strings.Contains(out, "No resources found.") {
		t.Errorf("navarch get vs,dr printed %q, want nothing applied", out)
	}
	src := kubernetes.SourceName(kubeClusterID) + ".config"
	if out := mustNodeCLI(t, m.c, "n2", "get", "vs,dr", "--source", src, "-o", "name"); out != "virtualservice.networking.istio.io/ratings\ndestinationrule.networking.istio.io/ratings\n" {
		t.Errorf("navarch get vs,dr --source %s printed %q", src, out)
	}
	if res := nodeCLI(t, m.c, "n1", "get", "vs", "--source", "Not A Source"); res.Code == 0 || !strings.Contains(res.Stderr, `source "Not A Source"`) {
		t.Errorf("get --source with a bad name: exit %d, %q", res.Code, res.Stderr)
	}
	// A WorkloadGroup of the cluster's takes join tokens for its VMs, as one applied
	// to navarch does.
	group := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1", "kind": "WorkloadGroup",
		"metadata": map[string]any{"name": "ratings-vm", "namespace": "default"},
		"spec": map[string]any{"metadata": map[string]any{"labels": map[string]any{"app": "ratings"}},
			"template": map[string]any{"serviceAccount": "ratings-vm"}},
	}}
	if _, err := dyn.Resource(schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "workloadgroups"}).
		Namespace("default").Create(ctx, group, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "a join token for the cluster's WorkloadGroup", func() error {
		res := nodeCLI(t, m.c, "n2", "token", "create", "--workload-group", "default/ratings-vm", "--ttl", "10m", "-o", "json")
		if res.Code != 0 {
			return errors.New(res.Stderr)
		}
		if !strings.Contains(res.Stdout, "spiffe://cluster.local/ns/default/sa/ratings-vm") {
			return fmt.Errorf("token create printed %q", res.Stdout)
		}
		return nil
	})
	out := t.TempDir()
	mustNodeCLI(t, m.c, "n1", "agent", "configure", "--workload-group", "default/ratings-vm", "--source", src, "--out", out)
	if data, err := os.ReadFile(filepath.Join(out, "agent.yaml")); err != nil || !strings.Contains(string(data), "ratings-vm") {
		t.Errorf("agent configure of the cluster's WorkloadGroup wrote agent.yaml %q, %v", data, err)
	}
}

// TestKubernetesNodeAwareServices: pods on two nodes behind ratings; with
// internalTrafficPolicy Local a client on each node reaches its node's pod only;
// with Istio's PreferSameNode annotation instead, a client prefers its node's pod
// and goes on to the other when that one dies. Clients say their node as Istio's
// injector has them (NODE_NAME, navarch bootstrap --node-name).
func TestKubernetesNodeAwareServices(t *testing.T) {
	t.Parallel()
	kc := kubetest.Start(t)
	m := newKubeMesh(t, kc)
	m.addPodOn("ratings-1", "v1", "worker-1")
	m.addPodOn("ratings-2", "v1", "worker-2")
	ctx := context.Background()
	svcs := m.core.Services("default")
	update := func(edit func(*corev1.Service)) {
		t.Helper()
		svc, err := svcs.Get(ctx, "ratings", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		edit(svc)
		if _, err := svcs.Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	local := corev1.ServiceInternalTrafficPolicyLocal
	update(func(s *corev1.Service) { s.Spec.InternalTrafficPolicy = &local })
	m.c = startCluster(t, 1, "--kubeconfig", kc.Kubeconfig, "--kube-cluster-id", kubeClusterID)
	dial := func(node string) *grpc.ClientConn {
		t.Helper()
		conn, err := grpcapp.Dial([]byte(mustNodeCLI(t, m.c, "n1", "bootstrap", "--format", "grpc", "--name", "client-"+node, "--node-name", node)), m.target)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	c1, c2 := dial("worker-1"), dial("worker-2")
	expect := func(what string, conn *grpc.ClientConn, pod string) {
		t.Helper()
		eventually(t, 30*time.Second, what, func() error {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if tl := grpcapp.Call(cctx, conn, 40); tl.By[pod] != 40 {
				return fmt.Errorf("%v %v", tl.By, tl.Failed)
			}
			return nil
		})
	}
	expect("node-local: worker-1's client reaches worker-1's pod only", c1, "ratings-1")
	expect("node-local: worker-2's client reaches worker-2's pod only", c2, "ratings-2")

	update(func(s *corev1.Service) {
		s.Spec.InternalTrafficPolicy = nil
		s.Annotations = map[string]string{"networking.istio.io/traffic-distribution": "PreferSameNode"}
	})
	expect("PreferSameNode: worker-2's client prefers worker-2's pod", c2, "ratings-2")
	m.backends["ratings-2"].Stop()
	expect("PreferSameNode: with worker-2's pod gone, the other", c2, "ratings-1")
}
