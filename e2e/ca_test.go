package e2e

import (
	"bufio"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	pb "istio.io/api/security/v1alpha1"

	"github.com/navarch/navarch/node/devcluster"
)

const ratingsGroupYAML = `apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {name: ratings, namespace: bookinfo}
spec:
  metadata: {labels: {app: ratings}}
  template: {serviceAccount: ratings-sa}
`

const ratingsSPIFFE = "spiffe://cluster.local/ns/bookinfo/sa/ratings-sa"

// TestCertificateAuthority: on a 3-node cluster whose nodes issue 6-second
// certificates, a VM agent with a join token for a WorkloadGroup gets a certificate
// for the group's identity chained to the cluster's root; bad requests are refused
// with a clear error and nothing signed; and a running agent renews through another
// node when the one it used is killed.
func TestCertificateAuthority(t *testing.T) {
	c := startCluster(t, 3, "--cert-ttl", "6s")
	dir := t.TempDir()
	mustNodeCLI(t, c, "n1", "apply", "-f", writeFile(t, dir, "wg.yaml", ratingsGroupYAML))
	token := strings.TrimSpace(mustNodeCLI(t, c, "n1", "token", "create", "--workload-group", "bookinfo/ratings", "--ttl", "1h"))
	tokenFile := writeFile(t, dir, "token", token)
	rootPEM := mustNodeCLI(t, c, "n2", "ca", "show", "-o", "pem")
	if other := mustNodeCLI(t, c, "n3", "ca", "show", "-o", "pem"); other != rootPEM {
		t.Fatal("n2 and n3 show different roots: the cluster has more than one CA")
	}
	rootFile := writeFile(t, dir, "root.pem", rootPEM)
	var servers []string
	for _, n := range c.Nodes() {
		servers = append(servers, n.XDSTLS)
	}
	agentArgs := func(out, tok string) []string {
		return []string{"agent", "certs", "--token-file", tok, "--out", out, "--server", strings.Join(servers, ","), "--ca-file", rootFile}
	}

	t.Run("a VM gets the group's identity chained to the cluster's root", func(t *testing.T) {
		out := filepath.Join(dir, "once")
		res := cli(t, "", append(agentArgs(out, tokenFile), "--once")...)
		if res.Code != 0 {
			t.Fatalf("agent certs --once: exit %d: %s", res.Code, res.Stderr)
		}
		leaf, inters := readChain(t, filepath.Join(out, "cert-chain.pem"))
		if len(leaf.URIs) != 1 || leaf.URIs[0].String() != ratingsSPIFFE {
			t.Fatalf("certificate URI SANs %v, want only %s", leaf.URIs, ratingsSPIFFE)
		}
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM([]byte(rootPEM))
		ipool := x509.NewCertPool()
		for _, c := range inters {
			ipool.AddCert(c)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: ipool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Fatalf("the certificate does not chain to navarch ca show's root: %v", err)
		}
		if b, _ := os.ReadFile(filepath.Join(out, "root-cert.pem")); string(b) != rootPEM {
			t.Fatal("root-cert.pem is not the cluster's trust bundle")
		}
	})

	t.Run("bad requests are refused with a clear error and nothing is signed", func(t *testing.T) {
		testRefusals(t, c, dir, token, rootPEM, servers[0], agentArgs)
	})

	t.Run("renewal goes through another node when the one used dies", func(t *testing.T) {
		testRenewalFailover(t, c, filepath.Join(dir, "running"), servers, agentArgs(filepath.Join(dir, "running"), tokenFile))
	})
}

func testRefusals(t *testing.T, c *devcluster.Cluster, dir, token, rootPEM, server string, agentArgs func(out, tok string) []string) {
	signedBefore := issued(t, c)
	own := mustParseURL(t, ratingsSPIFFE)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	tests := []struct {
		name string
		csr  string
		want string
	}{
		{"a CSR for another identity", csr(t, p256, &x509.CertificateRequest{URIs: []*url.URL{mustParseURL(t, "spiffe://cluster.local/ns/bookinfo/sa/reviews")}}),
			"subject alternative name spiffe://cluster.local/ns/bookinfo/sa/reviews is not the caller's identity " + ratingsSPIFFE},
		{"a garbage CSR", "this is not a CSR", "csr: no PEM block"},
		{"an RSA-1024 key", csr(t, rsa1024, nil), "csr: RSA key of 1024 bits; allowed: ECDSA P-256 or P-384, RSA 2048-4096 bits"},
		{"an Ed25519 key", csr(t, ed, nil), "csr: Ed25519 key"},
		{"an oversized SAN list", csr(t, p256, &x509.CertificateRequest{URIs: []*url.URL{own, own, own, own, own, own, own, own}}), "csr: 8 subject alternative names, at most 4 allowed"},
		{"a DNS SAN", csr(t, p256, &x509.CertificateRequest{DNSNames: []string{"ratings.bookinfo.svc"}}), "csr: DNS subject alternative names are not allowed"},
	}
	for _, tt := range tests {
		err := sendCSR(t, server, rootPEM, token, tt.csr)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v; want InvalidArgument %q", tt.name, err, tt.want)
		}
	}

	short := strings.TrimSpace(mustNodeCLI(t, c, "n2", "token", "create", "--workload-group", "bookinfo/ratings", "--ttl", "1s"))
	revoked := strings.TrimSpace(mustNodeCLI(t, c, "n3", "token", "create", "--workload-group", "bookinfo/ratings", "--ttl", "1h"))
	id, _, _ := strings.Cut(revoked, ".")
	mustNodeCLI(t, c, "n1", "token", "revoke", id)
	if list := mustNodeCLI(t, c, "n2", "token", "list"); !regexp.MustCompile(id + `\s.*\srevoked`).MatchString(list) {
		t.Errorf("token list does not show %s revoked:\n%s", id, list)
	}
	time.Sleep(1500 * time.Millisecond)
	for _, tt := range []struct{ name, token, want string }{
		{"an expired token", short, "expired at"},
		{"a revoked token", revoked, "was revoked"},
		{"a token with a wrong secret", id + "." + strings.Repeat("0", 64), "wrong secret"},
	} {
		out := filepath.Join(dir, "refused")
		res := cli(t, "", append(agentArgs(out, writeFile(t, dir, "bad-token", tt.token)), "--once")...)
		if res.Code == 0 || !strings.Contains(res.Stderr, "Unauthenticated") || !strings.Contains(res.Stderr, tt.want) {
			t.Errorf("%s: agent exit %d, stderr %q; want Unauthenticated, %q", tt.name, res.Code, res.Stderr, tt.want)
		}
		if _, err := os.Stat(filepath.Join(out, "cert-chain.pem")); err == nil {
			t.Errorf("%s: the agent wrote a certificate", tt.name)
		}
	}
	if after := issued(t, c); after != signedBefore {
		t.Errorf("the nodes issued %d certificates while refusing", after-signedBefore)
	}
}

func testRenewalFailover(t *testing.T, c *devcluster.Cluster, out string, servers []string, args []string) {
	ag := startAgent(t, args)
	first := ag.waitIssued(t, 1, 20*time.Second)
	second := ag.waitIssued(t, 2, 20*time.Second)
	if first.with != "token" || second.with != "certificate" {
		t.Fatalf("first with %s, then with %s; want the token, then the certificate", first.with, second.with)
	}
	victim := ""
	for _, n := range c.Nodes() {
		if n.XDSTLS == second.server {
			victim = n.Name
		}
	}
	if victim == "" {
		t.Fatalf("no node serves %s (servers %v)", second.server, servers)
	}
	before, _ := os.ReadFile(filepath.Join(out, "cert-chain.pem"))
	t.Logf("killing %s, which the agent last renewed through", victim)
	if err := c.Kill(victim); err != nil {
		t.Fatal(err)
	}
	// The renewal in flight may have gone through the victim just before it died;
	// the first renewal that starts after the kill must go elsewhere.
	n := ag.count()
	next := ag.waitIssued(t, n+1, 20*time.Second)
	if next.server == second.server {
		next = ag.waitIssued(t, n+2, 20*time.Second)
	}
	if next.server == second.server || next.with != "certificate" {
		t.Fatalf("renewed through %s with the %s after %s (at %s) was killed", next.server, next.with, victim, second.server)
	}
	after, _ := os.ReadFile(filepath.Join(out, "cert-chain.pem"))
	if string(after) == string(before) {
		t.Fatal("cert-chain.pem did not change")
	}
	leaf, _ := readChain(t, filepath.Join(out, "cert-chain.pem"))
	if leaf.URIs[0].String() != ratingsSPIFFE || time.Until(leaf.NotAfter) <= 0 {
		t.Fatalf("renewed certificate: %v until %s", leaf.URIs, leaf.NotAfter)
	}
}

// issued sums the certificates every running node has issued (its metrics).
func issued(t *testing.T, c *devcluster.Cluster) int {
	t.Helper()
	total := 0
	for _, n := range c.Nodes() {
		if !c.Running(n.Name) {
			continue
		}
		code, body := get(n.HTTP, "/metrics")
		if code != 200 {
			t.Fatalf("%s /metrics: %d", n.Name, code)
		}
		m := regexp.MustCompile(`(?m)^citadel_server_success_cert_issuance_count (\d+)`).FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("%s /metrics has no citadel_server_success_cert_issuance_count", n.Name)
		}
		v, _ := strconv.Atoi(m[1])
		total += v
	}
	return total
}

// sendCSR sends a CSR with a join token to a node's CSR API, as istio-agent would.
func sendCSR(t *testing.T, server, rootPEM, token, csr string) error {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM([]byte(rootPEM))
	conn, err := grpc.NewClient(server, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: roots, ServerName: "istiod.istio-system.svc"})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	_, err = pb.NewIstioCertificateServiceClient(conn).CreateCertificate(ctx, &pb.IstioCertificateRequest{Csr: csr})
	return err
}

func csr(t *testing.T, key crypto.Signer, tmpl *x509.CertificateRequest) string {
	t.Helper()
	if tmpl == nil {
		tmpl = &x509.CertificateRequest{}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

func mustParseURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// readChain reads a PEM chain: the leaf and what follows it.
func readChain(t *testing.T, path string) (*x509.Certificate, []*x509.Certificate) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var certs []*x509.Certificate
	for b, rest := pem.Decode(data); b != nil; b, rest = pem.Decode(rest) {
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		t.Fatalf("%s holds no certificate", path)
	}
	return certs[0], certs[1:]
}

// agentProc is a running `navarch agent certs` and the certificates it reported.
type agentProc struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	issues []issue
	log    strings.Builder
}

type issue struct{ server, with string }

var issuedLine = regexp.MustCompile(`msg="certificate issued".* server=(\S+) with=(\w+)`)

func startAgent(t *testing.T, args []string) *agentProc {
	t.Helper()
	cmd := exec.Command(navarchBin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a := &agentProc{cmd: cmd}
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.read(stderr)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		cmd.Wait()
		if t.Failed() {
			t.Logf("agent log:\n%s", a.log.String())
		}
	})
	return a
}

func (a *agentProc) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		a.mu.Lock()
		a.log.WriteString(line + "\n")
		if m := issuedLine.FindStringSubmatch(line); m != nil {
			a.issues = append(a.issues, issue{server: m[1], with: m[2]})
		}
		a.mu.Unlock()
	}
}

// logged returns what the agent has logged so far.
func (a *agentProc) logged() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.log.String()
}

func (a *agentProc) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.issues)
}

// waitIssued waits for the agent's n-th certificate (from 1) and returns it.
func (a *agentProc) waitIssued(t *testing.T, n int, timeout time.Duration) issue {
	t.Helper()
	var got issue
	eventually(t, timeout, fmt.Sprintf("the agent's certificate #%d", n), func() error {
		a.mu.Lock()
		defer a.mu.Unlock()
		if len(a.issues) < n {
			return fmt.Errorf("%d certificates so far", len(a.issues))
		}
		got = a.issues[n-1]
		return nil
	})
	return got
}
