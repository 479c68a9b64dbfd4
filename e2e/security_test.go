package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/navarch/navarch/node/devcluster"
)

// TestOutsidersCannotJoinOrRead: a process without the cluster's secret cannot join
// the gossip, cannot read etcd with its own certificate or without one, and cannot use
// the API without the admin token.
func TestOutsidersCannotJoinOrRead(t *testing.T) {
	c := startCluster(t, 3)
	n1, _ := c.Node("n1")

	t.Run("a node with another secret does not join", func(t *testing.T) {
		outsiderCannotJoin(t, c, "not-the-cluster-secret-0123456789")
	})

	t.Run("etcd refuses clients without a cluster certificate", func(t *testing.T) {
		endpoint := "https://" + n1.EtcdClient
		for name, cfg := range map[string]*tls.Config{
			"no client certificate":     {InsecureSkipVerify: true},
			"a self-signed certificate": {InsecureSkipVerify: true, Certificates: []tls.Certificate{selfSigned(t)}},
		} {
			if err := readEtcd(endpoint, cfg); err == nil {
				t.Fatalf("%s: read etcd", name)
			}
		}
		plain, err := clientv3.New(clientv3.Config{Endpoints: []string{"http://" + n1.EtcdClient}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			_, err = plain.Get(ctx, "/navarch/", clientv3.WithPrefix())
			cancel()
			plain.Close()
			if err == nil {
				t.Fatal("plaintext: read etcd")
			}
		}
	})

	t.Run("the API needs the admin token", func(t *testing.T) {
		for _, path := range []string{"/api/v1/config/virtualservices", "/api/v1/members", "/api/v1/snapshot", "/debug/config"} {
			resp, err := http.Get("http://" + n1.HTTP + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("GET %s without a token: %d, want 401", path, resp.StatusCode)
			}
		}
		res := cli(t, n1.HTTP, "get", "vs")
		if res.Code == 0 || !strings.Contains(res.Stderr, "unauthorized") {
			t.Fatalf("CLI without a token: exit %d %q", res.Code, res.Stderr)
		}
	})
}

func selfSigned(t *testing.T) tls.Certificate {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "outsider"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// outsiderCannotJoin starts a node that has secret as its cluster secret and tries
// to join c through n1, and fails the test if it gets in.
func outsiderCannotJoin(t *testing.T, c *devcluster.Cluster, secret string) {
	t.Helper()
	n1, _ := c.Node("n1")
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	token := filepath.Join(dir, "token")
	os.WriteFile(secretFile, []byte(secret), 0o600)
	os.WriteFile(token, []byte("outsider-token"), 0o600)
	kek := filepath.Join(dir, "kek")
	os.WriteFile(kek, []byte(strings.Repeat("ab", 32)), 0o600)
	http := freeAddr(t)
	cmd := exec.Command(navarchBin, "server", "--name", "outsider", "--data-dir", filepath.Join(dir, "data"),
		"--xds-addr", freeAddr(t), "--http-addr", http, "--gossip-addr", freeAddr(t),
		"--etcd-client-addr", freeAddr(t), "--etcd-peer-addr", freeAddr(t),
		"--join", n1.Gossip, "--cluster-secret-file", secretFile, "--admin-token-file", token,
		"--ca-kek-file", kek, "--xds-tls-addr", freeAddr(t))
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	time.Sleep(5 * time.Second)
	code, body := get(http, "/readyz")
	if code == 200 || !strings.Contains(body, "waiting") {
		t.Fatalf("the outsider's readyz: %d %q; want it still waiting for a cluster", code, body)
	}
	ms, err := membersSeenBy(c, "n1")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Name == "outsider" {
			t.Fatalf("the cluster lists the outsider: %+v", ms)
		}
	}
}

// readEtcd reads the cluster's keys from the etcd client endpoint with cfg.
func readEtcd(endpoint string, cfg *tls.Config) error {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, TLS: cfg, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err // refused at dial
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err = cli.Get(ctx, "/navarch/", clientv3.WithPrefix())
	return err
}
