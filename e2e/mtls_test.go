package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/navarch/navarch/client"
	"github.com/navarch/navarch/e2e/grpcapp"
	"github.com/navarch/navarch/node/devcluster"
)

const shopGroups = `
apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {name: ratings, namespace: shop}
spec: {template: {serviceAccount: ratings}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {name: frontend, namespace: shop}
spec: {template: {serviceAccount: frontend}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {name: intruder, namespace: shop}
spec: {template: {serviceAccount: intruder}}
`

// certsFor gets the certificates of a WorkloadGroup's identity with navarch's agent.
func certsFor(t *testing.T, c *devcluster.Cluster, dir, group, rootFile string) string {
	t.Helper()
	token := strings.TrimSpace(mustNodeCLI(t, c, "n1", "token", "create", "--workload-group", "shop/"+group, "--ttl", "1h"))
	out := filepath.Join(dir, group)
	var servers []string
	for _, n := range c.Nodes() {
		servers = append(servers, n.XDSTLS)
	}
	res := cli(t, "", "agent", "certs", "--once", "--token-file", writeFile(t, dir, group+".token", token),
		"--out", out, "--server", strings.Join(servers, ","), "--ca-file", rootFile)
	if res.Code != 0 {
		t.Fatalf("agent certs for %s: %s", group, res.Stderr)
	}
	return out
}

// TestWorkloadsTalkMutualTLSWithNavarchCertificates: a gRPC server (xds.NewGRPCServer)
// and clients with certificates from navarch's CA, talking xDS to the nodes' TLS
// port: over STRICT the RPC succeeds over mTLS and the server sees the client's
// SPIFFE ID, a plaintext client fails, and a DENY on one principal denies only it.
// On the TLS port a proxy gets only its own identity's secrets, and may not claim
// another namespace.
func TestWorkloadsTalkMutualTLSWithNavarchCertificates(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 3)
	dir := t.TempDir()
	mustNodeCLI(t, c, "n1", "apply", "-f", writeFile(t, dir, "groups.yaml", shopGroups))
	rootFile := writeFile(t, dir, "root.pem", mustNodeCLI(t, c, "n1", "ca", "show", "-o", "pem"))
	certs := map[string]string{}
	for _, g := range []string{"ratings", "frontend", "intruder"} {
		certs[g] = certsFor(t, c, dir, g, rootFile)
	}
	n1, _ := c.Node("n1")
	n2, _ := c.Node("n2")
	server, err := grpcapp.StartXDSBackend("secure", grpcapp.BootstrapWith(grpcapp.BootstrapOptions{
		Servers: []string{n1.XDSTLS}, XDSOverTLS: true, Namespace: "shop", Name: "ratings-1",
		Labels: map[string]string{"app": "ratings"}, CertDir: certs["ratings"]}))
	if err != nil {
		t.Fatal(err)
	}
	defer server.Stop()
	mustNodeCLI(t, c, "n1", "apply", "-f", writeFile(t, dir, "mesh.yaml", grpcapp.StrictRatingsMesh("shop", server.Port)))
	eventually(t, 30*time.Second, "the server serving", func() error {
		if !server.Serving() {
			return fmt.Errorf("not serving")
		}
		return nil
	})
	target := "xds:///ratings.shop.svc.cluster.local:9090"
	call := func(group string, secure bool, n int) grpcapp.Tally {
		t.Helper()
		// The client's bootstrap as navarch makes it: xDS over mTLS to the nodes'
		// TLS ports with the workload's certificate.
		boot := mustNodeCLI(t, c, "n2", "bootstrap", "--format", "grpc", "--certs-dir", certs[group], "-n", "shop", "--name", group+"-1")
		conn, err := grpcapp.DialSecure([]byte(boot), target)
		if !secure {
			conn, err = grpcapp.Dial(grpcapp.Bootstrap([]string{n2.XDS}, "shop", nil), target)
		}
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		return grpcapp.Call(ctx, conn, n)
	}

	frontend := spiffe("shop", "frontend")
	eventually(t, 30*time.Second, "mTLS RPCs from frontend", func() error {
		if tl := call("frontend", true, 5); tl.By["secure"] != 5 || tl.CallerAs[frontend] != 5 {
			return fmt.Errorf("%v %v, server saw %v", tl.By, tl.Failed, tl.CallerAs)
		}
		return nil
	})
	// Its xDS stream too goes over mTLS: the node knows it by its certificate.
	conn, err := grpcapp.DialSecure([]byte(mustNodeCLI(t, c, "n2", "bootstrap", "--format", "grpc", "--certs-dir", certs["frontend"], "-n", "shop", "--name", "frontend-2")), target)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	if tl := grpcapp.Call(ctx, conn, 1); tl.By["secure"] != 1 {
		t.Fatalf("an RPC of frontend-2: %v %v", tl.By, tl.Failed)
	}
	cancel()
	if id := authenticatedAs(t, c, "sidecar~127.0.0.1~frontend-2.shop~shop.svc.cluster.local"); id != frontend {
		t.Fatalf("frontend-2's xDS stream authenticated as %q, want %s", id, frontend)
	}
	conn.Close()
	if tl := call("plain", false, 5); tl.By["secure"] != 0 || tl.Failed[codes.Unavailable] != 5 {
		t.Fatalf("plaintext client of a STRICT server: %v %v, want every RPC to fail", tl.By, tl.Failed)
	}

	mustNodeCLI(t, c, "n3", "apply", "-f", writeFile(t, dir, "deny.yaml", `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-intruders, namespace: shop}
spec:
  selector: {matchLabels: {app: ratings}}
  action: DENY
  rules: [{from: [{source: {principals: [cluster.local/ns/shop/sa/intruder]}}]}]
`))
	eventually(t, 30*time.Second, "the intruder denied", func() error {
		if tl := call("intruder", true, 5); tl.Failed[codes.PermissionDenied] != 5 {
			return fmt.Errorf("%v %v", tl.By, tl.Failed)
		}
		return nil
	})
	if tl := call("frontend", true, 5); tl.By["secure"] != 5 {
		t.Fatalf("frontend after the DENY: %v %v, want answers", tl.By, tl.Failed)
	}

	// describe says what the RPCs above did: a client of shop takes mTLS by itself
	// (every endpoint STRICT), and the endpoint serves STRICT under the DENY policy.
	var d client.ServiceDescription
	if err := json.Unmarshal([]byte(mustNodeCLI(t, c, "n2", "describe", "service", "ratings", "-n", "shop", "-o", "json")), &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Ports) != 1 || d.Ports[0].TLS != "mTLS" || len(d.Inbound) != 1 || d.Inbound[0].MTLS[9090] != "STRICT" ||
		!slices.Equal(d.Inbound[0].PeerAuthentications, []string{"shop/default"}) ||
		!slices.Equal(d.Inbound[0].Authorization, []client.PolicyReference{{Namespace: "shop", Name: "no-intruders", Action: "DENY"}}) {
		t.Fatalf("describe service ratings: ports %+v, inbound %+v", d.Ports, d.Inbound)
	}
	// An ingress gateway exposing ratings: describe says where, from any node.
	mustNodeCLI(t, c, "n1", "apply", "-f", writeFile(t, dir, "ingress.yaml", `apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ingress-1, namespace: shop}
spec: {address: 127.0.0.90, labels: {istio: ingressgateway}}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public, namespace: shop}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: [ratings.example.com]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: public-ratings, namespace: shop}
spec:
  hosts: [ratings.example.com]
  gateways: [public]
  http: [{match: [{uri: {prefix: /ratings}}], route: [{destination: {host: ratings}}]}]
`))
	eventually(t, 30*time.Second, "describe on n3 shows the gateway", func() error {
		text := mustNodeCLI(t, c, "n3", "describe", "service", "ratings", "-n", "shop")
		for _, want := range []string{"Port grpc 9090/GRPC: mTLS\n", "mTLS STRICT on 9090 (PeerAuthentication shop/default)", "AuthorizationPolicies: shop/no-intruders (DENY)",
			"shop/public port 80/HTTP, hosts ratings.example.com (VirtualService shop/public-ratings), at 127.0.0.90\n      HTTP route 1: match uri prefix /ratings\n"} {
			if !strings.Contains(text, want) {
				return fmt.Errorf("describe service ratings says\n%s\nwant %q in it", text, want)
			}
		}
		return nil
	})
	// The gateway's workload, described, listens with the Gateway's server.
	if text := mustNodeCLI(t, c, "n3", "describe", "workload", "ingress-1", "-n", "shop"); !strings.Contains(text, "Gateway: shop/public\n   Server 80/HTTP (http): hosts ratings.example.com, listens on 80\n") {
		t.Fatalf("describe workload ingress-1 says\n%s", text)
	}

	t.Run("the TLS port gives a proxy only its own secrets", func(t *testing.T) {
		resp, err := askSecrets(t, n1.XDSTLS, certs["frontend"], rootFile, "shop")
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range resp.Resources {
			var s tlsv3.Secret
			a.UnmarshalTo(&s)
			if s.Name != "default" {
				continue
			}
			block := s.GetTlsCertificate().GetCertificateChain().GetInlineBytes()
			leaf, _ := readPEMCert(block)
			if leaf == nil || len(leaf.URIs) != 1 || leaf.URIs[0].String() != frontend {
				t.Fatalf("SDS default holds %v, want a certificate of %s", leaf, frontend)
			}
			return
		}
		t.Fatalf("no default secret in %d resources", len(resp.Resources))
	})
	t.Run("gateway credentials go to proxies of their namespace only", func(t *testing.T) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(9), Subject: pkix.Name{CommonName: "shop.example.com"},
			DNSNames: []string{"shop.example.com"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
		der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
		keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
		certPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
		keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
		certFile, keyFile := writeFile(t, dir, "gw.crt", certPEM), writeFile(t, dir, "gw.key", keyPEM)
		mustNodeCLI(t, c, "n2", "credential", "create", "shop-gw", "-n", "shop", "--cert", certFile, "--key", keyFile)
		mustNodeCLI(t, c, "n2", "credential", "create", "vault-gw", "-n", "bank", "--cert", certFile, "--key", keyFile)
		if res := nodeCLI(t, c, "n2", "credential", "create", "bad", "-n", "shop", "--cert", certFile, "--key", certFile); res.Code == 0 || !strings.Contains(res.Stderr, "key") {
			t.Fatalf("a credential without a key: exit %d %q", res.Code, res.Stderr)
		}
		if out := mustNodeCLI(t, c, "n3", "credential", "list"); !strings.Contains(out, "shop-gw") || strings.Contains(out, "bad") || strings.Contains(out, "PRIVATE") {
			t.Fatalf("credential list: %q", out)
		}
		held := func() map[string]string {
			resp, err := askSecrets(t, n1.XDSTLS, certs["frontend"], rootFile, "shop", "kubernetes://shop-gw", "kubernetes://vault-gw")
			if err != nil {
				t.Fatal(err)
			}
			out := map[string]string{}
			for _, a := range resp.Resources {
				var s tlsv3.Secret
				a.UnmarshalTo(&s)
				out[s.Name] = string(s.GetTlsCertificate().GetPrivateKey().GetInlineBytes())
			}
			return out
		}
		eventually(t, 10*time.Second, "the credential at n1", func() error {
			if got := held(); len(got) != 1 || got["kubernetes://shop-gw"] != keyPEM {
				return fmt.Errorf("secrets %v", got)
			}
			return nil
		})
		mustNodeCLI(t, c, "n3", "credential", "delete", "shop-gw", "-n", "shop")
		eventually(t, 10*time.Second, "the credential gone at n1", func() error {
			if got := held(); len(got) != 0 {
				return fmt.Errorf("still %d secrets", len(got))
			}
			return nil
		})
	})
	t.Run("a proxy may not claim another namespace", func(t *testing.T) {
		if _, err := askSecrets(t, n1.XDSTLS, certs["frontend"], rootFile, "bank"); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("got %v, want PermissionDenied", err)
		}
	})
}

func spiffe(ns, sa string) string { return "spiffe://cluster.local/ns/" + ns + "/sa/" + sa }

// askSecrets opens an ADS stream to a node's TLS port with a workload's certificate,
// as a proxy in namespace ns, and asks for the secrets named (default: its own
// certificate and the trust bundle).
func askSecrets(t *testing.T, addr, certDir, rootFile, ns string, names ...string) (*discovery.DiscoveryResponse, error) {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(filepath.Join(certDir, "cert-chain.pem"), filepath.Join(certDir, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	root, _ := os.ReadFile(rootFile)
	pool.AppendCertsFromPEM(root)
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool})))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		names = []string{"default", "ROOTCA"}
	}
	md, _ := structpb.NewStruct(map[string]any{"NAMESPACE": ns})
	st.Send(&discovery.DiscoveryRequest{Node: &corev3.Node{Id: "sidecar~127.0.0.1~frontend-1." + ns + "~" + ns + ".svc.cluster.local", Metadata: md},
		TypeUrl: "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret", ResourceNames: names})
	return st.Recv()
}

// readPEMCert parses the first certificate of a PEM chain.
func readPEMCert(b []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("no PEM")
	}
	return x509.ParseCertificate(block.Bytes)
}

// authenticatedAs returns the identity the node serving proxy id knows it by ("" over
// plaintext), from the nodes' /debug/proxies.
func authenticatedAs(t *testing.T, c *devcluster.Cluster, id string) string {
	t.Helper()
	_, identity := servedBy(t, c, id)
	return identity
}

// servedBy returns the running node whose /debug/proxies lists proxy id, and the
// identity it knows the proxy by.
func servedBy(t *testing.T, c *devcluster.Cluster, id string) (node, identity string) {
	t.Helper()
	for _, n := range runningNodes(c) {
		raw, err := apiOf(c, n).Raw(context.Background(), "/debug/proxies")
		if err != nil {
			t.Fatal(err)
		}
		var proxies []struct{ ID, Identity string }
		if err := json.Unmarshal(raw, &proxies); err != nil {
			t.Fatalf("%v: %s", err, raw)
		}
		for _, p := range proxies {
			if p.ID == id {
				return n, p.Identity
			}
		}
	}
	t.Fatalf("no node serves %s", id)
	return "", ""
}

// TestAuthenticatedClientFailsOver: a grpc-go client bootstrapped by `navarch
// bootstrap --certs-dir` talks xDS over mTLS to the nodes' TLS port through the xDS
// name, which resolves to every node; its node is killed, and it moves to another,
// which knows it by its certificate and sends it a change applied after the kill.
func TestAuthenticatedClientFailsOver(t *testing.T) {
	c := startCluster(t, 3)
	dir := t.TempDir()
	mustNodeCLI(t, c, "n1", "apply", "-f", writeFile(t, dir, "groups.yaml", shopGroups))
	certs := certsFor(t, c, dir, "frontend", writeFile(t, dir, "root.pem", mustNodeCLI(t, c, "n1", "ca", "show", "-o", "pem")))
	backends := startBackends(t, "orders-v1", "orders-v2")
	route := func(subset string) string {
		return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: orders, namespace: shop}
spec:
  hosts: [orders.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9090, name: grpc, protocol: GRPC}]
  endpoints:
  - {address: 127.0.0.1, ports: {grpc: %d}, labels: {version: v1}}
  - {address: 127.0.0.1, ports: {grpc: %d}, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: orders, namespace: shop}
spec:
  host: orders.shop.svc.cluster.local
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: orders, namespace: shop}
spec:
  hosts: [orders.shop.svc.cluster.local]
  http: [{route: [{destination: {host: orders.shop.svc.cluster.local, subset: %s}}]}]
`, backends["orders-v1"].Port, backends["orders-v2"].Port, subset)
	}
	mustNodeCLI(t, c, "n1", "apply", "-f", writeFile(t, dir, "orders.yaml", route("v1")))

	boot := mustNodeCLI(t, c, "n2", "bootstrap", "--format", "grpc", "--certs-dir", certs, "-n", "shop", "--name", "frontend-1")
	if !strings.Contains(boot, `"server_uri": "dns://`) || !strings.Contains(boot, `"type": "tls"`) {
		t.Fatalf("want one xDS server over TLS naming every node through DNS:\n%s", boot)
	}
	conn, err := grpcapp.DialSecure([]byte(boot), "xds:///orders.shop.svc.cluster.local:9090")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	calls := func(n int) grpcapp.Tally {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		return grpcapp.Call(ctx, conn, n)
	}
	eventually(t, 30*time.Second, "RPCs to v1", func() error {
		if tl := calls(10); tl.By["orders-v1"] != 10 {
			return fmt.Errorf("%v %v", tl.By, tl.Failed)
		}
		return nil
	})
	const id = "sidecar~127.0.0.1~frontend-1.shop~shop.svc.cluster.local"
	victim, identity := servedBy(t, c, id)
	frontend := spiffe("shop", "frontend")
	if identity != frontend {
		t.Fatalf("%s knows the client as %q, want %s", victim, identity, frontend)
	}
	if err := c.Kill(victim); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed %s, the client's node", victim)
	mustNodeCLI(t, c, runningNodes(c)[0], "apply", "-f", writeFile(t, dir, "orders.yaml", route("v2")))
	eventually(t, 60*time.Second, "the change applied after the kill reaching the client", func() error {
		if tl := calls(10); tl.By["orders-v2"] != 10 {
			return fmt.Errorf("%v %v", tl.By, tl.Failed)
		}
		return nil
	})
	if now, identity := servedBy(t, c, id); now == victim || identity != frontend {
		t.Fatalf("after the kill the client is served by %s as %q, want another node knowing it as %s", now, identity, frontend)
	}
}
