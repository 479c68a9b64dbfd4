package consul_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	capi "github.com/hashicorp/consul/api"

	"github.com/navarch/navarch/adapters/consul"
	"github.com/navarch/navarch/adapters/consul/consultest"
	"github.com/navarch/navarch/adapters/registrytest"
)

// syncs runs the adapter with cfg and waits until consul.dc1's status says what
// want says.
func syncs(t *testing.T, cfg consul.Config, what string, want func(s spaceState) error) spaceState {
	t.Helper()
	st := registrytest.OpenStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runAdapter(ctx, cfg, st, "n1") }()
	defer func() { cancel(); <-done }()
	return waitSpace(t, st, "consul.dc1", what, want)
}

func syncedOne(s spaceState) error {
	if s.status == nil || s.status.Stale || len(s.locality) != 1 {
		return fmt.Errorf("status %+v, %d workloads", s.status, len(s.locality))
	}
	return nil
}

// TestACLToken: with ACLs on and a default deny policy, the token is what lets the
// adapter see the catalog.
func TestACLToken(t *testing.T) {
	const token = "2b1d6c39-8f0a-4c59-9d2a-6b4f3a1e7c10"
	agent := consultest.Start(t, consultest.Options{Token: token, HCL: []string{fmt.Sprintf(
		`acl { enabled = true, default_policy = "deny", tokens { initial_management = %q, agent = %q } }`, token, token)}})
	register(t, agent.Client(t), "dc1", "web-1", "10.0.1.1", "ratings-1", 9090)
	cfg := consul.DefaultConfig()
	cfg.Address, cfg.Datacenters = agent.HTTPAddr, []string{"dc1"}

	t.Run("without the token the catalog is hidden", func(t *testing.T) {
		syncs(t, cfg, "an empty catalog", func(s spaceState) error {
			if s.status == nil || len(s.versions) != 0 {
				return fmt.Errorf("status %+v, resources %v", s.status, s.versions)
			}
			return nil
		})
	})
	t.Run("with the token the service is synced", func(t *testing.T) {
		cfg := cfg
		cfg.Token = token
		syncs(t, cfg, "ratings synced", syncedOne)
	})
	t.Run("a token file is read again when the token in it is rotated", func(t *testing.T) {
		admin := agent.Client(t)
		policy, _, err := admin.ACL().PolicyCreate(&capi.ACLPolicy{Name: "catalog-read",
			Rules: `service_prefix "" { policy = "read" }` + "\n" + `node_prefix "" { policy = "read" }`}, nil)
		if err != nil {
			t.Fatal(err)
		}
		newToken := func() *capi.ACLToken {
			tok, _, err := admin.ACL().TokenCreate(&capi.ACLToken{Policies: []*capi.ACLTokenPolicyLink{{ID: policy.ID}}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}
		first, second := newToken(), newToken()
		file := filepath.Join(t.TempDir(), "consul-token")
		if err := os.WriteFile(file, []byte(first.SecretID+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := cfg
		cfg.TokenFile, cfg.WaitTime = file, 2*time.Second
		st := registrytest.OpenStore(t)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- runAdapter(ctx, cfg, st, "n1") }()
		defer func() { cancel(); <-done }()
		waitSpace(t, st, "consul.dc1", "ratings synced with the first token", syncedOne)

		// Rotate: the file gets the second token, and the first is revoked.
		if err := os.WriteFile(file, []byte(second.SecretID+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := admin.ACL().TokenDelete(first.AccessorID, nil); err != nil {
			t.Fatal(err)
		}
		register(t, admin, "dc1", "web-2", "10.0.1.2", "ratings-2", 9090)
		waitSpace(t, st, "consul.dc1", "the second instance synced with the second token", func(s spaceState) error {
			if s.status == nil || s.status.Stale || len(s.locality) != 2 {
				return fmt.Errorf("status %+v, %d workloads", s.status, len(s.locality))
			}
			return nil
		})
	})
	t.Run("without the token or datacenters, the agent's datacenter cannot be read", func(t *testing.T) {
		cfg := cfg
		cfg.Datacenters = nil
		a, err := consul.New(cfg, registrytest.OpenStore(t), "n1", registrytest.Logger())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if dcs, err := a.Datacenters(ctx); err == nil {
			t.Fatalf("Datacenters = %v without a token, want an error", dcs)
		}
	})
}

// TestTLSCAFile: the agent serves HTTPS with a certificate of a private CA; the CA
// file is what lets the adapter trust it.
func TestTLSCAFile(t *testing.T) {
	dir := t.TempDir()
	caFile, certFile, keyFile := writeCA(t, dir)
	agent := consultest.Start(t, consultest.Options{HTTPS: true, HCL: []string{fmt.Sprintf(
		`tls { defaults { ca_file = %q, cert_file = %q, key_file = %q } }`, caFile, certFile, keyFile)}})
	register(t, agent.Client(t), "dc1", "web-1", "10.0.1.1", "ratings-1", 9090)

	t.Run("with the CA file the service is synced over https", func(t *testing.T) {
		cfg := consul.DefaultConfig()
		cfg.Address, cfg.CAFile, cfg.Datacenters = agent.HTTPSAddr, caFile, []string{"dc1"}
		syncs(t, cfg, "ratings synced", syncedOne)
	})
	t.Run("without it the certificate is refused and the source is stale", func(t *testing.T) {
		cfg := consul.DefaultConfig()
		cfg.Address, cfg.Datacenters = "https://"+agent.HTTPSAddr, []string{"dc1"}
		syncs(t, cfg, "stale with a certificate error", func(s spaceState) error {
			if s.status == nil || !s.status.Stale || !strings.Contains(s.status.Error, "certificate") {
				return fmt.Errorf("status %+v", s.status)
			}
			return nil
		})
	})
	t.Run("a CA file replaced in place is trusted without a restart", func(t *testing.T) {
		otherCA, _, _ := writeCA(t, t.TempDir())
		rotated := filepath.Join(t.TempDir(), "ca.pem")
		copyFile(t, otherCA, rotated)
		cfg := consul.DefaultConfig()
		cfg.Address, cfg.CAFile, cfg.Datacenters = agent.HTTPSAddr, rotated, []string{"dc1"}
		st := registrytest.OpenStore(t)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- runAdapter(ctx, cfg, st, "n1") }()
		defer func() { cancel(); <-done }()
		waitSpace(t, st, "consul.dc1", "stale with a certificate error", func(s spaceState) error {
			if s.status == nil || !s.status.Stale || !strings.Contains(s.status.Error, "certificate") {
				return fmt.Errorf("status %+v", s.status)
			}
			return nil
		})
		copyFile(t, caFile, rotated)
		waitSpace(t, st, "consul.dc1", "ratings synced by the same adapter once the file holds the agent's CA", syncedOne)
	})
	t.Run("a missing CA file is an error at start", func(t *testing.T) {
		cfg := consul.DefaultConfig()
		cfg.Address, cfg.CAFile = agent.HTTPSAddr, filepath.Join(dir, "missing.pem")
		if _, err := consul.New(cfg, registrytest.OpenStore(t), "n1", registrytest.Logger()); err == nil || !strings.Contains(err.Error(), "missing.pem") {
			t.Fatalf("New with a missing CA file: %v", err)
		}
	})
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// writeCA writes a CA and a server certificate for 127.0.0.1 signed by it.
func writeCA(t *testing.T, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "server.dc1.consul"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"server.dc1.consul", "localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	caFile, certFile, keyFile = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for _, f := range []struct {
		path, typ string
		der       []byte
	}{{caFile, "CERTIFICATE", caDER}, {certFile, "CERTIFICATE", leafDER}, {keyFile, "EC PRIVATE KEY", keyDER}} {
		if err := os.WriteFile(f.path, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return caFile, certFile, keyFile
}
