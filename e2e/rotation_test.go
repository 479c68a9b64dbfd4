package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/navarch/navarch/node/devcluster"
)

// TestClusterSecretRotation follows docs/cluster.md ("Rotating the cluster
// secret"): three rolling restarts, with the secret file holding old+new, then
// new+old, then new. The cluster stays whole and takes writes through every node
// after each restart; then a node given only the new secret joins, while a process
// holding the old secret cannot join the gossip, and a node certificate of the old
// CA cannot read etcd.
func TestClusterSecretRotation(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 3)
	old, err := os.ReadFile(c.SecretFile())
	if err != nil {
		t.Fatal(err)
	}
	oldSecret := strings.TrimSpace(string(old))
	b := make([]byte, 16)
	rand.Read(b)
	newSecret := "rotated-" + hex.EncodeToString(b)
	n1, _ := c.Node("n1")
	oldCert, err := tls.LoadX509KeyPair(filepath.Join(n1.DataDir, "tls", "node.crt"), filepath.Join(n1.DataDir, "tls", "node.key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := readEtcd("https://"+n1.EtcdClient, &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{oldCert}}); err != nil {
		t.Fatalf("n1's certificate does not read etcd before the rotation: %v", err)
	}

	for phase, secrets := range []string{oldSecret + "\n" + newSecret, newSecret + "\n" + oldSecret, newSecret} {
		if err := os.WriteFile(c.SecretFile(), []byte(secrets+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		restartEachWritingThrough(t, c, phase+1)
	}
	everyNodeHoldsThePhasesWrites(t, c, 3)

	n4, err := c.Add(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "a node with the new secret, "+n4.Name+", a voting member", allVoting(c, "n1", 4))

	t.Run("the old secret no longer joins", func(t *testing.T) {
		outsiderCannotJoin(t, c, oldSecret)
	})
	t.Run("a certificate of the old CA no longer reads etcd", func(t *testing.T) {
		if err := readEtcd("https://"+n1.EtcdClient, &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{oldCert}}); err == nil {
			t.Fatal("read etcd")
		}
	})
}

// restartEachWritingThrough restarts the nodes of c one by one (SIGTERM), waiting
// for each to be a voting member again, and writes a ServiceEntry through it.
func restartEachWritingThrough(t *testing.T, c *devcluster.Cluster, phase int) {
	t.Helper()
	for _, name := range c.Names() {
		if err := c.Terminate(name); err != nil {
			t.Fatal(err)
		}
		if err := c.Restart(name); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitReady(t.Context(), name); err != nil {
			t.Fatalf("phase %d: %s did not come back: %v", phase, name, err)
		}
		eventually(t, 30*time.Second, fmt.Sprintf("phase %d: the cluster whole again after %s's restart", phase, name), allVoting(c, name, len(c.Names())))
		mustNodeCLI(t, c, name, "apply", "-f", writeFile(t, t.TempDir(), "se.yaml", fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: phase-%d-%s}
spec:
  hosts: [phase-%d-%s.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
`, phase, name, phase, name)))
	}
}

// everyNodeHoldsThePhasesWrites checks that every node holds the writes of
// restartEachWritingThrough's phases.
func everyNodeHoldsThePhasesWrites(t *testing.T, c *devcluster.Cluster, phases int) {
	t.Helper()
	want := phases * len(c.Names())
	for _, n := range c.Names() {
		names, err := writtenNames(c, n)
		if err != nil {
			t.Fatal(err)
		}
		if len(names) != want {
			t.Errorf("%s holds %d of the %d writes: %v", n, len(names), want, names)
		}
	}
}

// TestOperatorClusterCARotation follows docs/cluster.md: three nodes on an
// operator's cluster CA (--cluster-ca-cert) move to another in three rolling
// restarts, the certificate file holding old+new (old key), then new+old (new
// key), then new. The cluster stays whole and takes writes through every node after
// each restart; at the end every node's certificate is the new CA's, and one of the
// old CA no longer reads etcd.
func TestOperatorClusterCARotation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	oldCA, newCA := newTestCA(t, "old cluster CA", 24*time.Hour), newTestCA(t, "new cluster CA", 24*time.Hour)
	certFile, keyFile := filepath.Join(dir, "cluster-ca.crt"), filepath.Join(dir, "cluster-ca.key")
	use := func(key []byte, certs ...[]byte) {
		if err := os.WriteFile(certFile, bytes.Join(certs, nil), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyFile, key, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	use(oldCA.keyPEM, oldCA.certPEM)
	c := startCluster(t, 3, "--cluster-ca-cert", certFile, "--cluster-ca-key", keyFile)
	signedBy := func(node string, ca *testCA) error {
		nd, _ := c.Node(node)
		b, err := os.ReadFile(filepath.Join(nd.DataDir, "tls", "node.crt"))
		if err != nil {
			return err
		}
		block, _ := pem.Decode(b)
		if block == nil {
			return fmt.Errorf("%s's node.crt holds no certificate", node)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return err
		}
		if err := cert.CheckSignatureFrom(ca.cert); err != nil {
			return fmt.Errorf("%s's certificate is not signed by the %s: %w", node, ca.cert.Subject.CommonName, err)
		}
		if cert.NotAfter.After(ca.cert.NotAfter) {
			return fmt.Errorf("%s's certificate ends %s, after its CA (%s)", node, cert.NotAfter, ca.cert.NotAfter)
		}
		return nil
	}
	if err := signedBy("n1", oldCA); err != nil {
		t.Fatal(err)
	}
	// A CA of a day makes node certificates of a day: status names each node's, the
	// others' as gossip tells them.
	eventually(t, 30*time.Second, "navarch status naming every node's certificate", func() error {
		res := nodeCLI(t, c, "n1", "status")
		for _, name := range c.Names() {
			if want := "- node " + name + "'s cluster certificate ends in "; res.Code != 1 || !strings.Contains(res.Stdout, want) {
				return fmt.Errorf("exit %d, no %q in\n%s", res.Code, want, res.Stdout)
			}
		}
		return nil
	})
	n1, _ := c.Node("n1")
	oldCert, err := tls.LoadX509KeyPair(filepath.Join(n1.DataDir, "tls", "node.crt"), filepath.Join(n1.DataDir, "tls", "node.key"))
	if err != nil {
		t.Fatal(err)
	}

	use(oldCA.keyPEM, oldCA.certPEM, newCA.certPEM)
	restartEachWritingThrough(t, c, 1)
	use(newCA.keyPEM, newCA.certPEM, oldCA.certPEM)
	restartEachWritingThrough(t, c, 2)
	use(newCA.keyPEM, newCA.certPEM)
	restartEachWritingThrough(t, c, 3)
	everyNodeHoldsThePhasesWrites(t, c, 3)
	for _, name := range c.Names() {
		if err := signedBy(name, newCA); err != nil {
			t.Error(err)
		}
	}
	if err := readEtcd("https://"+n1.EtcdClient, &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{oldCert}}); err == nil {
		t.Error("a node certificate of the old CA still reads etcd")
	}
}
