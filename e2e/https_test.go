package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startHTTPSDevNode starts a dev node serving its API over HTTPS, with a
// certificate for 127.0.0.1 written to dir (cert.pem, key.pem) and its CA (ca.pem,
// caFile), and waits until it answers /readyz over HTTPS.
func startHTTPSDevNode(t *testing.T, dir string, extra ...string) (node *proc, caPEM []byte, caFile string) {
	t.Helper()
	caPEM, certPEM, keyPEM := serverCertificate(t, net.ParseIP("127.0.0.1"))
	caFile = writeFile(t, dir, "ca.pem", string(caPEM))
	certFile := writeFile(t, dir, "cert.pem", string(certPEM))
	keyFile := writeFile(t, dir, "key.pem", string(keyPEM))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	https := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	node = startDevNodeReady(t, func(addr string) bool {
		resp, err := https.Get("https://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, append([]string{"--http-tls-cert", certFile, "--http-tls-key", keyFile}, extra...)...)
	return node, caPEM, caFile
}

// TestAPIOverHTTPS: a node given --http-tls-cert serves its API over HTTPS only, and
// the CLI reaches it with --ca-file and refuses it without.
func TestAPIOverHTTPS(t *testing.T) {
	dir := t.TempDir()
	node, _, caFile := startHTTPSDevNode(t, dir)
	addr := node.HTTP
	if code, body := get(addr, "/readyz"); code == http.StatusOK {
		t.Fatalf("plain HTTP answered on the HTTPS port: %d %s", code, body)
	}

	server := "https://" + addr
	vs := writeFile(t, dir, "vs.yaml", `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews}}]}]
`)
	mustCLI(t, server, "apply", "-f", vs, "--ca-file", caFile)
	if out := mustCLI(t, server, "get", "vs", "--ca-file", caFile); !strings.Contains(out, "reviews") {
		t.Fatalf("get over HTTPS: %q", out)
	}
	res := cli(t, server, "get", "vs")
	if res.Code == 0 || !strings.Contains(res.Stderr, "certificate") {
		t.Fatalf("the CLI trusted a certificate it has no CA for: exit %d %q", res.Code, res.Stderr)
	}

	// A renewed certificate (of another CA here) is served without a restart.
	newCA, newCert, newKey := serverCertificate(t, net.ParseIP("127.0.0.1"))
	newCAFile := writeFile(t, dir, "new-ca.pem", string(newCA))
	writeFile(t, dir, "key.pem", string(newKey))
	writeFile(t, dir, "cert.pem", string(newCert))
	eventually(t, 10*time.Second, "the node serves its renewed certificate", func() error {
		if res := cli(t, server, "get", "vs", "--ca-file", newCAFile); res.Code != 0 {
			return fmt.Errorf("exit %d: %s", res.Code, res.Stderr)
		}
		return nil
	})
}

// TestAdminTokenRotation: a token rewritten in --admin-token-file is required from
// then on, without a restart; the old one is refused.
func TestAdminTokenRotation(t *testing.T) {
	tokenFile := writeFile(t, t.TempDir(), "token", "first-token\n")
	node := startDevNode(t, "--admin-token-file", tokenFile)
	with := func(token string) int {
		req, _ := http.NewRequest(http.MethodGet, "http://"+node.HTTP+"/api/v1/config/virtualservices", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if with("first-token") != http.StatusOK || with("second-token") != http.StatusUnauthorized {
		t.Fatal("before the rotation the first token must be the one")
	}
	writeFile(t, filepath.Dir(tokenFile), "token", "second-token\n")
	eventually(t, 10*time.Second, "the rotated token is required", func() error {
		if a, b := with("first-token"), with("second-token"); a != http.StatusUnauthorized || b != http.StatusOK {
			return fmt.Errorf("first token: %d, second token: %d", a, b)
		}
		return nil
	})
}

// serverCertificate makes a CA and a server certificate for ip signed by it.
func serverCertificate(t *testing.T, ips ...net.IP) (caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	ca := newTestCA(t, "navarch test API CA", time.Hour)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "navarch"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: ips, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return ca.certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

// testCA is a self-signed CA made for a test.
type testCA struct {
	cert            *x509.Certificate
	key             *ecdsa.PrivateKey
	certPEM, keyPEM []byte
}

// newTestCA makes a CA named name, valid from an hour ago until lifetime from now.
func newTestCA(t *testing.T, name string, lifetime time.Duration) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(lifetime),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})}
}
