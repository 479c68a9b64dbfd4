package e2e

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestClusterSecretRotation follows docs/cluster.md ("Rotating the cluster
// secret"): three rolling restarts, with the secret file holding old+new, then
// new+old, then new. The cluster stays whole and takes writes through every node
// after each restart; then a node given only the new secret joins, while a process
// holding the old secret cannot join the gossip, and a node certificate of the old
// CA cannot read etcd.
func TestClusterSecretRotation(t *testing.T) {
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
		for _, name := range c.Names() {
			if err := c.Terminate(name); err != nil {
				t.Fatal(err)
			}
			if err := c.Restart(name); err != nil {
				t.Fatal(err)
			}
			if err := c.WaitReady(t.Context(), name); err != nil {
				t.Fatalf("phase %d: %s did not come back: %v", phase+1, name, err)
			}
			eventually(t, 30*time.Second, fmt.Sprintf("phase %d: the cluster whole again after %s's restart", phase+1, name), allVoting(c, name, 3))
			mustNodeCLI(t, c, name, "apply", "-f", writeFile(t, t.TempDir(), "se.yaml", fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: phase-%d-%s}
spec:
  hosts: [phase-%d-%s.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
`, phase+1, name, phase+1, name)))
		}
	}
	for _, n := range c.Names() {
		names, err := writtenNames(c, n)
		if err != nil {
			t.Fatal(err)
		}
		if len(names) != 9 {
			t.Errorf("%s holds %d of the 9 writes: %v", n, len(names), names)
		}
	}

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
