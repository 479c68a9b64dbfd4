// Package kubetest starts a real Kubernetes API server for tests: kube-apiserver and
// the etcd it stores in, the binaries `make peers` builds into <repo>/.peers/bin (or
// $NAVARCH_KUBE_APISERVER_BIN and $NAVARCH_KUBE_ETCD_BIN), on free loopback ports,
// with their data in the test's temporary directory, stopped by PID when the test
// ends. Without the binaries a test is skipped, except in CI ($CI set), where it
// fails.
//
// Only the API server runs: no scheduler, controllers or kubelets. A test creates
// what those would (a pod's IP and readiness, a namespace's service account) itself.
package kubetest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"

	"github.com/navarch/navarch/internal/peers"
)

// Cluster is a running API server.
type Cluster struct {
	// Server is the API server's URL (https://127.0.0.1:port).
	Server string
	// Kubeconfig is a kubeconfig file naming the server, its CA and an admin token.
	Kubeconfig string
	// Token is the admin's bearer token (group system:masters).
	Token string

	dir       string
	caPEM     []byte
	apiserver *peers.Process
	etcd      *peers.Process
}

// Start starts etcd and kube-apiserver and waits until the API server is ready
// (/readyz). Both are stopped when the test ends.
func Start(t testing.TB) *Cluster {
	t.Helper()
	apiBin := peers.Binary(t, "kube-apiserver", "NAVARCH_KUBE_APISERVER_BIN")
	etcdBin := peers.Binary(t, "etcd", "NAVARCH_KUBE_ETCD_BIN")
	dir := t.TempDir()
	c := &Cluster{dir: dir, Token: "navarch-test-admin"}
	t.Cleanup(func() {
		for _, p := range []*peers.Process{c.apiserver, c.etcd} {
			if p == nil {
				continue
			}
			p.Kill()
			if t.Failed() {
				t.Logf("%s log (%s):\n%s", p.Name, p.LogPath, peers.Tail(p.LogPath, 30))
			}
		}
	})
	held := peers.Ports(t, 3)
	etcdClient, etcdPeer, secure := held[0], held[1], held[2]
	c.Server = "https://127.0.0.1:" + strconv.Itoa(secure)
	if err := c.writeFiles(); err != nil {
		t.Fatal(err)
	}
	c.etcd = &peers.Process{Name: "etcd", Bin: etcdBin, LogPath: filepath.Join(dir, "etcd.log"), Args: []string{
		"--name", "default", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", "http://127.0.0.1:" + strconv.Itoa(etcdClient),
		"--advertise-client-urls", "http://127.0.0.1:" + strconv.Itoa(etcdClient),
		"--listen-peer-urls", "http://127.0.0.1:" + strconv.Itoa(etcdPeer),
		"--initial-advertise-peer-urls", "http://127.0.0.1:" + strconv.Itoa(etcdPeer),
		"--initial-cluster", "default=http://127.0.0.1:" + strconv.Itoa(etcdPeer),
		"--log-level", "warn",
	}}
	c.apiserver = &peers.Process{Name: "kube-apiserver", Bin: apiBin, LogPath: filepath.Join(dir, "kube-apiserver.log"), Args: []string{
		"--etcd-servers", "http://127.0.0.1:" + strconv.Itoa(etcdClient),
		"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--secure-port", strconv.Itoa(secure),
		"--tls-cert-file", filepath.Join(dir, "serving.crt"), "--tls-private-key-file", filepath.Join(dir, "serving.key"),
		"--token-auth-file", filepath.Join(dir, "tokens.csv"),
		"--authorization-mode", "RBAC",
		"--service-cluster-ip-range", "10.96.0.0/16",
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file", filepath.Join(dir, "sa.key"),
		"--service-account-signing-key-file", filepath.Join(dir, "sa.key"),
		// Nothing reaches the API server through the kubernetes Service here (and
		// its loopback address is no valid endpoint).
		"--endpoint-reconciler-type", "none",
		"--enable-priority-and-fairness=false", "--profiling=false", "-v", "0",
	}}
	if err := c.etcd.Start(); err != nil {
		t.Fatalf("%v\n%s", err, peers.Tail(c.etcd.LogPath, 30))
	}
	c.Start(t)
	return c
}

// Start starts the API server (again, after Stop) on its port, and waits until it is
// ready.
func (c *Cluster) Start(t testing.TB) {
	t.Helper()
	if err := c.apiserver.Start(); err != nil {
		t.Fatalf("%v\n%s", err, peers.Tail(c.apiserver.LogPath, 30))
	}
	if err := c.waitReady(90 * time.Second); err != nil {
		t.Fatalf("kube-apiserver not ready: %v\n%s", err, peers.Tail(c.apiserver.LogPath, 30))
	}
}

// Stop stops the API server (etcd keeps running, with every object): clients find
// nothing listening until Start.
func (c *Cluster) Stop(t testing.TB) {
	t.Helper()
	c.apiserver.Stop()
}

// RESTConfig returns a client configuration of the admin, without client-go's
// default limit of 5 requests a second.
func (c *Cluster) RESTConfig() *rest.Config {
	return &rest.Config{Host: c.Server, BearerToken: c.Token, TLSClientConfig: rest.TLSClientConfig{CAData: c.caPEM},
		QPS: 1000, Burst: 2000}
}

// KubeconfigFor writes a kubeconfig of the server with another bearer token (a
// service account's) and returns its path.
func (c *Cluster) KubeconfigFor(t testing.TB, token string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, []byte(Kubeconfig(c.Server, c.caPEM, token)), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Core returns a client of the core API group, as the admin.
func (c *Cluster) Core(t testing.TB) *corev1client.CoreV1Client {
	t.Helper()
	cl, err := corev1client.NewForConfig(c.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// waitReady polls /readyz until it answers 200.
func (c *Cluster) waitReady(timeout time.Duration) error {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.caPEM)
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer hc.CloseIdleConnections()
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest(http.MethodGet, c.Server+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+c.Token)
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("/readyz: %s", resp.Status)
		}
		last = err
		select {
		case <-c.apiserver.Exited():
			return errors.New("kube-apiserver exited")
		case <-time.After(100 * time.Millisecond):
		}
	}
	return last
}

// writeFiles writes the API server's serving certificate (self-signed, for
// 127.0.0.1), its service-account signing key, the admin's token and a kubeconfig.
func (c *Cluster) writeFiles() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kube-apiserver"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	c.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM, err := ecKeyPEM(key)
	if err != nil {
		return err
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	saPEM, err := ecKeyPEM(saKey)
	if err != nil {
		return err
	}
	c.Kubeconfig = filepath.Join(c.dir, "kubeconfig")
	files := map[string][]byte{
		"serving.crt": c.caPEM, "serving.key": keyPEM, "sa.key": saPEM,
		"tokens.csv": []byte(c.Token + ",admin,admin-uid,system:masters\n"),
		"kubeconfig": []byte(Kubeconfig(c.Server, c.caPEM, c.Token)),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(c.dir, name), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// Kubeconfig returns a kubeconfig of one cluster, user and context.
func Kubeconfig(server string, caPEM []byte, token string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: admin
  user:
    token: %s
contexts:
- name: test
  context: {cluster: test, user: admin}
current-context: test
`, server, base64.StdEncoding.EncodeToString(caPEM), token)
}

func ecKeyPEM(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}
